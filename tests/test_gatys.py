"""The optimisation loop on tiny random networks, and a real-weight smoke test."""
import numpy as np
import pytest

from numstyle import gatys, image, vgg, weights
from numstyle.errors import LayerError, NonFiniteLossError, NumstyleError

from conftest import TINY_WIDTH, real_vgg16_path


def _tiny(rng, size=32):
    params = vgg.random_params("vgg16", width=TINY_WIDTH, seed=2)
    content = (rng.standard_normal((1, 3, size, size)) * 40).astype(np.float32)
    style = (rng.standard_normal((1, 3, size + 8, size)) * 40).astype(np.float32)
    return params, content, style


@pytest.mark.parametrize("optimizer", ["lbfgs", "lbfgs-device", "adam"])
def test_optimizer_lowers_the_loss_and_keeps_pixel_bounds(optimizer, rng):
    params, content, style = _tiny(rng)
    obj = gatys.make_objective(params, "vgg16", content=content, styles=[style], tv_weight=1e-3)
    x0 = (rng.standard_normal(content.shape) * 60).astype(np.float32)
    first, _ = obj(x0)
    x, history = gatys.optimize(obj, x0, iters=15, optimizer=optimizer, lr=5.0, progress=False)
    assert len(history) >= 5
    assert history[-1]["total"] < 0.5 * first, \
        f"{optimizer}: {first:.3g} -> {history[-1]['total']:.3g}"
    lo, hi = image.pixel_bounds(x.shape)
    assert (x >= lo - 1e-3).all() and (x <= hi + 1e-3).all()


def test_device_lbfgs_keeps_up_with_scipy(rng):
    """Projected L-BFGS (L1)-(L4) against SciPy's L-BFGS-B on the same objective and start: as low a
    loss after 80 iterations, within 10 % (here 3 %; on the real VGG16, 100 iterations at 128 px:
    0.1 %, 200 at 256 px: 0.8 %; docs/benchmarks.md)."""
    params, content, style = _tiny(rng, 40)
    obj = gatys.make_objective(params, "vgg16", content=content, styles=[style], tv_weight=1e-3)
    final = {}
    for optimizer in ("lbfgs", "lbfgs-device"):
        _, history = gatys.optimize(obj, content.copy(), iters=80, optimizer=optimizer,
                                    progress=False)
        final[optimizer] = history[-1]["total"]
    assert final["lbfgs-device"] <= 1.1 * final["lbfgs"], final


def test_content_reconstruction_and_texture_synthesis_are_special_cases(rng):
    params, content, style = _tiny(rng)
    recon = gatys.make_objective(params, "vgg16", content=content, content_layer="relu2_2",
                                 tv_weight=0.0)
    assert recon(content)[0] == 0.0           # the content image reconstructs itself exactly
    texture = gatys.make_objective(params, "vgg16", styles=[style], tv_weight=0.0)
    assert texture.shape == style.shape       # texture takes the style image's shape by default
    assert texture(style)[0] < 1e-6 * texture(content)[0] + 1e-6


def test_bad_layers_and_small_images_are_clear_errors(rng):
    params, content, style = _tiny(rng)
    with pytest.raises(LayerError, match="unknown layer 'conv6_1'"):
        gatys.make_objective(params, "vgg16", content=content, content_layer="conv6_1")
    with pytest.raises(LayerError, match="unknown layer 'relu3_4'"):  # VGG19 has it, VGG16 does not
        gatys.make_objective(params, "vgg16", styles=[style], style_layers=["relu3_4"])
    with pytest.raises(NumstyleError, match="too small"):
        gatys.make_objective(params, "vgg16", content=content[:, :, :4, :4])  # relu4_2 needs 8 px


def test_nan_weights_raise_a_non_finite_loss_error(rng):
    params, content, style = _tiny(rng)
    w, b = params["conv2_1"]
    params["conv2_1"] = (np.full_like(w, np.nan), b)
    obj = gatys.make_objective({**params, "conv1_1": params["conv1_1"]}, "vgg16", content=content,
                               content_layer="relu1_1", styles=[style], style_layers=["relu2_1"])
    with pytest.raises(NonFiniteLossError, match="nan"):
        obj(content)


@pytest.mark.skipif(real_vgg16_path() is None,
                    reason="real VGG16 weights not found (set NUMSTYLE_DATA=../shared)")
def test_real_vgg16_smoke(rng):
    params = weights.load_vgg(real_vgg16_path(), "vgg16")
    yy, xx = np.mgrid[0:64, 0:64]
    content = image.preprocess(np.stack([xx * 4, yy * 4, (xx + yy) * 2], -1).astype(np.float32))
    style = image.preprocess(rng.uniform(0, 255, (64, 64, 3)).astype(np.float32))
    obj = gatys.make_objective(params, "vgg16", content=content, styles=[style])
    x, history = gatys.optimize(obj, content.copy(), iters=10, progress=False)
    assert np.isfinite(history[-1]["total"])
    assert history[-1]["total"] < 0.7 * history[0]["total"]


def test_reference_and_fast_engines_agree(rng):
    """NUMSTYLE_REFERENCE=1 computes what the fast paths compute (float32, as a user runs it): one
    Gatys evaluation, one training step, one stylised image."""
    from numstyle import settings, train, transformer
    from numstyle.stylize import stylize_array

    # wide enough for Winograd
    vgg_params = vgg.random_params("vgg16", width=(8, 8, 64, 64, 64), seed=4)
    spec = transformer.style_spec((4, 6, 8), 1)
    params = transformer.init_params(spec, seed=2)
    content, style = (rng.uniform(-100, 100, (1, 3, 32, 40)).astype(np.float32) for _ in range(2))
    batch = rng.uniform(0, 255, (2, 3, 24, 24)).astype(np.float32)
    photo = rng.uniform(0, 255, (21, 27, 3)).astype(np.float32)
    out = {}
    for reference in (True, False):
        settings.update(reference=reference)
        try:
            obj = gatys.make_objective(vgg_params, "vgg16", content=content, styles=[style])
            loss, grad = obj(content + 5)
            perceptual = train.PerceptualLoss(vgg_params, batch[:1], "relu2_2",
                                              ["relu1_2", "relu2_2"], 1.0, 1e-3, 1e-6)
            parts, grads = train.network_step(dict(params), spec, "instance", {}, batch, perceptual)
            y = stylize_array(params,
                              {"kind": "style", "norm": "instance", "width": [4, 6, 8], "n_res": 1},
                              {}, photo)
        finally:
            settings.reload()
        out[reference] = loss, grad, parts["total"], grads, y
    (l0, g0, t0, gr0, y0), (l1, g1, t1, gr1, y1) = out[True], out[False]
    norm = lambda a, b: float(np.linalg.norm(a - b) / np.linalg.norm(b))  # noqa: E731
    assert abs(l1 - l0) <= 1e-4 * abs(l0) and norm(g1, g0) < 1e-3, (l0, l1, norm(g1, g0))
    assert abs(t1 - t0) <= 1e-4 * abs(t0)
    assert all(norm(gr1[k], gr0[k]) < 1e-3 for k in gr0), {k: norm(gr1[k], gr0[k]) for k in gr0}
    assert np.abs(y1 - y0).max() < 0.05, np.abs(y1 - y0).max()  # 0..255: far below a grey level
