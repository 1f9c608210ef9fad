"""The losses of :mod:`numstyle.losses`, drop-in: the same functions, names and results.

What changes is where the work runs:

- on the CPU, the Gram products (S1), (S2) run in bands of pixels on every
  core (:func:`numstyle.fast.parallel.matmul`): with BLAS kept on one thread
  they would use one core;
- on a GPU with the fused kernels, the style losses' tail (S3)-(S4) / (J5) and
  total variation (TV1)-(TV2) are one launch and a sum each, instead of ~5 and
  ~20 array operations (:mod:`numstyle.fast.gpu_kernels`).

:mod:`numstyle.engine` hands this module to the objectives in place of
:mod:`numstyle.losses`; ``tests/test_gradcheck.py`` checks both.
"""
from .. import losses
from ..backend import get_xp, scalar
# noqa: F401  (unchanged: one dot product)
from ..losses import block_mean_loss, content_loss, feature_loss, phase_loss, style_target
from . import gpu_kernels
from .parallel import matmul


def gram_forward(F):
    """(S1) as :func:`numstyle.losses.gram_forward`, in bands of pixels on every core."""
    N, C = F.shape[:2]
    Fm = F.reshape(N, C, -1)                                                   # (N, C, M)
    return matmul(Fm, Fm.transpose(0, 2, 1), get_xp(F)), Fm                    # (N, C, C)   (S1)


def gram_backward(dG, cache):
    """(S2) as :func:`numstyle.losses.gram_backward`, in bands."""
    Fm = cache
    return matmul(dG + dG.transpose(0, 2, 1), Fm, get_xp(Fm))                  # (N, C, M)   (S2)


def style_loss_from_gram(G, A, M_l, weight=1.0):
    """(S3), (S4) as :func:`numstyle.losses.style_loss_from_gram`; on a GPU one fused launch."""
    if not gpu_kernels.enabled(get_xp(G)):
        return losses.style_loss_from_gram(G, A, M_l, weight)
    scale = 1.0 / (4.0 * G.shape[1] ** 2 * M_l ** 2)
    loss, dG = gpu_kernels.gram_loss(G, A, weight * scale, 2.0 * scale * weight)   # (S3), (S4)
    return scalar(loss), dG


def style_layer_loss(F, A, weight=1.0):
    """(S3)-(S5) as :func:`numstyle.losses.style_layer_loss`, from the pieces above."""
    _, N_l, H, W = F.shape
    G, Fm = gram_forward(F)                                                    # (S1)
    loss, dG = style_loss_from_gram(G, A, H * W, weight)                       # (S3), (S4)
    return loss, gram_backward(dG, Fm).reshape(F.shape)                        # (S2) -> (S5)


def tv_loss(x):
    """(TV1), (TV2) as :func:`numstyle.losses.tv_loss`; on a GPU one fused launch and a sum."""
    if not gpu_kernels.enabled(get_xp(x)):
        return losses.tv_loss(x)
    loss, dx = gpu_kernels.tv_loss(x)
    return scalar(loss), dx


def gram_normalized(F):
    """(J4) as :func:`numstyle.losses.gram_normalized`, in bands."""
    N, C, H, W = F.shape
    G, Fm = gram_forward(F)                                                    # (S1)
    return G * (1.0 / (C * H * W)), Fm                                         # (J4)


def style_loss_johnson(F, Gs, weight=1.0):
    """(J5) as :func:`numstyle.losses.style_loss_johnson`; on a GPU its tail in one launch."""
    N, C, H, W = F.shape
    G, Fm = gram_normalized(F)                                                 # (J4)
    if gpu_kernels.enabled(get_xp(G)):  # (J5) and d(J5)/dG at once
        loss, dG = gpu_kernels.gram_loss(G, Gs, weight / N, 2.0 * weight / (N * C * H * W))
        loss = scalar(loss)
    else:
        diff = G - Gs                                                          # (N, C, C)
        loss = weight * scalar((diff * diff).sum()) / N                        # (J5)
        dG = diff * (2.0 * weight / (N * C * H * W))
    return loss, gram_backward(dG, Fm).reshape(F.shape)                        # (S2)
