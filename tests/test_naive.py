"""Every vectorised op -- reference and fast -- against its loop twin
(numstyle.naive), on seeded cases."""
import zlib

import numpy as np
import pytest

from numstyle import layers, losses, naive, settings, vgg
from numstyle import transformer_layers as tl
from numstyle.fast import activations, conv, im2col, pad, parallel, pool, upsample, winograd
from numstyle.gradcheck import rel_error

import test_gradcheck as table

# the last: F = 3 < C / 2 (CV5/CV6 routes)
SHAPES = [(1, 1, 5, 5), (2, 3, 7, 6), (1, 2, 4, 9), (2, 8, 6, 7)]
CONV = [(3, 1, 1), (3, 2, 1), (3, 1, 0), (1, 1, 0), (5, 2, 2)]   # (kernel, stride, pad)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("k,stride,pad", CONV)
def test_im2col_and_col2im_match_naive(shape, k, stride, pad, rng):
    x = rng.standard_normal(shape)
    if shape[2] + 2 * pad < k or shape[3] + 2 * pad < k:
        pytest.skip("kernel larger than the padded image")
    cols = layers.im2col(x, k, k, stride, pad)
    np.testing.assert_allclose(cols, naive.im2col_loops(x, k, k, stride, pad), rtol=0, atol=0,
                               err_msg=f"im2col {shape} k={k} s={stride} p={pad}")
    xpad = im2col.zero_pad(x, pad)  # the GPU's route: one copy of the strided view
    Ho, Wo = (layers.output_size(shape[2], k, stride, pad),
              layers.output_size(shape[3], k, stride, pad))
    view = im2col.tap_view(xpad, k, k, stride, Ho, Wo)   # (N, C, k, k, Ho, Wo)
    np.testing.assert_array_equal(view.reshape(cols.shape), cols,
                                  err_msg=f"tap_view {shape} k={k} s={stride}")
    d = rng.standard_normal(cols.shape)
    np.testing.assert_allclose(layers.col2im(d, shape, k, k, stride, pad),
                               naive.col2im_loops(d, shape, k, k, stride, pad), rtol=1e-12,
                               atol=1e-12, err_msg=f"col2im {shape} k={k} s={stride} p={pad}")


def test_col2im_is_the_adjoint_of_im2col(rng):
    # <im2col(x), c> == <x, col2im(c)>: the identity the convolution backward rests on (K2)
    x = rng.standard_normal((2, 3, 6, 7))
    cols = layers.im2col(x, 3, 3, 2, 1)
    c = rng.standard_normal(cols.shape)
    assert np.isclose(np.sum(cols * c), np.sum(x * layers.col2im(c, x.shape, 3, 3, 2, 1)),
                      rtol=1e-12)


def naive_conv(x, w, b, stride, pad):
    """The loop twin's forward (CV1): numstyle.naive.Conv2dLoops."""
    return naive.Conv2dLoops(w, b, stride, pad).forward(x)[0]


def naive_conv_backward(d, x, w, stride, pad):
    """The loop twin's backward, ``(dx, dw, db)`` (CV2)-(CV4)."""
    dx, grads = naive.Conv2dLoops(w, np.zeros(w.shape[0]), stride, pad).backward(d, x)
    return dx, grads["w"], grads["b"]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("k,stride,pad", CONV)
def test_conv_matches_naive(shape, k, stride, pad, rng):
    if shape[2] + 2 * pad < k or shape[3] + 2 * pad < k:
        pytest.skip("kernel larger than the padded image")
    x = rng.standard_normal(shape)
    w = rng.standard_normal((3, shape[1], k, k))
    b = rng.standard_normal(3)
    out, cache = conv.conv2d_forward(x, w, b, stride, pad)
    np.testing.assert_allclose(out, naive_conv(x, w, b, stride, pad), rtol=1e-10, atol=1e-10)
    d = rng.standard_normal(out.shape)
    for fast, naive, name in zip(conv.conv2d_backward(d, cache),
                                 naive_conv_backward(d, x, w, stride, pad), ("dx", "dw", "db")):
        np.testing.assert_allclose(fast, naive, rtol=1e-10, atol=1e-10,
                                   err_msg=f"{name} {shape} k={k} s={stride}")
    dx_only, dw, db = conv.conv2d_backward(d, cache, weight_grad=False)
    assert dw is None and db is None
    np.testing.assert_allclose(dx_only, conv.conv2d_backward(d, cache)[0])


