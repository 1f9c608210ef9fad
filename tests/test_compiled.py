"""The compiled Winograd transforms (numstyle/fast/winograd_numba.py) against their twin, the array
code of numstyle/fast/winograd.py, the compiled pooling (numstyle/fast/pool_numba.py) against the
reference layers, the compiled inference normalisation (numstyle/fast/norm_numba.py) against the
array code, and the engine's choice of them. Skipped without Numba (the optional extra
numstyle[fast]); the gradient-check table covers the layers themselves."""
import time

import numpy as np
import pytest

from numstyle import engine, layers, settings, transformer, vgg
from numstyle.fast import (activations, norm, norm_numba, parallel, pool_numba, winograd,
                           winograd_numba)
from numstyle.gradcheck import check_vjp, rel_error

pytestmark = pytest.mark.skipif(not winograd_numba.INSTALLED, reason="needs Numba (numstyle[fast])")


@pytest.mark.parametrize("schedule", ["whole", "bands"])
@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("pad", [0, 1])
@pytest.mark.parametrize("shape", [(2, 3, 7, 9), (1, 5, 8, 8), (1, 2, 3, 4), (2, 4, 13, 5)])
def test_compiled_transforms_match_the_array_code(m, pad, shape, schedule, monkeypatch):
    """Every size, ragged or not, both paddings, F(2x2) and F(4x4), both schedules: the array
    code's F(2x2) result to round-off (float64: the same sums in another order)."""
    if schedule == "bands":
        monkeypatch.setattr(winograd_numba, "WHOLE_TILES", 0)
    rng = np.random.default_rng(sum(shape) + 10 * m + pad)
    x = rng.standard_normal(shape)
    w = rng.standard_normal((3, shape[1], 3, 3))
    b = rng.standard_normal(3)
    want = winograd.convolve(x, winograd.transform_kernel(w, 2), pad, b)
    got = winograd_numba.convolve(x, winograd.transform_kernel(w, m), pad, b)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-11 * np.abs(want).max())
    if m == 2:   # (W8): the adjoint from the forward's transform, as the array code's
        dy = rng.standard_normal((shape[0], 3) + tuple(s + 2 - 2 * pad for s in shape[2:]))
        want = winograd.winograd_conv3x3_input_grad(dy, winograd.transform_kernel(w, 2), 2 - pad)
        got = winograd_numba.convolve(dy, winograd.transform_kernel(w, 2), pad, flip=True)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-11 * np.abs(want).max())


def test_compiled_transforms_in_bands_of_one_tile_row(monkeypatch):
    """Bands of one tile row give the whole image's output: each band writes only its rows."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 18, 11)).astype(np.float32)
    w_hat = winograd.transform_kernel(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), 4)
    whole = winograd_numba.convolve(x, w_hat)
    monkeypatch.setattr(winograd_numba, "WHOLE_TILES", 0)
    monkeypatch.setattr(winograd_numba, "BAND_TILES", 1)
    assert len(parallel.split_rows(5, 100, 1)) == 5
    np.testing.assert_array_equal(winograd_numba.convolve(x, w_hat), whole)


def test_the_engine_picks_the_compiled_path_unless_turned_off(monkeypatch):
    """VGG's convolutions (constant, 64 channels or more) go to the compiled layer; with
    NUMSTYLE_COMPILED=0 to the array code's Winograd, which gives the same output."""
    rng = np.random.default_rng(4)
    w, b = rng.standard_normal((8, 64, 3, 3)) * 0.1, rng.standard_normal(8)
    x = rng.standard_normal((1, 64, 10, 7))

    def built():
        layer = layers.Conv2d(w, b, pad=1)
        layer.trainable = False
        return engine.select(layer)

    compiled = built()
    assert type(compiled) is winograd_numba.CompiledWinogradConv2d
    monkeypatch.setenv("NUMSTYLE_COMPILED", "0")
    settings.reload()
    try:
        array_code = built()
    finally:
        monkeypatch.delenv("NUMSTYLE_COMPILED")
        settings.reload()
    assert type(array_code) is winograd.WinogradConv2d
    (y1, c1), (y2, c2) = compiled.forward(x), array_code.forward(x)
    np.testing.assert_allclose(y1, y2, rtol=1e-10, atol=1e-10)
    dy = rng.standard_normal(y1.shape)
    np.testing.assert_allclose(compiled.backward(dy, c1)[0], array_code.backward(dy, c2)[0],
                               rtol=1e-10, atol=1e-10)


