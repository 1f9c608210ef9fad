"""The fused GPU kernels (numstyle/fast/gpu_kernels.py, gpu_winograd.py) against the
array code they replace.

On fakecupy their CUDA C bodies run as C++ compiled with g++ (tests/fakecupy_kernels.py); on a
GPU (``pytest -m gpu``), as CuPy compiles them. Each is checked against the plain array code it
replaces, run on NumPy.
"""
import warnings

import numpy as np
import pytest

from numstyle import naive, settings
from numstyle import backend
from numstyle.gradcheck import rel_error
from numstyle.fast import gpu_kernels as kernels, gpu_winograd as winograd_kernels
from numstyle.fast import im2col, kernel_check, norm, pad, pool, winograd

import fakecupy_kernels


def _needs_kernels(cp):
    if not hasattr(cp, "ElementwiseKernel"):
        pytest.skip("no ElementwiseKernel: fakecupy runs kernels only where g++ is installed")
    if not settings.get().fused:
        pytest.skip("NUMSTYLE_FUSED=0: the kernels are off")
    kernel_check.ensure(cp)  # as the engine does before it picks fast paths
    assert kernels.enabled(cp), "the fused kernels failed their self-test: see the warning"


def test_kernels_pass_their_self_test(cp):
    """kernel_check.self_test (run before the first use on a device) passes, with no warning."""
    _needs_kernels(cp)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert kernel_check.self_test(cp)


def test_a_kernel_that_does_not_compile_falls_back_to_the_array_code(cp, monkeypatch):
    """A body CuPy (here: g++) rejects costs one warning and the array code: the
    results stay right."""
    _needs_kernels(cp)
    in_params, out_params, _ = kernels.SOURCES["avg_pool"]
    monkeypatch.setitem(kernels.SOURCES, "avg_pool", (in_params, out_params, "y = not C++;"))
    monkeypatch.setattr(kernels, "_compiled", {})
    monkeypatch.setattr(kernels, "_passed", {})
    with pytest.warns(RuntimeWarning, match="'avg_pool' failed its self-test"):
        kernel_check.ensure(cp)
    assert not kernels.enabled(cp)
    x = np.random.default_rng(0).standard_normal((1, 2, 4, 4))
    got, _ = pool.avg_pool_forward(cp.asarray(x), 2)  # the array code, on the device
    np.testing.assert_allclose(backend.to_host(got), pool.avg_pool_forward(x, 2)[0], rtol=1e-12)


@pytest.mark.parametrize("shape,p", [((2, 3, 5, 7), 1), ((1, 2, 4, 4), 3), ((2, 1, 9, 6), 4),
                                     ((1, 3, 2, 3), 1), ((1, 1, 6, 5), 0)])
def test_reflect_pad_kernels_match_the_array_code(cp, shape, p):
    """(RP1) against the loop twin, (RP2) against the slice code -- borders, corners,
    p = H - 1, p = 0."""
    _needs_kernels(cp)
    rng = np.random.default_rng(sum(shape) + p)
    x = rng.standard_normal(shape)
    out_shape = shape[:2] + (shape[2] + 2 * p, shape[3] + 2 * p)
    dy = rng.standard_normal(out_shape)
    want_y = naive.ReflectionPad2dLoops(p).forward(x)[0]
    want_dx = pad.reflect_pad_backward(dy, (shape, p))                      # NumPy: the slice code
    y = kernels.reflect_pad(cp.asarray(x), p)
    dx = kernels.reflect_pad_backward(cp.asarray(dy), shape, p)
    # a gather of copies is exact; the backward adds at most 4 values per pixel in
    # another order: ~1e-16
    np.testing.assert_array_equal(backend.to_host(y), want_y, err_msg=f"(RP1) shape {shape}, p={p}")
    assert rel_error(backend.to_host(dx), want_dx) < 1e-12, f"(RP2) shape {shape}, p={p}"


@pytest.mark.parametrize("k,stride,pad_,bands", [(3, 1, 1, [(0, 11)]), (3, 1, 1, [(0, 4), (4, 11)]),
                                                 (3, 2, 1, [(0, 3), (3, 6)]),
                                                 (9, 1, 4, [(0, 5), (5, 11)]), (4, 2, 1, [(0, 6)]),
                                                 (1, 1, 0, [(0, 11)]), (3, 1, 0, [(2, 9)])])
