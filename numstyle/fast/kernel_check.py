"""The fused GPU kernels' self-test: each kernel once against the array code, before first use.

``gpu_kernels.enabled`` runs :func:`self_test` the first time a GPU op asks for a
kernel. The tests check the kernels without a GPU (their bodies compiled as
C++); this checks them where they run, under CuPy.
"""
import warnings

import numpy as np

from .. import losses
from ..backend import get_xp, to_host
from . import activations, gpu_kernels, gpu_winograd, im2col, norm, pad, pool, winograd
from .gpu_kernels import (avg_pool, avg_pool_backward, col2im_rows, im2col_rows, max_pool,
                          max_pool_backward, norm_backward, norm_forward, normalize, reflect_pad,
                          reflect_pad_backward, relu_backward, gram_loss, tv_loss)


def ensure(xp):
    """Run :func:`self_test` on ``xp`` once, if its kernels could be on; record the verdict.

    :mod:`numstyle.engine` calls this before it picks fast paths for a GPU's
    arrays, so that ``gpu_kernels.enabled`` knows whether the kernels passed.
    """
    if gpu_kernels.could_run(xp) and not gpu_kernels.self_tested(xp):
        gpu_kernels.record_self_test(xp, self_test(xp))


def self_test(xp):
    """Run every kernel once on small arrays against the array code on NumPy; warn and return False
    if one fails to compile or disagrees.

    The kernels are checked by the tests without a GPU (their bodies compiled as C++), not by CuPy
    itself: NVRTC is not g++, and CuPy wraps the bodies its own way. A kernel that fails here costs
    one warning and the array code, not a broken run.
    """
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 7, 6)).astype(np.float32)  # odd: floor-mode edges
    g, b = rng.standard_normal(3).astype(np.float32), rng.standard_normal(3).astype(np.float32)
    dy_pad, dy_pool = rng.standard_normal((2, 3, 11, 10)).astype(np.float32), x[:, :, :3, :3].copy()
    cols = rng.standard_normal((2, 27, 6)).astype(np.float32)  # (N, C*3*3, 2 rows * 3)
    stats = {"mean": x.mean(axis=(0, 2, 3)), "var": x.var(axis=(0, 2, 3)) + 0.5}
    _, norm_cache = norm.norm_forward(x, g, b, "instance")
    _, max_cache = pool.max_pool_forward(x, 2)
    d = xp.asarray
    checks = {    # name: (kernel on the device, the same computation by the array code on NumPy)
        "reflect_pad": (lambda: reflect_pad(d(x), 2), lambda: pad.reflect_pad_forward(x, 2)[0]),
        "reflect_pad_backward": (lambda: reflect_pad_backward(d(dy_pad), x.shape, 2),
                                 lambda: pad.reflect_pad_backward(dy_pad, (x.shape, 2))),
        "im2col": (lambda: im2col_rows(d(x), 3, 3, 2, 1, 1, 3, 3),
                   lambda: im2col.im2col_rows(im2col.zero_pad(x, 1), 3, 3, 2, 1, 3, 3)),
        "col2im": (lambda: col2im_rows(d(cols), xp.zeros((2, 3, 9, 8), xp.float32),
                                       3, 3, 2, 1, 3, 3),
                   lambda: im2col.col2im_rows(cols, np.zeros((2, 3, 9, 8), np.float32),
                                              3, 3, 2, 1, 3, 3)),
        "avg_pool": (lambda: avg_pool(d(x), 2), lambda: pool.avg_pool_forward(x, 2)[0]),
        "avg_pool_backward": (lambda: avg_pool_backward(d(dy_pool), x.shape, 2),
                              lambda: pool.avg_pool_backward(dy_pool, (x.shape, 2))),
        "max_pool": (lambda: max_pool(d(x), 2)[0], lambda: pool.max_pool_forward(x, 2)[0]),
        "max_pool_backward": (lambda: max_pool_backward(d(dy_pool), max_pool(d(x), 2)[1],
                                                        x.shape, 2),
                              lambda: pool.max_pool_backward(dy_pool, max_cache)),
        "normalize": (lambda: normalize(d(x), d(stats["mean"])[None, :, None, None],
                                        d(stats["var"])[None, :, None, None], d(g), d(b), 1e-5,
                                        True),
                      lambda: norm.norm_inference(x.copy(), g, b, "batch", running=stats,
                                                  relu=True)),
        "relu_backward": (lambda: relu_backward(d(x), d(np.maximum(dy_pad[:, :, :7, :6], 0))),
                          lambda: activations.relu_backward(x,
                                                            np.maximum(dy_pad[:, :, :7, :6], 0))),
        "norm_forward": (lambda: norm_forward(d(x), d(x.mean(axis=(2, 3), keepdims=True)),
                                              d(norm_cache[1]), d(g), d(b))[1],
                         lambda: norm.norm_forward(x, g, b, "instance")[0]),
        "norm_backward": (lambda: norm_backward(d(x), d(norm_cache[0]), d(norm_cache[1]), d(g),
                                                (2, 3), False)[0],
                          lambda: norm.norm_backward(x, norm_cache)[0]),
    }
    def joined(loss_and_grad):                     # (loss, gradient) -> one array to compare
        loss, grad = loss_and_grad
        m = get_xp(grad)
        return m.concatenate([m.asarray(loss, dtype=grad.dtype).reshape(1), grad.ravel()])

    checks["tv"] = (lambda: joined(tv_loss(d(x))), lambda: joined(losses.tv_loss(x)))
    G, A = x[0, :, :3, :3].copy(), x[1, :, :3, :3].copy()  # two (3, 3, 3): a batch and its target
    checks["gram_loss"] = (lambda: joined(gram_loss(d(G), d(A[:1]), 0.5, 2.0)),
                           lambda: joined((0.5 * ((G - A[:1]) ** 2).sum(), 2.0 * (G - A[:1]))))
    # (W3)-(W5), and (W8)'s flipped transforms, against the array code
    xw, w_hat = x[:, :, :, :5], winograd.transform_kernel(
        rng.standard_normal((4, 3, 3, 3)).astype(np.float32))
    checks["winograd"] = (lambda: gpu_winograd.convolve(d(xw), d(w_hat), 1, d(b[:1].repeat(4))),
                          lambda: winograd.convolve(xw, w_hat, 1, b[:1].repeat(4)))
    checks["winograd_flipped"] = (
        lambda: gpu_winograd.convolve(d(x), d(w_hat[:, :3]), 0, flip=True),
        lambda: winograd.convolve(x, w_hat[:, :3], 0, perm=winograd.FLIP[2]))
    for name, (kernel, array_code) in checks.items():
        try:
            got, want = to_host(kernel()), array_code()
            ok = got.shape == want.shape and np.allclose(got, want, rtol=1e-4,
                                                         atol=1e-4)  # float32 sums
        except Exception as e:                             # CuPy's compile errors, type errors, ...
            ok, want = False, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        if not ok:
            warnings.warn(
                f"numstyle: the fused GPU kernel {name!r} failed its self-test "
                f"({want if isinstance(want, str) else 'wrong values'}); using the array code",
                RuntimeWarning, stacklevel=2)
            return False
    return True