def test_a_slow_first_use_says_it_is_compiling(monkeypatch, capsys):
    """The first convolution of a dtype compiles every kernel; when that is slow (Numba compiling,
    not loading its cache) one line on stderr says so, and the result is unchanged."""
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((1, 4, 9, 9)), rng.standard_normal((3, 4, 3, 3))
    w_hat = winograd.transform_kernel(w, 2)                               # (16, 3, 4)
    expected = winograd_numba.convolve(x, w_hat)
    capsys.readouterr()
    calls = []

    def slow(kernel):
        def run(*args):
            calls.append(kernel)
            time.sleep(0.1)                     # stands in for the compiler
            return kernel(*args)
        return run

    for m, pair in list(winograd_numba.KERNELS.items()):
        monkeypatch.setitem(winograd_numba.KERNELS, m, tuple(slow(k) for k in pair))
    monkeypatch.setattr(winograd_numba, "NOTICE_AFTER_S", 0.05)
    monkeypatch.setattr(winograd_numba, "_ready", set())
    np.testing.assert_array_equal(winograd_numba.convolve(x, w_hat), expected)
    assert capsys.readouterr().err.strip() == winograd_numba.NOTICE
    assert len({id(k) for k in calls}) == 4     # (W3) and (W5) of F(2x2) and F(4x4): all compiled
    winograd_numba.convolve(x, w_hat)           # the second use: quiet
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(2, 3, 8, 6), (1, 5, 7, 9), (3, 2, 1, 3), (1, 70, 16, 16)])
@pytest.mark.parametrize("kind", ["avg", "max"])
def test_compiled_pooling_matches_the_reference(kind, shape, dtype, monkeypatch):
    """Every size, odd or even, in bands of a few planes: the reference layer's output and
    gradient; for max pooling with ties everywhere (small integers), the first maximum's, as
    ``argmax``."""
    monkeypatch.setattr(pool_numba, "BAND_BYTES", 1024)
    rng = np.random.default_rng(sum(shape))
    x = rng.integers(-2, 3, shape).astype(dtype) if kind == "max" else \
        rng.standard_normal(shape).astype(dtype)
    reference = {"avg": layers.AvgPool2d, "max": layers.MaxPool2d}[kind](2)
    compiled = {"avg": pool_numba.CompiledAvgPool2d,
                "max": pool_numba.CompiledMaxPool2d}[kind].replacing(reference)
    (want, want_cache), (got, got_cache) = reference.forward(x), compiled.forward(x)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, want, rtol=1e-6)
    dy = rng.standard_normal(want.shape).astype(dtype)
    want_dx, got_dx = reference.backward(dy, want_cache)[0], compiled.backward(dy, got_cache)[0]
    assert got_dx.shape == x.shape
    np.testing.assert_allclose(got_dx, want_dx, rtol=1e-6)


def test_the_engine_picks_the_compiled_pooling_unless_turned_off(monkeypatch):
    """2x2 pooling goes to the compiled layers; larger windows and NUMSTYLE_COMPILED=0 to the
    array code."""
    assert type(engine.select(layers.AvgPool2d(2))) is pool_numba.CompiledAvgPool2d
    assert type(engine.select(layers.MaxPool2d(2))) is pool_numba.CompiledMaxPool2d
    assert type(engine.select(layers.MaxPool2d(3))) is not pool_numba.CompiledMaxPool2d
    monkeypatch.setenv("NUMSTYLE_COMPILED", "0")
    settings.reload()
    try:
        assert type(engine.select(layers.AvgPool2d(2))) is not pool_numba.CompiledAvgPool2d
    finally:
        monkeypatch.delenv("NUMSTYLE_COMPILED")
        settings.reload()


