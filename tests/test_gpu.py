"""The engine on CuPy: the same numbers as on NumPy, and no host round trips inside the loop.

Every test runs twice: on ``fakecupy`` (NumPy underneath, CuPy's refusals on
top: implicit host conversions, NumPy operands in device operations,
NumPy-only functions) everywhere, CI included; and on real CuPy, marked
``gpu`` and skipped where CuPy or a CUDA device is missing. Run the real ones
on a GPU machine with ``pytest -m gpu``.
"""
import json
import zlib

import numpy as np
import pytest
from PIL import Image

from numstyle import backend, gatys, gatys_tiled, lbfgs, train, transformer, vgg
from numstyle.cli import main
from numstyle.gradcheck import rel_error
from numstyle.fast import gpu_kernels as kernels

import fakecupy
from conftest import TINY_WIDTH
from test_gradcheck import CASES, NUMPY_ONLY

def _outputs(make, dev, seed):
    """Forward output and VJP of one case, built with its arrays on ``dev``;
    returned on the host."""
    rng = np.random.default_rng(seed)
    f, vjp, inputs = make(rng, dev)
    y = f(*inputs)
    # losses: a float
    dout = dev(np.random.default_rng(seed + 1).standard_normal(getattr(y, "shape", ())))
    grads = vjp(dout, *inputs)
    return backend.to_host(y), [None if g is None else backend.to_host(g) for g in grads], y, grads


DEVICE_CASES = [c for c in CASES if c[0].rpartition("[")[2].rstrip("]") not in NUMPY_ONLY]


@pytest.mark.parametrize("name,make,tol", DEVICE_CASES, ids=[c[0] for c in DEVICE_CASES])
def test_every_gradient_case_matches_numpy(cp, name, make, tol):
    """Each row of the gradient-check table (float64): CuPy gives NumPy's forward and backward."""
    seed = zlib.crc32(name.encode())
    y_cpu, g_cpu, _, _ = _outputs(make, lambda a: a, seed)
    y_gpu, g_gpu, y_dev, g_dev = _outputs(make, cp.asarray, seed)
    assert isinstance(y_dev, (cp.ndarray, float)), \
        f"{name}: forward left the GPU ({type(y_dev).__name__})"
    # float64 on both; only summation order differs: ~1e-12, far under float32's 1e-6
    assert rel_error(y_gpu, y_cpu, floor=1e-6) < 1e-6, f"{name}: forward differs on CuPy"
    for k, (a, b, d) in enumerate(zip(g_gpu, g_cpu, g_dev)):
        if b is None:
            continue
        assert isinstance(d, cp.ndarray), f"{name}: gradient {k} came back as {type(d).__name__}"
        assert rel_error(a, b, floor=1e-6) < 1e-6, f"{name}: gradient {k} differs on CuPy"


def _count_host_copies(cp, monkeypatch):
    """Count the array copies to the host: numstyle makes them all through ``cupy.asnumpy``
    (backend.to_host)."""
    calls = {"n": 0}
    real_asnumpy = cp.asnumpy

    def asnumpy(*a, **k):
        calls["n"] += 1
        return real_asnumpy(*a, **k)

    monkeypatch.setattr(cp, "asnumpy", asnumpy)
    return calls


def _tiny_objective(dev, tile=None):
    params = {k: (dev(w), dev(b))
              for k, (w, b) in vgg.random_params("vgg16", TINY_WIDTH, seed=2).items()}
    rng = np.random.default_rng(0)
    content = dev(rng.uniform(-100, 100, (1, 3, 48, 64)).astype(np.float32))
    style = dev(rng.uniform(-100, 100, (1, 3, 40, 40)).astype(np.float32))
    return gatys_tiled.make_objective(params, "vgg16", content=content, styles=[style],
                                      tv_weight=1e-3, tile=tile), content


def test_objective_stays_on_the_gpu(cp, monkeypatch):
    """One Gatys evaluation: the gradient is a CuPy array, and one copy reaches the host: the loss
    terms, read together at the end (backend.to_floats) rather than one sync per layer."""
    objective, x = _tiny_objective(cp.asarray)
    calls = _count_host_copies(cp, monkeypatch)
    loss, grad = objective(x)
    assert isinstance(grad, cp.ndarray) and np.isfinite(loss)
    assert calls["n"] == 1, f"{calls['n']} device-to-host copies inside one objective evaluation"


