"""Every vectorised kernel against its loop-based naive twin, on seeded random cases."""
import numpy as np
import pytest

from numstyle import losses
from numstyle.fast import activations, conv, im2col, pad, pool, upsample, winograd

SHAPES = [(1, 1, 5, 5), (2, 3, 7, 6), (1, 2, 4, 9), (2, 8, 6, 7)]   # the last: F = 3 < C / 2 (CV5/CV6 routes)
CONV = [(3, 1, 1), (3, 2, 1), (3, 1, 0), (1, 1, 0), (5, 2, 2)]   # (kernel, stride, pad)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("k,stride,pad", CONV)
def test_im2col_and_col2im_match_naive(shape, k, stride, pad, rng):
    x = rng.standard_normal(shape)
    if shape[2] + 2 * pad < k or shape[3] + 2 * pad < k:
        pytest.skip("kernel larger than the padded image")
    cols = im2col.im2col(x, k, k, stride, pad)
    np.testing.assert_allclose(cols, im2col.im2col_naive(x, k, k, stride, pad), rtol=0, atol=0,
                               err_msg=f"im2col {shape} k={k} s={stride} p={pad}")
    xpad = im2col.zero_pad(x, pad)                       # the GPU's route: one copy of the strided view
    Ho, Wo = im2col.output_size(shape[2], k, stride, pad), im2col.output_size(shape[3], k, stride, pad)
    view = im2col.tap_view(xpad, k, k, stride, Ho, Wo)   # (N, C, k, k, Ho, Wo)
    np.testing.assert_array_equal(view.reshape(cols.shape), cols, err_msg=f"tap_view {shape} k={k} s={stride}")
    d = rng.standard_normal(cols.shape)
    np.testing.assert_allclose(im2col.col2im(d, shape, k, k, stride, pad),
                               im2col.col2im_naive(d, shape, k, k, stride, pad), rtol=1e-12, atol=1e-12,
                               err_msg=f"col2im {shape} k={k} s={stride} p={pad}")


def test_col2im_is_the_adjoint_of_im2col(rng):
    # <im2col(x), c> == <x, col2im(c)>: the identity the convolution backward rests on (K2)
    x = rng.standard_normal((2, 3, 6, 7))
    cols = im2col.im2col(x, 3, 3, 2, 1)
    c = rng.standard_normal(cols.shape)
    assert np.isclose(np.sum(cols * c), np.sum(x * im2col.col2im(c, x.shape, 3, 3, 2, 1)), rtol=1e-12)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("k,stride,pad", CONV)
def test_conv_matches_naive(shape, k, stride, pad, rng):
    if shape[2] + 2 * pad < k or shape[3] + 2 * pad < k:
        pytest.skip("kernel larger than the padded image")
    x = rng.standard_normal(shape)
    w = rng.standard_normal((3, shape[1], k, k))
    b = rng.standard_normal(3)
    out, cache = conv.conv2d_forward(x, w, b, stride, pad)
    np.testing.assert_allclose(out, conv.conv2d_forward_naive(x, w, b, stride, pad), rtol=1e-10, atol=1e-10)
    d = rng.standard_normal(out.shape)
    for fast, naive, name in zip(conv.conv2d_backward(d, cache), conv.conv2d_backward_naive(d, x, w, stride, pad),
                                 ("dx", "dw", "db")):
        np.testing.assert_allclose(fast, naive, rtol=1e-10, atol=1e-10, err_msg=f"{name} {shape} k={k} s={stride}")
    dx_only, dw, db = conv.conv2d_backward(d, cache, weight_grad=False)
    assert dw is None and db is None
    np.testing.assert_allclose(dx_only, conv.conv2d_backward(d, cache)[0])