def test_a_convolution_applies_its_relu_unless_tapped():
    """In VGG's chain each compiled convolution whose own output is not tapped applies the ReLU
    after it (forward and backward), and that ReLU passes values through; the tapped features
    and the image gradient are the reference engine's (float64, to round-off)."""
    params = vgg.random_params("vgg16", dtype=np.float64)      # full widths: the compiled layers
    x = np.random.default_rng(5).standard_normal((1, 3, 20, 18)) * 50
    taps = ["relu1_2", "conv3_1", "relu3_1", "relu4_2", "relu5_1"]
    results = {}
    for reference in (True, False):
        settings.update(reference=reference)
        try:
            net = vgg.VGG(params, "vgg16", "avg", taps)
            feats, cache = net.forward(x, taps)
            feats = {name: f.copy() for name, f in feats.items()}
            dfeats = {name: np.random.default_rng(6).standard_normal(f.shape)
                      for name, f in feats.items()}
            results[reference] = feats, net.backward(dfeats, cache), net
        finally:
            settings.reload()
    fast = dict(zip(results[False][2].names, results[False][2].layers))
    assert fast["conv1_2"].rectify and type(fast["relu1_2"]) is activations.Rectified
    assert not fast["conv3_1"].rectify and type(fast["relu3_1"]) is activations.ChunkedReLU
    assert type(fast["relu1_1"]) is activations.ChunkedReLU    # conv1_1: 3 channels, im2col
    for name in taps:
        assert rel_error(results[False][0][name], results[True][0][name], floor=1e-6) < 1e-9, name
    assert rel_error(results[False][1], results[True][1], floor=1e-6) < 1e-9


def test_a_rectifying_convolution_passes_the_gradient_check():
    """(R1) after (W3)-(W5), and (R1)'s backward inside the adjoint's (W3), against centred
    differences: F(4x4) (64 channels: the flipped kernel's forward) and F(2x2) (the (W8)
    adjoint)."""
    for C in (64, 160):
        rng = np.random.default_rng(C)
        conv = layers.Conv2d(rng.standard_normal((3, C, 3, 3)) * 0.1, rng.standard_normal(3))
        conv.trainable = False
        layer = winograd_numba.CompiledWinogradConv2d.replacing(conv)
        layer.rectify = True
        x = rng.standard_normal((1, C, 5, 6))
        errors = check_vjp(lambda x: layer.forward(x)[0],
                           lambda dy, x: [layer.backward(dy, layer.forward(x)[1])[0]], [x])
        assert errors[0] < 1e-5, (C, errors)   # KINKED: no output within h of 0 here


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("kind", ["instance", "batch"])
def test_compiled_norm_inference_matches_the_array_code(kind, relu, dtype, monkeypatch):
    """(N1) and (R1) in place, the image's own statistics (recorded, for one image) or the running
    averages, in bands of a few planes: the array code's result (float64 sums: to float32
    round-off)."""
    monkeypatch.setattr(norm_numba, "BAND_BYTES", 512)
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((2 if kind == "batch" else 1, 5, 7, 9)) * 3 + 2).astype(dtype)
    gamma, beta = rng.standard_normal(5).astype(dtype), rng.standard_normal(5).astype(dtype)
    stats = {"mean": rng.standard_normal(5).astype(dtype), "var": rng.random(5).astype(dtype)}
    want_running, got_running = dict(stats), dict(stats)
    want = norm.norm_inference(x.copy(), gamma, beta, kind, running=want_running, relu=relu)
    y = x.copy()
    got = norm_numba.norm_inference(y, gamma, beta, kind, running=got_running, relu=relu)
    assert got is y and got.dtype == dtype
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    for key in stats:
        np.testing.assert_allclose(got_running[key], want_running[key], rtol=tol, atol=tol)
    if relu:
        assert (got >= 0).all() and (got == 0).any()


def test_the_engine_picks_the_compiled_norm_and_joins_its_relu():
    """Norms go to CompiledNorm, a norm and its ReLU to a NormReLU around a CompiledNorm;
    stylising with them gives the array code's image."""
    spec = transformer.style_spec((4, 6, 8), 1)
    params = transformer.init_params(spec, seed=3)
    state = transformer.init_state(params, "instance")
    x = np.random.default_rng(8).uniform(-1, 1, (1, 3, 12, 10)).astype(np.float32)
    net = transformer.build(params, spec, "instance", train=False, state=state, trainable=False)
    joined = [layer for layer in net.layers if isinstance(layer, norm.NormReLU)]
    assert joined and all(type(layer.norm) is norm_numba.CompiledNorm for layer in joined)
    outputs = []
    for compiled in ("1", "0"):
        settings.update(compiled=compiled == "1")
        try:
            outputs.append(transformer.transformer_forward(params, x, spec, "instance",
                                                           train=False, state=state,
                                                           keep_caches=False)[0])
        finally:
            settings.reload()
    np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-4, atol=1e-4)