@pytest.mark.parametrize("optimizer,tile", [("lbfgs", None), ("lbfgs", 16), ("lbfgs-device", None)])
def test_gatys_run_matches_cpu(cp, optimizer, tile):
    """Ten L-BFGS iterations from the same start land on the same losses
    (float32 rounding apart)."""
    runs = {}
    for name, dev in (("cpu", lambda a: a), ("gpu", cp.asarray)):
        objective, x0 = _tiny_objective(dev, tile)
        _, history = gatys.optimize(objective, x0, iters=10, optimizer=optimizer, progress=False)
        runs[name] = [h["total"] for h in history]
    np.testing.assert_allclose(runs["gpu"], runs["cpu"], rtol=1e-3,
                               err_msg="GPU and CPU Gatys runs diverged "
                                       "(float32 sums in another order)")


@pytest.mark.parametrize("norm", ["instance", "batch"])
def test_training_step_matches_cpu(cp, norm):
    """One training step (forward, perceptual loss, backward to every parameter) on both devices."""
    spec = transformer.style_spec((4, 6, 8), 1)
    rng = np.random.default_rng(0)
    vgg_params = vgg.random_params("vgg16", TINY_WIDTH, seed=4)
    style = rng.uniform(0, 255, (1, 3, 32, 32)).astype(np.float32)
    batch = rng.uniform(0, 255, (2, 3, 32, 32)).astype(np.float32)
    out = {}
    for name, dev in (("cpu", lambda a: a), ("gpu", cp.asarray)):
        loss = train.PerceptualLoss({k: (dev(w), dev(b)) for k, (w, b) in vgg_params.items()},
                                    dev(style), "relu2_2", ["relu1_2", "relu2_2"], 1.0, 1e-3, 1e-6)
        params = {k: dev(v) for k, v in transformer.init_params(spec, seed=0).items()}
        state = {k: {s: dev(v) for s, v in st.items()}
                 for k, st in transformer.init_state(params, norm).items()}
        parts, grads = train.network_step(params, spec, norm, state, dev(batch), loss)
        out[name] = parts, {k: backend.to_host(g) for k, g in grads.items()}
    assert abs(out["gpu"][0]["total"] - out["cpu"][0]["total"]) <= \
        1e-4 * abs(out["cpu"][0]["total"])
    for k, g in out["cpu"][1].items():
        assert rel_error(out["gpu"][1][k], g, floor=1e-3) < 1e-2, \
            f"{norm}: gradient of {k} differs on the GPU"


def test_device_lbfgs_copies_nothing_to_the_host(monkeypatch):
    """Gatys' GPU default (L1)-(L5): ten iterations; to the device the bounds, once, and each
    iteration's 2 (m + 1) coefficients of (L5); to the host each evaluation's loss terms and the
    2 (m + 1) products of (L5) twice an iteration -- small copies, never an image."""
    cp = fakecupy.install(monkeypatch)
    objective, x0 = _tiny_objective(cp.asarray)
    fakecupy.LOG.update(to_host=0, to_device=0, ops=0)
    x, history = gatys.optimize(objective, x0, iters=10, progress=False)
    assert isinstance(x, cp.ndarray) and len(history) == 10
    directions = 9                                   # iterations with pairs (the first has none)
    pairs = 10                                       # S^T y, Y^T y of each new pair
    assert fakecupy.LOG["to_host"] == objective.evaluations + directions + pairs, fakecupy.LOG
    assert fakecupy.LOG["to_device"] == 2 + directions, fakecupy.LOG


def test_device_lbfgs_iteration_is_a_few_operations(monkeypatch):
    """(L5) keeps the optimiser's own work per iteration to a few dozen device operations
    (43 here; the two-loop recursion (L2) took 143): counted with the objective's left out."""
    cp = fakecupy.install(monkeypatch)
    shape, n = (1, 3, 16, 16), 768
    target = cp.asarray(np.linspace(-1, 1, n, dtype=np.float32).reshape(shape))
    # curvatures over 4 decades
    scale = cp.asarray(np.logspace(0, -4, n, dtype=np.float32).reshape(shape))
    evaluations = []

    def fun(x):  # f = 1/2 sum scale (x - target)^2: far from done in 30
        before = fakecupy.LOG["ops"]
        g = (x - target) * scale
        f = float(0.5 * (g * (x - target)).sum())
        evaluations.append(fakecupy.LOG["ops"] - before)
        return f, g

    lo, hi = cp.asarray(np.full(shape, -0.5, np.float32)), cp.asarray(np.full(shape, 2, np.float32))
    fakecupy.LOG.update(ops=0)
    lbfgs.minimize(fun, cp.asarray(np.zeros(shape, np.float32)), 30, lo, hi, memory=10)
    per_iteration = (fakecupy.LOG["ops"] - sum(evaluations)) / 30
    assert len(evaluations) <= 33 and per_iteration <= 45, \
        f"{per_iteration:.0f} operations per L-BFGS iteration"