def test_conv_non_square_kernel_backward(rng):
    x = rng.standard_normal((1, 4, 6, 7))
    w = rng.standard_normal((2, 4, 3, 5))
    out, cache = conv.conv2d_forward(x, w, None, 1, 1)
    d = rng.standard_normal(out.shape)
    for fast, naive in zip(conv.conv2d_backward(d, cache), conv.conv2d_backward_naive(d, x, w, 1, 1)):
        np.testing.assert_allclose(fast, naive, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("band_bytes", [1 << 30, 200])   # whole image, and bands of one output row
def test_banded_conv_equals_whole_image(band_bytes, rng, monkeypatch):
    x = rng.standard_normal((2, 3, 9, 7))
    w = rng.standard_normal((5, 3, 3, 3))
    monkeypatch.setattr(conv, "BAND_BYTES", band_bytes)
    for stride in (1, 2):
        out, cache = conv.conv2d_forward(x, w, None, stride, 1)
        np.testing.assert_allclose(out, conv.conv2d_forward_naive(x, w, None, stride, 1), rtol=1e-10, atol=1e-10)
        d = rng.standard_normal(out.shape)
        for fast, naive in zip(conv.conv2d_backward(d, cache), conv.conv2d_backward_naive(d, x, w, stride, 1)):
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
    np.testing.assert_allclose(pool.avg_pool_forward(x)[0], pool.avg_pool_naive(x), rtol=1e-12)
    np.testing.assert_array_equal(pool.max_pool_forward(x)[0], pool.max_pool_naive(x))
    np.testing.assert_array_equal(activations.relu_forward(x)[0], activations.relu_forward_naive(x))


@pytest.mark.parametrize("shape,k", [((2, 3, 8, 6), 2), ((1, 2, 7, 9), 2), ((1, 2, 9, 7), 3)])
def test_max_pool_backward_matches_naive_with_ties(shape, k, rng):
    """After a ReLU most windows hold ties (zeros), and integer data repeats values: the first maximum
    in row-major order gets the gradient, odd trailing pixels none."""
    for x in (np.maximum(rng.standard_normal(shape), 0), rng.integers(0, 3, shape).astype(np.float64)):
        out, cache = pool.max_pool_forward(x, k)
        np.testing.assert_array_equal(out, pool.max_pool_naive(x, k))
        d = rng.standard_normal(out.shape)
        np.testing.assert_array_equal(pool.max_pool_backward(d, cache), pool.max_pool_backward_naive(d, x, k),
                                      err_msg=f"{shape} k={k}")


@pytest.mark.parametrize("shape,s", [((2, 3, 4, 5), 2), ((1, 2, 3, 1), 3)])
def test_nearest_upsampling_matches_naive(shape, s, rng):
    x = rng.standard_normal(shape)
    y, cache = upsample.upsample_nearest_forward(x, s)
    np.testing.assert_array_equal(y, upsample.upsample_nearest_naive(x, s), err_msg=f"(U1) {shape} s={s}")
    d = rng.standard_normal(y.shape)                                       # float64: the sums differ only in order
    np.testing.assert_allclose(upsample.upsample_nearest_backward(d, cache),
                               upsample.upsample_nearest_backward_naive(d, s), rtol=1e-12, atol=1e-14,
                               err_msg=f"(U2) {shape} s={s}")


@pytest.mark.parametrize("shape", [(2, 3, 5, 4), (1, 2, 1, 3), (1, 4, 6, 7)])
def test_resize_conv_equals_upsample_pad_conv(shape, rng):
    """(U3)-(U5): four 2x2 convolutions of the small image are the 3x3 convolution of the up-sampled,
    reflection-padded one -- forward, input gradient and weight gradient."""
    x, w = rng.standard_normal(shape), rng.standard_normal((5, shape[1], 3, 3))
    y, cache = upsample.resize_conv_forward(x, w)
    up, up_cache = upsample.upsample_nearest_forward(x)                   # the long way: (U1), (RP1), (CV1)
    padded, pad_cache = pad.reflect_pad_forward(up, 1)
    want, conv_cache = conv.conv2d_forward(padded, w, None, 1, 0)
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12, err_msg=f"forward {shape}")
    d = rng.standard_normal(y.shape)
    dx, dw = upsample.resize_conv_backward(d, cache)
    dpadded, want_dw, _ = conv.conv2d_backward(d, conv_cache)
    want_dx = upsample.upsample_nearest_backward(pad.reflect_pad_backward(dpadded, pad_cache), up_cache)
    np.testing.assert_allclose(dx, want_dx, rtol=1e-10, atol=1e-12, err_msg=f"dx {shape}")
    np.testing.assert_allclose(dw, want_dw, rtol=1e-10, atol=1e-12, err_msg=f"dw {shape}")