def test_im2col_kernel_matches_the_array_code(cp, k, stride, pad_, bands):
    """(K1) of a band, padding read rather than built: the kernel copies what the
    strided view copies."""
    _needs_kernels(cp)
    rng = np.random.default_rng(k * 10 + stride + pad_)
    N, C, H, W = 2, 3, 11, 9
    Ho, Wo = im2col.output_size(H, k, stride, pad_), im2col.output_size(W, k, stride, pad_)
    x = rng.standard_normal((N, C, H, W))
    for r0, r1 in [(r0, min(r1, Ho)) for r0, r1 in bands if r0 < Ho]:
        # NumPy: the padded copy
        want = im2col.im2col_rows(im2col.zero_pad(x, pad_), k, k, stride, r0, r1, Wo)
        got = kernels.im2col_rows(cp.asarray(x), k, k, stride, pad_, r0, r1, Wo)
        # copies of values and zeros: exact
        np.testing.assert_array_equal(backend.to_host(got), want,
                                      err_msg=f"(K1) k={k} stride={stride} rows {r0}..{r1}")


@pytest.mark.parametrize("k,stride,pad_,bands", [(3, 1, 1, [(0, 7)]),
                                                 (3, 1, 1, [(0, 2), (2, 5), (5, 7)]),
                                                 (3, 2, 1, [(0, 2), (2, 4)]),
                                                 (9, 1, 4, [(0, 3), (3, 6)]),
                                                 (4, 2, 1, [(0, 1), (1, 4)]), (1, 1, 0, [(0, 6)])])
def test_col2im_kernel_matches_the_array_code(cp, k, stride, pad_, bands):
    """(K2) band by band into an image that already holds values: the kernel adds what
    the tap loop adds."""
    _needs_kernels(cp)
    rng = np.random.default_rng(k * 10 + stride)
    N, C, H, W = 2, 3, 11, 9
    Ho, Wo = im2col.output_size(H, k, stride, pad_), im2col.output_size(W, k, stride, pad_)
    bands = [(r0, min(r1, Ho)) for r0, r1 in bands if r0 < Ho]
    start = rng.standard_normal((N, C, H + 2 * pad_, W + 2 * pad_))
    want, got = start.copy(), cp.asarray(start)
    for r0, r1 in bands:
        cols = rng.standard_normal((N, C * k * k, (r1 - r0) * Wo))
        im2col.col2im_rows(cols, want, k, k, stride, r0, r1, Wo)            # NumPy: one add per tap
        kernels.col2im_rows(cp.asarray(cols), got, k, k, stride, r0, r1, Wo)
    # each padded pixel sums at most k^2 values, in another order than the tap loop: ~1e-15
    assert rel_error(backend.to_host(got), want) < 1e-12, \
        f"(K2) k={k} stride={stride} bands={bands}"