# -- whole commands with --device gpu: what a user runs -------------------------------------------

def _image(path, rng, shape):
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(path)
    return str(path)


def _pixels(path):
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float64)


def _same_image(a, b, what):
    """Outputs of the two devices: NumPy and the stand-in round alike; real CuPy sums
    in another order."""
    diff = np.abs(_pixels(a) - _pixels(b))
    assert diff.mean() < 0.5 and diff.max() <= 8, \
        f"{what}: GPU output differs (mean {diff.mean():.3f}, max {diff.max()})"


@pytest.mark.parametrize("extra", [["--optimizer", "lbfgs"], ["--optimizer", "lbfgs-device"],
                                   ["--preserve-colors", "luminance", "--scales", "24,32",
                                    "--optimizer", "lbfgs-device"],
                                   ["--tile", "16", "--optimizer", "lbfgs",
                                    "--style-layers", "relu1_1,relu2_1",
                                    "--content-layer", "relu2_2"],
                                   ["--optimizer", "adam", "--init", "noise"]],
                         ids=["scipy-lbfgs", "device-lbfgs", "colour+scales", "tiles", "adam"])
def test_gatys_command_on_the_gpu(cp, extra, synthetic_vgg, tmp_path, rng, capsys):
    path, _ = synthetic_vgg("vgg16")
    content, style = (_image(tmp_path / "c.png", rng, (30, 36, 3)),
                      _image(tmp_path / "s.png", rng, (28, 28, 3)))
    outs = {}
    for device in ("cpu", "gpu"):
        outs[device] = str(tmp_path / f"{device}.png")
        assert main(["gatys", "--content", content, "--style", style, "--weights", path,
                     "--model", "vgg16", "--size", "32", "--iters", "3", "--no-progress",
                     "--out", outs[device], "--device", device]
                    + extra) == 0, capsys.readouterr().err
    _same_image(outs["gpu"], outs["cpu"], f"gatys {' '.join(extra)}")
    assert cp is not fakecupy or fakecupy.LOG["ops"] > 1000, \
        "the GPU run did not run on the stand-in"


def test_train_stylize_and_upscale_commands_on_the_gpu(cp, synthetic_vgg, tmp_path, rng, capsys):
    """Train a tiny network on each device (same seed), then stylise with it,
    and the same for SR."""
    path, _ = synthetic_vgg("vgg16")
    data = tmp_path / "data"
    data.mkdir()
    for i in range(4):
        _image(data / f"p{i}.png", rng, (40, 44, 3))
    style = _image(tmp_path / "style.png", rng, (32, 32, 3))
    photo = _image(tmp_path / "odd.png", rng, (37, 45, 3))
    out = {}
    for device in ("cpu", "gpu"):
        model, sr_model = str(tmp_path / f"{device}.h5"), str(tmp_path / f"{device}_sr.h5")
        common = ["--data", str(data), "--batch-size", "2", "--iters", "2", "--n-res", "1",
                  "--no-progress", "--device", device]
        assert main(["train", "--style", style, "--weights", path, "--size", "32",
                     "--width", "4,6,8", "--style-layers", "relu1_2,relu2_2",
                     "--content-layer", "relu2_2", "--out", model]
                    + common) == 0, capsys.readouterr().err
        assert main(["sr-train", "--scale", "2", "--size", "16", "--width", "8",
                     "--out", sr_model] + common) == 0
        out[device] = str(tmp_path / f"{device}_styled.png"), str(tmp_path / f"{device}_up.png")
        assert main(["stylize", "--model", model, photo, "--out", out[device][0], "--no-progress",
                     "--device", device]) == 0, capsys.readouterr().err
        assert main(["upscale", "--model", sr_model, photo, "--out", out[device][1],
                     "--no-progress", "--device", device]) == 0, capsys.readouterr().err
    _same_image(out["gpu"][0], out["cpu"][0], "train + stylize")
    _same_image(out["gpu"][1], out["cpu"][1], "sr-train + upscale")
    with Image.open(out["gpu"][1]) as im:
        assert im.size == (90, 74)