def test_conv_non_square_kernel_backward(rng):
    x = rng.standard_normal((1, 4, 6, 7))
    w = rng.standard_normal((2, 4, 3, 5))
    out, cache = conv.conv2d_forward(x, w, None, 1, 1)
    d = rng.standard_normal(out.shape)
    for fast, naive in zip(conv.conv2d_backward(d, cache), naive_conv_backward(d, x, w, 1, 1)):
        np.testing.assert_allclose(fast, naive, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("band_bytes", [1 << 30, 200])   # whole image, and bands of one output row
def test_banded_conv_equals_whole_image(band_bytes, rng, monkeypatch):
    x = rng.standard_normal((2, 3, 9, 7))
    w = rng.standard_normal((5, 3, 3, 3))
    monkeypatch.setattr(conv, "BAND_BYTES", band_bytes)
    for stride in (1, 2):
        out, cache = conv.conv2d_forward(x, w, None, stride, 1)
        np.testing.assert_allclose(out, naive_conv(x, w, None, stride, 1), rtol=1e-10, atol=1e-10)
        d = rng.standard_normal(out.shape)
        for fast, naive in zip(conv.conv2d_backward(d, cache),
                               naive_conv_backward(d, x, w, stride, 1)):
            np.testing.assert_allclose(fast, naive, rtol=1e-10, atol=1e-10)


def test_conv_float32_stays_float32(rng):
    x = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    out, cache = conv.conv2d_forward(x, w, np.zeros(4, np.float32), 1, 1)
    assert out.dtype == np.float32
    assert conv.conv2d_backward(out, cache, weight_grad=False)[0].dtype == np.float32


@pytest.mark.parametrize("shape", SHAPES + [(2, 2, 6, 8)])
def test_pools_and_relu_match_naive(shape, rng):
    x = rng.standard_normal(shape)
    np.testing.assert_allclose(pool.avg_pool_forward(x)[0], naive.AvgPool2dLoops().forward(x)[0],
                               rtol=1e-12)
    np.testing.assert_array_equal(pool.max_pool_forward(x)[0], naive.MaxPool2dLoops().forward(x)[0])
    np.testing.assert_array_equal(activations.relu_forward(x)[0], naive.ReLULoops().forward(x)[0])


@pytest.mark.parametrize("shape,k", [((2, 3, 8, 6), 2), ((1, 2, 7, 9), 2), ((1, 2, 9, 7), 3)])
def test_max_pool_backward_matches_naive_with_ties(shape, k, rng):
    """After a ReLU most windows hold ties (zeros), and integer data repeats values: the first
    maximum in row-major order gets the gradient, odd trailing pixels none."""
    for x in (np.maximum(rng.standard_normal(shape), 0),
              rng.integers(0, 3, shape).astype(np.float64)):
        out, cache = pool.max_pool_forward(x, k)
        np.testing.assert_array_equal(out, naive.MaxPool2dLoops(k).forward(x)[0])
        d = rng.standard_normal(out.shape)
        np.testing.assert_array_equal(pool.max_pool_backward(d, cache),
                                      naive.MaxPool2dLoops(k).backward(d, x)[0],
                                      err_msg=f"{shape} k={k}")
        reference = layers.MaxPool2d(k)  # argmax over the windows: the same
        np.testing.assert_array_equal(reference.backward(d, reference.forward(x)[1])[0],
                                      pool.max_pool_backward(d, cache),
                                      err_msg=f"reference {shape} k={k}")


@pytest.mark.parametrize("shape,s", [((2, 3, 4, 5), 2), ((1, 2, 3, 1), 3)])
def test_nearest_upsampling_matches_naive(shape, s, rng):
    x = rng.standard_normal(shape)
    y, cache = upsample.upsample_nearest_forward(x, s)
    np.testing.assert_array_equal(y, naive.UpsampleLoops(s).forward(x)[0],
                                  err_msg=f"(U1) {shape} s={s}")
    d = rng.standard_normal(y.shape)  # float64: the sums differ only in order
    np.testing.assert_allclose(upsample.upsample_nearest_backward(d, cache),
                               naive.UpsampleLoops(s).backward(d, x.shape)[0], rtol=1e-12,
                               atol=1e-14, err_msg=f"(U2) {shape} s={s}")


@pytest.mark.parametrize("shape", [(2, 3, 5, 4), (1, 2, 1, 3), (1, 4, 6, 7)])
def test_resize_conv_equals_upsample_pad_conv(shape, rng):
    """(U3)-(U5): four 2x2 convolutions of the small image are the 3x3 convolution of the
    up-sampled, reflection-padded one -- forward, input gradient and weight gradient."""
    x, w = rng.standard_normal(shape), rng.standard_normal((5, shape[1], 3, 3))
    y, cache = upsample.resize_conv_forward(x, w)
    book = tl.UpsampleConv(w)  # the reference: the long way, (U1), (RP1), (CV1) chained
    want, book_cache = book.forward(x)
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12, err_msg=f"forward {shape}")
    d = rng.standard_normal(y.shape)
    dx, dw = upsample.resize_conv_backward(d, cache)
    want_dx, grads = book.backward(d, book_cache)
    want_dw = grads["w"]
    np.testing.assert_allclose(dx, want_dx, rtol=1e-10, atol=1e-12, err_msg=f"dx {shape}")
    np.testing.assert_allclose(dw, want_dw, rtol=1e-10, atol=1e-12, err_msg=f"dw {shape}")