def test_max_pool_tie_goes_to_first_maximum():
    x = np.ones((1, 1, 2, 2))
    out, cache = pool.max_pool_forward(x)
    dx = pool.max_pool_backward(np.array([[[[5.0]]]]), cache)
    np.testing.assert_array_equal(dx[0, 0], [[5.0, 0.0], [0.0, 0.0]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_in_chunks_matches_naive(dtype, rng):
    """More values than one chunk of zeros (and not a multiple of it), in place, and a strided view."""
    x = rng.standard_normal((1, 3, 150, 170)).astype(dtype)               # 76,500 > RELU_CHUNK values
    expected = activations.relu_forward_naive(x)
    np.testing.assert_array_equal(activations.relu_forward(x)[0], expected, err_msg="copy")
    view = x[:, :, ::2]
    np.testing.assert_array_equal(activations.relu_forward(view)[0], expected[:, :, ::2], err_msg="view")
    out, _ = activations.relu_forward(x, inplace=True)
    assert out is x and out.dtype == dtype
    np.testing.assert_array_equal(x, expected, err_msg="in place")


def test_relu_subgradient_at_zero_is_zero():
    x = np.array([-1.0, 0.0, 2.0])
    out, cache = activations.relu_forward(x)
    np.testing.assert_array_equal(activations.relu_backward(np.ones(3), cache), [0.0, 0.0, 1.0])


def test_gram_and_tv_match_naive(rng):
    F = rng.standard_normal((1, 3, 4, 5))
    np.testing.assert_allclose(losses.gram_forward(F)[0][0], losses.gram_naive(F.reshape(3, 20)), rtol=1e-12)
    x = rng.standard_normal((2, 3, 5, 4))
    assert np.isclose(losses.tv_loss(x)[0], losses.tv_loss_naive(x), rtol=1e-12)


def test_style_target_rescales_to_the_generated_size(rng):
    # a style image tiled 2x2 has 4x the pixels and the same statistics: same target (S7)
    F = np.abs(rng.standard_normal((1, 3, 4, 4)))
    big = np.tile(F, (1, 1, 2, 2))
    gram = lambda F: losses.gram_forward(F)[0]  # noqa: E731
    np.testing.assert_allclose(losses.style_target(gram(F), 16, 16), losses.style_target(gram(big), 64, 16), rtol=1e-12)


@pytest.mark.parametrize("m", [2, 4])                    # F(2x2, 3x3) and F(4x4, 3x3)
@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (2, 3, 6, 6), (1, 2, 5, 7), (1, 4, 9, 4), (1, 2, 11, 13)])
@pytest.mark.parametrize("band_bytes", [1 << 30, 1500])   # one band, and many bands of one tile row
def test_winograd_matches_naive_and_direct_convolution(m, shape, band_bytes, rng, monkeypatch):
    monkeypatch.setattr(winograd, "BAND_BYTES", band_bytes)
    x = rng.standard_normal(shape)
    w = rng.standard_normal((3, shape[1], 3, 3))
    b = rng.standard_normal(3)
    out, cache = winograd.winograd_conv3x3_forward(x, w, b, winograd.transform_kernel(w, m))
    direct, dcache = conv.conv2d_forward(x, w, b, 1, 1)
    # float64 round-off only: F(4x4)'s constants (up to 8, down to 1/24) cost ~10x F(2x2)'s 1e-15
    np.testing.assert_allclose(out, winograd.winograd_conv3x3_naive(x, w, b, m), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(out, direct, rtol=1e-10, atol=1e-10)
    d = rng.standard_normal(out.shape)
    for fast, ref, name in zip(winograd.winograd_conv3x3_backward(d, cache), conv.conv2d_backward(d, dcache),
                               ("dx", "dw", "db")):
        np.testing.assert_allclose(fast, ref, rtol=1e-10, atol=1e-10, err_msg=f"{name} {shape} m={m}")


@pytest.mark.parametrize("shape", [(1, 1, 3, 3), (2, 3, 6, 6), (1, 2, 7, 9), (1, 4, 10, 5)])
@pytest.mark.parametrize("band_bytes", [1 << 30, 1500])
def test_winograd_valid_matches_direct_convolution(shape, band_bytes, rng, monkeypatch):
    """pad 0 (the transformer's residual blocks, after reflection padding): forward and all three
    gradients equal im2col's, float64 round-off only; the input gradient is (W8) padded by 2."""
    monkeypatch.setattr(winograd, "BAND_BYTES", band_bytes)
    x, w, b = rng.standard_normal(shape), rng.standard_normal((3, shape[1], 3, 3)), rng.standard_normal(3)
    out, cache = winograd.winograd_conv3x3_forward(x, w, b, pad=0)
    direct, dcache = conv.conv2d_forward(x, w, b, 1, 0)
    np.testing.assert_allclose(out, direct, rtol=1e-10, atol=1e-10, err_msg=f"forward {shape}")
    np.testing.assert_allclose(out, winograd.winograd_conv3x3_valid(x, winograd.transform_kernel(w), b), rtol=0, atol=0)
    d = rng.standard_normal(out.shape)
    for fast, ref, name in zip(winograd.winograd_conv3x3_backward(d, cache), conv.conv2d_backward(d, dcache),
                               ("dx", "dw", "db")):
        np.testing.assert_allclose(fast, ref, rtol=1e-10, atol=1e-10, err_msg=f"{name} {shape}")


@pytest.mark.parametrize("shape", [(1, 3, 6, 6), (2, 4, 5, 7), (1, 2, 1, 3)])
def test_winograd_input_grad_is_the_flipped_kernel_convolution(shape, rng):
    # (W8): the forward Winograd path with B^T's rows and A^T's columns 0 and 3 swapped and w_hat read
    # transposed is the convolution with the flipped, channel-swapped kernel (CV5), and the adjoint of (W1)
    x = rng.standard_normal(shape)
    w = rng.standard_normal((5, shape[1], 3, 3))
    dy = rng.standard_normal((shape[0], 5) + shape[2:])
    dx = winograd.winograd_conv3x3_input_grad(dy, winograd.transform_kernel(w))
    flipped = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))          # (C, F, 3, 3)
    np.testing.assert_allclose(dx, conv.conv2d_forward(dy, flipped, None, 1, 1)[0], rtol=1e-10, atol=1e-10)
    y = winograd.winograd_conv3x3_forward(x, w, None)[0]
    assert np.isclose(np.sum(y * dy), np.sum(x * dx), rtol=1e-12), "<Kx, dy> != <x, K^T dy>"