@pytest.mark.parametrize("what", [["gatys", "--model", "vgg16", "--size", "32"],
                                  ["stylize", "--size", "32"],
                                  ["train", "--size", "32", "--batch-size", "1"]],
                         ids=["gatys", "stylize", "train"])
def test_bench_on_the_gpu(cp, what, capsys):
    assert main(["bench"] + what + ["--device", "gpu", "--runs", "1", "--json"]) == 0, \
        capsys.readouterr().err
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["device"] == "gpu" and result["median_s"] > 0 and result["gpu"], result


# -- kernel launches: what makes a GPU slow when the arithmetic is not --------------------------

def _device_ops(f):
    """The counts of a warm call: buffers a first call allocates (scratch, once)
    are not per step."""
    f()
    for key in fakecupy.LOG:
        fakecupy.LOG[key] = 0
    f()
    return dict(fakecupy.LOG)


def test_device_operations_do_not_grow_with_the_image(monkeypatch):
    """On the device every layer is one piece (no CPU-cache bands, no Winograd steps): the count of
    device operations -- a proxy for kernel launches, ~5-10 us each -- is the same at every size,
    and within the budgets of docs/gpu.md. Host reads: Gatys' loss terms, in one
    copy; no scalar syncs."""
    cp = fakecupy.install(monkeypatch)
    rng = np.random.default_rng(0)
    dev = lambda shape, lo=-100, hi=100: cp.asarray(  # noqa: E731
        rng.uniform(lo, hi, shape).astype(np.float32))
    vgg_params = {k: (cp.asarray(w), cp.asarray(b))
                  for k, (w, b) in vgg.random_params("vgg19", seed=1).items()}
    spec = transformer.style_spec()
    net = train.params_to(transformer.init_params(spec), "gpu")
    counts = {}
    for size in (48, 160):  # 160: conv1_2's columns would be split in 6 bands on the CPU
        objective = gatys.make_objective(vgg_params, "vgg19", content=dev((1, 3, size, size)),
                                         styles=[dev((1, 3, size, size))], tv_weight=1e-3)
        x = dev((1, 3, size, size))
        counts[size] = (_device_ops(lambda: objective(x)),
                        _device_ops(lambda: transformer.transformer_forward(
                            net, dev((1, 3, size, size), -1, 1), spec, train=False,
                            keep_caches=False)))
    (gatys_small, stylize_small), (gatys_large, stylize_large) = counts[48], counts[160]
    assert gatys_small["ops"] == gatys_large["ops"], \
        f"Gatys evaluation: {gatys_small} at 48 px, {gatys_large} at 160"
    assert stylize_small["ops"] == stylize_large["ops"], \
        f"stylise: {stylize_small} at 48 px, {stylize_large} at 160"
    if kernels.enabled(cp):  # the fused kernels of numstyle/ops/kernels.py (docs/gpu.md)
        # with Winograd (W3)-(W5) a residual conv is three launches
        # (im2col's two and the bias before)
        assert gatys_large["ops"] <= 340 and stylize_large["ops"] <= 345, \
            (gatys_large, stylize_large)
        assert gatys_large["launches"] <= 165 and stylize_large["launches"] <= 150, \
            (gatys_large, stylize_large)
    else:  # the plain array code (NUMSTYLE_FUSED=0, or no g++ for fakecupy)
        assert gatys_large["ops"] <= 800 and stylize_large["ops"] <= 850, \
            (gatys_large, stylize_large)
        assert gatys_large["launches"] <= 360 and stylize_large["launches"] <= 380, \
            (gatys_large, stylize_large)
    assert (gatys_large["to_host"] == 1 and gatys_large["to_device"] == 0
            and stylize_large["to_device"] == 1), \
        (gatys_large, stylize_large)       # Gatys: the loss terms, once; stylise: its input only
    assert gatys_large["scalar_reads"] == stylize_large["scalar_reads"] == 0, \
        (gatys_large, stylize_large)