def test_max_pool_tie_goes_to_first_maximum():
    x = np.ones((1, 1, 2, 2))
    out, cache = pool.max_pool_forward(x)
    dx = pool.max_pool_backward(np.array([[[[5.0]]]]), cache)
    np.testing.assert_array_equal(dx[0, 0], [[5.0, 0.0], [0.0, 0.0]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_in_chunks_matches_naive(dtype, rng):
    """More values than one chunk of zeros (and not a multiple of it), in place,
    and a strided view."""
    x = rng.standard_normal((1, 3, 150, 170)).astype(dtype)  # 76,500 > RELU_CHUNK values
    expected = naive.ReLULoops().forward(x)[0]
    np.testing.assert_array_equal(activations.relu_forward(x)[0], expected, err_msg="copy")
    view = x[:, :, ::2]
    np.testing.assert_array_equal(activations.relu_forward(view)[0], expected[:, :, ::2],
                                  err_msg="view")
    out, _ = activations.relu_forward(x, inplace=True)
    assert out is x and out.dtype == dtype
    np.testing.assert_array_equal(x, expected, err_msg="in place")


def test_relu_subgradient_at_zero_is_zero():
    x = np.array([-1.0, 0.0, 2.0])
    out, cache = activations.relu_forward(x)
    np.testing.assert_array_equal(activations.relu_backward(np.ones(3), cache), [0.0, 0.0, 1.0])


def test_gram_and_tv_match_naive(rng):
    F = rng.standard_normal((1, 3, 4, 5))
    np.testing.assert_allclose(losses.gram_forward(F)[0], naive.gram_forward(F)[0], rtol=1e-12)
    x = rng.standard_normal((2, 3, 5, 4))
    assert np.isclose(losses.tv_loss(x)[0], naive.tv_loss(x)[0], rtol=1e-12)
    np.testing.assert_allclose(losses.tv_loss(x)[1], naive.tv_loss(x)[1], rtol=1e-12)


def test_style_target_rescales_to_the_generated_size(rng):
    # a style image tiled 2x2 has 4x the pixels and the same statistics: same target (S7)
    F = np.abs(rng.standard_normal((1, 3, 4, 4)))
    big = np.tile(F, (1, 1, 2, 2))
    gram = lambda F: losses.gram_forward(F)[0]  # noqa: E731
    np.testing.assert_allclose(losses.style_target(gram(F), 16, 16),
                               losses.style_target(gram(big), 64, 16), rtol=1e-12)
    # and the loop twin, entry by entry, gives the reference's target
    np.testing.assert_allclose(naive.style_target(gram(big), 64, 16),
                               losses.style_target(gram(big), 64, 16), rtol=1e-12)


@pytest.mark.parametrize("m", [2, 4])                    # F(2x2, 3x3) and F(4x4, 3x3)
@pytest.mark.parametrize("shape",
                         [(1, 1, 1, 1), (2, 3, 6, 6), (1, 2, 5, 7), (1, 4, 9, 4), (1, 2, 11, 13)])
@pytest.mark.parametrize("band_bytes", [1 << 30, 1500])   # one band, and many bands of one tile row
def test_winograd_matches_naive_and_direct_convolution(m, shape, band_bytes, rng, monkeypatch):
    monkeypatch.setattr(parallel, "WINOGRAD_BAND_BYTES", band_bytes)
    x = rng.standard_normal(shape)
    w = rng.standard_normal((3, shape[1], 3, 3))
    b = rng.standard_normal(3)
    out, cache = winograd.winograd_conv3x3_forward(x, w, b, winograd.transform_kernel(w, m))
    direct, dcache = conv.conv2d_forward(x, w, b, 1, 1)
    # float64 round-off only: F(4x4)'s constants (up to 8, down to 1/24) cost ~10x F(2x2)'s 1e-15
    np.testing.assert_allclose(out, naive.winograd_conv3x3_loops(x, w, b, m), rtol=1e-10,
                               atol=1e-10)
    np.testing.assert_allclose(out, direct, rtol=1e-10, atol=1e-10)
    d = rng.standard_normal(out.shape)
    for fast, ref, name in zip(winograd.winograd_conv3x3_backward(d, cache),
                               conv.conv2d_backward(d, dcache), ("dx", "dw", "db")):
        np.testing.assert_allclose(fast, ref, rtol=1e-10, atol=1e-10,
                                   err_msg=f"{name} {shape} m={m}")


@pytest.mark.parametrize("shape", [(1, 1, 3, 3), (2, 3, 6, 6), (1, 2, 7, 9), (1, 4, 10, 5)])
@pytest.mark.parametrize("band_bytes", [1 << 30, 1500])
def test_winograd_valid_matches_direct_convolution(shape, band_bytes, rng, monkeypatch):
    """pad 0 (the transformer's residual blocks, after reflection padding): forward and all three
    gradients equal im2col's, float64 round-off only; the input gradient is (W8) padded by 2."""
    monkeypatch.setattr(parallel, "WINOGRAD_BAND_BYTES", band_bytes)
    x, w, b = (rng.standard_normal(shape), rng.standard_normal((3, shape[1], 3, 3)),
               rng.standard_normal(3))
    out, cache = winograd.winograd_conv3x3_forward(x, w, b, pad=0)
    direct, dcache = conv.conv2d_forward(x, w, b, 1, 0)
    np.testing.assert_allclose(out, direct, rtol=1e-10, atol=1e-10, err_msg=f"forward {shape}")
    layer = winograd.WinogradConv2d(w, b, 1, 0)  # as the engine builds it for inference
    np.testing.assert_allclose(out, layer(x), rtol=0, atol=0)
    d = rng.standard_normal(out.shape)
    for fast, ref, name in zip(winograd.winograd_conv3x3_backward(d, cache),
                               conv.conv2d_backward(d, dcache), ("dx", "dw", "db")):
        np.testing.assert_allclose(fast, ref, rtol=1e-10, atol=1e-10, err_msg=f"{name} {shape}")


@pytest.mark.parametrize("shape", [(1, 3, 6, 6), (2, 4, 5, 7), (1, 2, 1, 3)])
def test_winograd_input_grad_is_the_flipped_kernel_convolution(shape, rng):
    # (W8): the forward Winograd path with B^T's rows and A^T's columns 0 and 3 swapped and w_hat
    # read transposed is the convolution with the flipped, channel-swapped kernel (CV5),
    # and the adjoint of (W1)
    x = rng.standard_normal(shape)
    w = rng.standard_normal((5, shape[1], 3, 3))
    dy = rng.standard_normal((shape[0], 5) + shape[2:])
    dx = winograd.winograd_conv3x3_input_grad(dy, winograd.transform_kernel(w))
    flipped = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))  # (C, F, 3, 3)
    np.testing.assert_allclose(dx, conv.conv2d_forward(dy, flipped, None, 1, 1)[0], rtol=1e-10,
                               atol=1e-10)
    y = winograd.winograd_conv3x3_forward(x, w, None)[0]
    assert np.isclose(np.sum(y * dy), np.sum(x * dx), rtol=1e-12), "<Kx, dy> != <x, K^T dy>"