@pytest.mark.parametrize("shape,k", [((2, 3, 6, 8), 2), ((1, 2, 7, 5), 2), ((1, 1, 9, 10), 3)])
def test_avg_pool_kernels_match_the_array_code(cp, shape, k):
    """(P1) and its gradient, with odd edges that floor mode drops (their gradient: 0)."""
    _needs_kernels(cp)
    rng = np.random.default_rng(sum(shape) + k)
    x = rng.standard_normal(shape)
    dy = rng.standard_normal(shape[:2] + (shape[2] // k, shape[3] // k))
    want_y, cache = pool.avg_pool_forward(x, k)  # NumPy: one slice per window pixel
    want_dx = pool.avg_pool_backward(dy, cache)
    y, dx = kernels.avg_pool(cp.asarray(x), k), kernels.avg_pool_backward(cp.asarray(dy), shape, k)
    # k^2 values summed in another order, a divide for a multiply by 1/k^2: ~1e-16
    assert rel_error(backend.to_host(y), want_y) < 1e-12, f"(P1) forward, shape {shape}, k={k}"
    assert rel_error(backend.to_host(dx), want_dx) < 1e-12, f"(P1) backward, shape {shape}, k={k}"


@pytest.mark.parametrize("shape,k,data", [((2, 3, 6, 8), 2, "normal"), ((1, 2, 7, 5), 2, "relu"),
                                          ((1, 1, 9, 10), 3, "integers")])
def test_max_pool_kernels_match_the_array_code(cp, shape, k, data):
    """(P2) and its gradient, ties included (ReLU'd zeros, small integers): the
    first maximum wins."""
    _needs_kernels(cp)
    rng = np.random.default_rng(sum(shape) + k)
    x = {"normal": rng.standard_normal(shape), "relu": np.maximum(rng.standard_normal(shape), 0),
         "integers": rng.integers(0, 3, shape).astype(np.float64)}[data]
    dy = rng.standard_normal(shape[:2] + (shape[2] // k, shape[3] // k))
    want_y, cache = pool.max_pool_forward(x, k)  # NumPy: the two-step array code
    want_dx = pool.max_pool_backward(dy, cache)
    y, cache_dev = pool.max_pool_forward(cp.asarray(x), k)
    dx = pool.max_pool_backward(cp.asarray(dy), cache_dev)
    assert cache_dev[2] is None, "the device cache should be the kernel's (winner places)"
    # copies of values, no arithmetic: exact
    np.testing.assert_array_equal(backend.to_host(y), want_y,
                                  err_msg=f"(P2) forward, {data}, k={k}")
    np.testing.assert_array_equal(backend.to_host(dx), want_dx,
                                  err_msg=f"(P2) backward, {data}, k={k}")


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("kind", ["instance", "batch"])
def test_normalize_kernel_matches_the_array_code(cp, kind, relu):
    """norm_inference with the kernel (N1)+(R1) equals it without (NumPy): own or
    running statistics."""
    _needs_kernels(cp)
    rng = np.random.default_rng(int(relu))
    x, gamma, beta = (rng.standard_normal((2, 3, 4, 5)) * 3 + 1, rng.standard_normal(3),
                      rng.standard_normal(3))
    running = {"mean": rng.standard_normal(3), "var": rng.uniform(0.5, 2, 3)}
    want = norm.norm_inference(x.copy(), gamma, beta, kind, running=dict(running), relu=relu)
    xd = cp.asarray(x)
    out = norm.norm_inference(xd, cp.asarray(gamma), cp.asarray(beta), kind,
                              running={k: cp.asarray(v) for k, v in running.items()}, relu=relu)
    assert out is xd, "norm_inference must work in place"
    # the same operations per value, grouped differently
    # ((x - mu) s + t against x s + (beta - mu s)): ~1e-15
    assert rel_error(backend.to_host(out), want) < 1e-12, f"(N1) {kind} relu={relu}"


def test_numstyle_fused_0_turns_the_kernels_off(cp, monkeypatch):
    """NUMSTYLE_FUSED=0: the plain array code on the GPU too (the A/B switch of
    benchmarks/gpu_session.sh)."""
    _needs_kernels(cp)
    monkeypatch.setenv("NUMSTYLE_FUSED", "0")
    settings.reload()
    assert not kernels.enabled(cp) and not kernels.enabled(np)


@pytest.mark.skipif(fakecupy_kernels.NVCC is None, reason="needs nvcc (the CUDA toolkit)")
def test_kernel_bodies_compile_as_cuda():
    """Every body of numstyle/fast/gpu_kernels.py compiles with nvcc as a __global__ function,
    float and double."""
    fakecupy_kernels.nvcc_check(kernels.SOURCES, kernels.PREAMBLE)


@pytest.mark.parametrize("shape,F,pad_,flip,bias", [((1, 3, 8, 8), 4, 1, False, True),
                                                    ((2, 3, 7, 5), 2, 1, False, False),
                                                    ((2, 4, 9, 6), 3, 0, False, True),
                                                    ((1, 2, 5, 5), 3, 1, True, False),
                                                    ((2, 3, 6, 9), 2, 0, True, False),
                                                    ((1, 1, 3, 4), 1, 1, False, True)],
                         ids=["even", "odd-batch", "valid", "flipped", "flipped-valid", "one-tile"])
def test_winograd_kernels_match_the_array_code(cp, shape, F, pad_, flip, bias):
    """(W3)-(W5) in three launches against the array code's strided-view transforms (and (W8)'s
    flip): ragged last tiles (odd sizes), pad 1 (VGG) and 0 (the transformer's valid conv),
    batches, no bias."""
    _needs_kernels(cp)
    rng = np.random.default_rng(sum(shape) + F + pad_)
    x = rng.standard_normal(shape)
    w_hat = winograd.transform_kernel(rng.standard_normal((F, shape[1], 3, 3)))   # (16, F, C)
    b = rng.standard_normal(F) if bias else None
    # NumPy: the array code
    want = winograd.convolve(x, w_hat, pad_, b, perm=winograd.FLIP[2] if flip else None)
    got = winograd_kernels.convolve(cp.asarray(x), cp.asarray(w_hat), pad_,
                                    None if b is None else cp.asarray(b), flip=flip)
    # sums of at most 16 terms (+-1 coefficients) in another order, then the same GEMM: ~1e-15
    assert got.shape == want.shape, f"{shape} pad {pad_}: shape {got.shape}, expected {want.shape}"
    assert rel_error(backend.to_host(got), want) < 1e-12, f"{shape} F={F} pad={pad_} flip={flip}"


def test_winograd_runs_on_the_gpu_only_with_the_kernels(cp, monkeypatch):
    """VGG's 3x3 convolutions take Winograd on a GPU with the fused kernels (three launches each),
    im2col without them; NUMSTYLE_WINOGRAD=0 turns it off on both devices (the A/B switch)."""
    _needs_kernels(cp)
    assert winograd_kernels.available(cp) and winograd_kernels.available(np)
    monkeypatch.setenv("NUMSTYLE_WINOGRAD", "0")
    settings.reload()
    assert not winograd_kernels.available(cp) and not winograd_kernels.available(np)
    monkeypatch.setenv("NUMSTYLE_WINOGRAD", "1")
    settings.reload()
    monkeypatch.setenv("NUMSTYLE_FUSED", "0")
    settings.reload()
    assert not winograd_kernels.available(cp) and winograd_kernels.available(np)


@pytest.mark.parametrize("flip", [False, True])
def test_winograd_kernels_in_bands_of_tile_rows(cp, monkeypatch, flip):
    """Past parallel.DEVICE_BAND_BYTES (1 GiB) the GPU's V and M go band by band, as im2col's
    columns do: here a band budget of one byte, so one tile row per band (the last one ragged)."""
    _needs_kernels(cp)
    from numstyle.fast import parallel

    monkeypatch.setattr(parallel, "DEVICE_BAND_BYTES", 1)
    # (the CPU's, which it raises to the GPU's)
    monkeypatch.setattr(parallel, "WINOGRAD_BAND_BYTES", 1)
    assert len(parallel.winograd_bands(5, 4, 4, 4, 2, np.dtype(np.float64), cp)) == 5
    rng = np.random.default_rng(5)
    x, b = rng.standard_normal((2, 3, 9, 7)), rng.standard_normal(4)
    w_hat = winograd.transform_kernel(rng.standard_normal((4, 3, 3, 3)))
    want = winograd.convolve(x, w_hat, 1, b, perm=winograd.FLIP[2] if flip else None)
    got = winograd_kernels.convolve(cp.asarray(x), cp.asarray(w_hat), 1, cp.asarray(b), flip=flip)
    assert rel_error(backend.to_host(got), want) < 1e-12, \
        f"flip={flip}: bands of one tile row differ"


def test_kernel_bodies_avoid_cupys_reserved_names():
    """CuPy reserves ``n``, ``i`` and names starting with ``_`` inside an ElementwiseKernel (its
    docs, "User-Defined Kernels"): ``i`` may be read, never declared; g++ and nvcc
    would not notice."""
    import re

    for name, (in_params, out_params, body) in kernels.SOURCES.items():
        params = [p.split()[-1] for p in f"{in_params}, {out_params}".split(",")]
        code = re.sub(r"//[^\n]*", "", body)  # comments may say anything
        declared = re.findall(r"\b(?:int|ptrdiff_t|T|bool|Pixel|auto)\s+(\w+)|,\s*(\w+)\s*=", code)
        names = params + [a or b for a, b in declared]
        bad = [v for v in names if v in ("n", "i") or v.startswith("_")] + \
            re.findall(r"\bn\b", code)
        assert not bad, f"kernel {name!r} uses CuPy's reserved names {bad}"


@pytest.mark.parametrize("shape", [(1, 3, 7, 6), (2, 2, 1, 5), (1, 1, 4, 1), (2, 3, 2, 2)])
def test_tv_kernel_matches_the_array_code(cp, shape):
    """(TV1)-(TV2) in one kernel and a sum, against the slice code: edges, one row, one column."""
    _needs_kernels(cp)
    from numstyle import losses

    x = np.random.default_rng(sum(shape)).standard_normal(shape)
    want_loss, want_dx = losses.tv_loss(x)                                  # NumPy: the array code
    loss, dx = kernels.tv_loss(cp.asarray(x))
    # sums of the same squares in another order: ~1e-15 relative; the gradient is exact
    assert abs(float(loss) - want_loss) <= 1e-12 * max(1.0, want_loss), \
        f"(TV1) {shape}: {float(loss)} vs {want_loss}"
    np.testing.assert_allclose(backend.to_host(dx), want_dx, rtol=0, atol=1e-12,
                               err_msg=f"(TV2) {shape}")


@pytest.mark.parametrize("shape,target",
                         [((1, 5, 5), (1, 5, 5)), ((3, 4, 4), (1, 4, 4)), ((2, 6, 6), (2, 6, 6))],
                         ids=["gatys", "batch-one-target", "batch-targets"])
def test_gram_loss_kernel_matches_the_array_code(cp, shape, target):
    """The style losses' tail, (S3)-(S4) and (J5), in one kernel and a sum,
    against the array code."""
    _needs_kernels(cp)
    rng = np.random.default_rng(shape[0] + shape[1])
    G, A = rng.standard_normal(shape), rng.standard_normal(target)
    loss, dG = kernels.gram_loss(cp.asarray(G), cp.asarray(A), 0.25, 3.0)
    diff = G - A  # NumPy, broadcast like the kernel
    # a sum of the same squares in another order: ~1e-15 relative; the gradient is exact
    assert abs(float(loss) - 0.25 * (diff ** 2).sum()) <= 1e-12 * max(1.0, (diff ** 2).sum()), shape
    np.testing.assert_allclose(backend.to_host(dG), 3.0 * diff, rtol=0, atol=1e-12,
                               err_msg=str(shape))
