"""The engine on CuPy: the same numbers as on NumPy, and no host round trips inside the loop.

Marked ``gpu``; skipped where CuPy or a CUDA device is missing (CI has neither).
Run on a GPU machine with ``pytest -m gpu`` (or the default run, which includes them).
"""
import zlib

import numpy as np
import pytest

from numstyle import backend, gatys, train, transformer, vgg
from numstyle.gradcheck import rel_error

from conftest import TINY_WIDTH
from test_gradcheck import CASES

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not backend.gpu_available(), reason="needs CuPy and a CUDA GPU")]


def _cupy():
    import cupy
    return cupy


def _outputs(make, dev, seed):
    """Forward output and VJP of one case, built with its arrays on ``dev``; returned on the host."""
    rng = np.random.default_rng(seed)
    f, vjp, inputs = make(rng, dev)
    y = f(*inputs)
    dout = dev(np.random.default_rng(seed + 1).standard_normal(y.shape))
    grads = vjp(dout, *inputs)
    return backend.to_host(y), [None if g is None else backend.to_host(g) for g in grads], y, grads


@pytest.mark.parametrize("name,make,tol", CASES, ids=[c[0] for c in CASES])
def test_every_gradient_case_matches_numpy(name, make, tol):
    """Each row of the gradient-check table (float64): CuPy gives NumPy's forward and backward."""
    cp = _cupy()
    seed = zlib.crc32(name.encode())
    y_cpu, g_cpu, _, _ = _outputs(make, lambda a: a, seed)
    y_gpu, g_gpu, y_dev, g_dev = _outputs(make, cp.asarray, seed)
    assert isinstance(y_dev, cp.ndarray), f"{name}: forward left the GPU ({type(y_dev).__name__})"
    # float64 on both; only summation order differs: ~1e-12, far under float32's 1e-6
    assert rel_error(y_gpu, y_cpu, floor=1e-6) < 1e-6, f"{name}: forward differs on CuPy"
    for k, (a, b, d) in enumerate(zip(g_gpu, g_cpu, g_dev)):
        if b is None:
            continue
        assert isinstance(d, cp.ndarray), f"{name}: gradient {k} came back as {type(d).__name__}"
        assert rel_error(a, b, floor=1e-6) < 1e-6, f"{name}: gradient {k} differs on CuPy"


def _count_host_copies(monkeypatch):
    """Count the array copies to the host: numstyle makes them all through ``cupy.asnumpy``
    (backend.to_host); scalar losses read with ``float()`` are not arrays and not counted."""
    cp = _cupy()
    calls = {"n": 0}
    real_asnumpy = cp.asnumpy

    def asnumpy(*a, **k):
        calls["n"] += 1
        return real_asnumpy(*a, **k)

    monkeypatch.setattr(cp, "asnumpy", asnumpy)
    return calls


def _tiny_objective(dev, tile=None):
    params = {k: (dev(w), dev(b)) for k, (w, b) in vgg.random_params("vgg16", TINY_WIDTH, seed=2).items()}
    rng = np.random.default_rng(0)
    content = dev(rng.uniform(-100, 100, (1, 3, 48, 64)).astype(np.float32))
    style = dev(rng.uniform(-100, 100, (1, 3, 40, 40)).astype(np.float32))
    return gatys.make_objective(params, "vgg16", content=content, styles=[style], tv_weight=1e-3, tile=tile), content


def test_objective_stays_on_the_gpu(monkeypatch):
    """One Gatys evaluation: the gradient is a CuPy array and no array is copied to the host."""
    cp = _cupy()
    objective, x = _tiny_objective(cp.asarray)
    calls = _count_host_copies(monkeypatch)
    loss, grad = objective(x)
    assert isinstance(grad, cp.ndarray) and np.isfinite(loss)
    assert calls["n"] == 0, f"{calls['n']} device-to-host copies inside one objective evaluation"


@pytest.mark.parametrize("tile", [None, 16])
def test_gatys_run_matches_cpu(tile):
    """Ten L-BFGS-B iterations from the same start land on the same losses (float32 rounding apart)."""
    cp = _cupy()
    runs = {}
    for name, dev in (("cpu", lambda a: a), ("gpu", cp.asarray)):
        objective, x0 = _tiny_objective(dev, tile)
        _, history = gatys.optimize(objective, x0, iters=10, progress=False)
        runs[name] = [h["total"] for h in history]
    np.testing.assert_allclose(runs["gpu"], runs["cpu"], rtol=1e-3,
                               err_msg="GPU and CPU Gatys runs diverged (float32 sums in another order)")


@pytest.mark.parametrize("norm", ["instance", "batch"])
def test_training_step_matches_cpu(norm):
    """One training step (forward, perceptual loss, backward to every parameter) on both devices."""
    cp = _cupy()
    spec = transformer.style_spec((4, 6, 8), 1)
    rng = np.random.default_rng(0)
    vgg_params = vgg.random_params("vgg16", TINY_WIDTH, seed=4)
    style = rng.uniform(0, 255, (1, 3, 32, 32)).astype(np.float32)
    batch = rng.uniform(0, 255, (2, 3, 32, 32)).astype(np.float32)
    out = {}
    for name, dev in (("cpu", lambda a: a), ("gpu", cp.asarray)):
        loss = train.PerceptualLoss({k: (dev(w), dev(b)) for k, (w, b) in vgg_params.items()}, dev(style),
                                    "relu2_2", ["relu1_2", "relu2_2"], 1.0, 1e-3, 1e-6)
        params = {k: dev(v) for k, v in transformer.init_params(spec, seed=0).items()}
        state = {k: {s: dev(v) for s, v in st.items()} for k, st in transformer.init_state(params, norm).items()}
        parts, grads = train.network_step(params, spec, norm, state, dev(batch), loss)
        out[name] = parts, {k: backend.to_host(g) for k, g in grads.items()}
    assert abs(out["gpu"][0]["total"] - out["cpu"][0]["total"]) <= 1e-4 * abs(out["cpu"][0]["total"])
    for k, g in out["cpu"][1].items():
        assert rel_error(out["gpu"][1][k], g, floor=1e-3) < 1e-2, f"{norm}: gradient of {k} differs on the GPU"