@pytest.mark.parametrize("m, bound", [(2, 1e-5), (4, 1e-4)])
def test_winograd_float32_error_is_small(m, bound, rng):
    # F(2x2, 3x3) transforms have entries 1 and 1/2: float32 error stays near direct convolution's;
    # F(4x4, 3x3)'s entries 4, 5, 8, 1/6, 1/24 amplify round-off
    # (measured ~1e-5 of the largest output)
    x = rng.standard_normal((1, 256, 16, 16)).astype(np.float32)
    w = (rng.standard_normal((64, 256, 3, 3)) * 0.03).astype(np.float32)
    out = winograd.winograd_conv3x3_forward(x, w, None, winograd.transform_kernel(w, m))[0]
    ref = conv.conv2d_forward(x.astype(np.float64), w.astype(np.float64), None, 1, 1)[0]
    assert np.abs(out - ref).max() < bound * np.abs(ref).max(), \
        f"m={m}: {np.abs(out - ref).max() / np.abs(ref).max():.2e}"


def test_vgg_features_same_with_and_without_winograd(rng, monkeypatch):
    params = vgg.random_params("vgg19", width=(4, 4, 6, 6, 6), seed=1)
    x = (rng.standard_normal((1, 3, 20, 18)) * 50).astype(np.float32)
    taps = ["relu1_2", "conv3_4", "relu5_1"]
    results = []
    for threshold in (10**9, 1):  # never Winograd, then Winograd for every 3x3 conv
        monkeypatch.setattr(winograd, "WINOGRAD_MIN_CHANNELS", threshold)
        net = vgg.VGG(params, "vgg19", "avg", taps)
        feats, cache = net.forward(x, taps)
        kinds = {type(layer).__name__ for layer, _ in cache}
        dx = net.backward({n: feats[n] * 1e-2 for n in taps}, cache)
        assert cache == [], "the backward consumes the cache"
        results.append((feats, dx, kinds))
    (f0, dx0, kinds0), (f1, dx1, kinds1) = results
    assert ("WinogradConv2d" not in kinds0 and "WinogradConv2d" in kinds1
            and "BandedConv2d" not in kinds1)
    for n in taps:
        np.testing.assert_allclose(f0[n], f1[n], rtol=1e-4, atol=1e-3 * np.abs(f0[n]).max(),
                                   err_msg=n)
    np.testing.assert_allclose(dx0, dx1, rtol=1e-4, atol=1e-4 * np.abs(dx0).max())