@pytest.mark.parametrize("m, bound", [(2, 1e-5), (4, 1e-4)])
def test_winograd_float32_error_is_small(m, bound, rng):
    # F(2x2, 3x3) transforms have entries 1 and 1/2: float32 error stays near direct convolution's;
    # F(4x4, 3x3)'s entries 4, 5, 8, 1/6, 1/24 amplify round-off (measured ~1e-5 of the largest output)
    x = rng.standard_normal((1, 256, 16, 16)).astype(np.float32)
    w = (rng.standard_normal((64, 256, 3, 3)) * 0.03).astype(np.float32)
    out = winograd.winograd_conv3x3_forward(x, w, None, winograd.transform_kernel(w, m))[0]
    ref = conv.conv2d_forward(x.astype(np.float64), w.astype(np.float64), None, 1, 1)[0]
    assert np.abs(out - ref).max() < bound * np.abs(ref).max(), f"m={m}: {np.abs(out - ref).max() / np.abs(ref).max():.2e}"


def test_vgg_features_same_with_and_without_winograd(rng, monkeypatch):
    from numstyle import vgg
    params = vgg.random_params("vgg19", width=(4, 4, 6, 6, 6), seed=1)
    x = (rng.standard_normal((1, 3, 20, 18)) * 50).astype(np.float32)
    layers = ["relu1_2", "conv3_4", "relu5_1"]
    results = []
    for threshold in (10**9, 1):                          # never Winograd, then Winograd for every 3x3 conv
        monkeypatch.setattr(vgg, "WINOGRAD_MIN_CHANNELS", threshold)
        feats, caches = vgg.features_forward(vgg.prepare(params), x, layers, "vgg19")
        kinds = {k for k, _, _ in caches}
        dx = vgg.features_backward({n: feats[n] * 1e-2 for n in layers}, caches)
        assert caches == [], "the backward consumes the caches"
        results.append((feats, dx, kinds))
    (f0, dx0, kinds0), (f1, dx1, kinds1) = results
    assert "wino" not in kinds0 and "wino" in kinds1 and "conv" not in kinds1
    for n in layers:
        np.testing.assert_allclose(f0[n], f1[n], rtol=1e-4, atol=1e-3 * np.abs(f0[n]).max(), err_msg=n)
    np.testing.assert_allclose(dx0, dx1, rtol=1e-4, atol=1e-4 * np.abs(dx0).max())


def test_targets_keep_no_caches_and_match(rng):
    # keep_caches=False (targets: no backward follows) gives the same features and frees every activation
    from numstyle import vgg
    params = vgg.prepare(vgg.random_params("vgg16", width=(4, 4, 6, 6, 6), seed=2))
    x = (rng.standard_normal((1, 3, 24, 20)) * 50).astype(np.float32)
    layers = ["conv1_1", "relu2_2", "conv4_2"]
    kept, caches = vgg.features_forward(params, x, layers, "vgg16")
    lean, none = vgg.features_forward(params, x, layers, "vgg16", keep_caches=False)
    assert caches and none == []
    for n in layers:
        np.testing.assert_array_equal(lean[n], kept[n], err_msg=n)