def test_targets_keep_no_caches_and_match(rng):
    # keep_cache=False (targets: no backward follows) gives the same features and
    # frees every activation
    net = vgg.VGG(vgg.random_params("vgg16", width=(4, 4, 6, 6, 6), seed=2), "vgg16", "avg",
                  ["conv1_1", "relu2_2", "conv4_2"])
    x = (rng.standard_normal((1, 3, 24, 20)) * 50).astype(np.float32)
    taps = ["conv1_1", "relu2_2", "conv4_2"]
    kept, cache = net.forward(x, taps)
    lean, none = net.forward(x, taps, keep_cache=False)
    assert cache and none == []
    for n in taps:
        np.testing.assert_array_equal(lean[n], kept[n], err_msg=n)


# -- every loop twin against its reference, on the gradient-check table's cases -------------------

TWIN_CASES = [c for c in table.LAYER_CASES if c[1] in naive.LAYERS]


@pytest.mark.parametrize("case", TWIN_CASES, ids=[c[0] for c in TWIN_CASES])
def test_loop_twin_equals_the_reference_layer(case):
    """Each twin of numstyle.naive.LAYERS: the same forward, input and parameter gradients as the
    reference layer (itself checked by finite differences), through the same
    (dy, cache) contract."""
    name, cls, params, shape, _, kw = case
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    x = rng.standard_normal(shape)
    values = {k: rng.standard_normal(s) for k, s in params.items()}
    reference = cls(**values, **kw)
    twin = table.as_impl(naive.LAYERS[cls], reference)
    y, cache = reference.forward(x)
    y_loop, cache_loop = twin.forward(x)
    assert rel_error(y_loop, y) < 1e-10, f"{name}: forward"
    d = rng.standard_normal(y.shape)
    (dx, grads), (dx_loop, grads_loop) = reference.backward(d, cache), twin.backward(d, cache_loop)
    assert rel_error(dx_loop, dx) < 1e-10, f"{name}: dx"
    assert grads.keys() == grads_loop.keys()
    for k in grads:
        assert rel_error(grads_loop[k], grads[k]) < 1e-10, f"{name}: d{k}"


@pytest.mark.parametrize("kind,train", [("instance", True), ("batch", True), ("batch", False)])
def test_norm_loops_equal_the_reference(kind, train, rng):
    x, g, b, d = (rng.standard_normal(s) for s in ((3, 4, 5, 6), 4, 4, (3, 4, 5, 6)))
    running = {"mean": rng.standard_normal(4), "var": rng.uniform(0.5, 2, 4)}
    reference = tl.Norm(g, b, kind, running=dict(running), train=train)
    twin = naive.NormLoops(g, b, kind, running=dict(running), train=train)
    (y, cache), (y_loop, cache_loop) = reference.forward(x), twin.forward(x)
    assert rel_error(y_loop, y) < 1e-10
    (dx, grads), (dx_loop, grads_loop) = reference.backward(d, cache), twin.backward(d, cache_loop)
    assert rel_error(dx_loop, dx) < 1e-10
    for k in ("gamma", "beta"):
        assert rel_error(grads_loop[k], grads[k]) < 1e-10, k


@pytest.mark.parametrize("case", table.LOSS_CASES, ids=[c[0] for c in table.LOSS_CASES])
def test_loss_loops_equal_the_reference(case):
    """numstyle.naive's losses -- (S2)/(S5) and (TV2) written entry by entry -- give
    numstyle.losses' loss and gradient."""
    name, fn, shape, extra, kw = case
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    x, others = rng.standard_normal(shape), [rng.standard_normal(s) for s in extra]
    loss, grad = getattr(losses, fn)(x, *others, **kw)
    loss_loop, grad_loop = getattr(naive, fn)(x, *others, **kw)
    assert abs(loss_loop - loss) <= 1e-10 * abs(loss), f"{name}: loss"
    assert rel_error(grad_loop, grad) < 1e-10, f"{name}: gradient"


def test_the_reference_engine_runs_no_fast_path(rng, monkeypatch):
    """NUMSTYLE_REFERENCE=1: every layer of VGG and of the transformer is a reference class."""
    from numstyle import transformer

    monkeypatch.setenv("NUMSTYLE_REFERENCE", "1")

    settings.reload()
    try:
        net = vgg.VGG(vgg.random_params("vgg16", width=(4, 4, 6, 6, 6)), "vgg16", "max",
                      ["relu5_3"])
        spec = transformer.style_spec((4, 6, 8), 1, "nearest")
        y, (chain, _) = transformer.transformer_forward(transformer.init_params(spec),
                                                        rng.standard_normal((1, 3, 12, 12)), spec)
    finally:
        monkeypatch.delenv("NUMSTYLE_REFERENCE")
        settings.reload()
    everything = list(net.layers) + list(_flatten(chain))
    assert everything and all(
        type(layer).__module__ in ("numstyle.layers", "numstyle.transformer_layers")
        for layer in everything), {type(layer).__module__ for layer in everything}


def _flatten(layer):
    if isinstance(layer, layers.Sequential):
        for inner in layer.layers:
            yield from _flatten(inner)
    elif isinstance(layer, layers.Residual):
        yield from _flatten(layer.branch)
    else:
        yield layer
