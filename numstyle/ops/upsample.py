r"""Nearest-neighbour up-sampling: the "resize" half of a resize-convolution.

A transposed convolution with stride 2 stamps its kernel onto the output two
pixels apart, so output pixels receive one, two or four stamps, and an
undertrained network shows that pattern as a checkerboard (Odena et al.,
2016; docs/johnson.md, (T1)). Up-sampling by repetition and then convolving
with stride 1 gives every output pixel the same number of taps: PyTorch's
``fast_neural_style`` example does this, and so does ``numstyle train
--upsample nearest``.

Notes
-----
Up-sampling by an integer factor ``s`` copies each input pixel into an
``s`` x ``s`` block:

.. math::  y_{n,c,i,j} = x_{n,c,\lfloor i/s\rfloor,\lfloor j/s\rfloor}                 \tag{U1}

It is a gather, so its backward (the adjoint) adds each block's gradients
back into the pixel they were copied from:

.. math::  dx_{n,c,a,b} = \sum_{p=0}^{s-1}\sum_{q=0}^{s-1} dy_{n,c,\,sa+p,\,sb+q}        \tag{U2}
"""
from ..backend import get_xp


def upsample_nearest_forward(x, s=2):
    """Repeat every pixel of (N, C, H, W) into an s x s block (U1): (N, C, s*H, s*W)."""
    xp = get_xp(x)
    wide = xp.repeat(x, s, axis=3)                                         # (N, C, H, sW): columns first,
    return xp.repeat(wide, s, axis=2), (x.shape, s)                        # (N, C, sH, sW): then whole rows


def upsample_nearest_backward(dy, cache):
    """Adjoint of :func:`upsample_nearest_forward` (U2): sum each s x s block of ``dy``.

    As two passes of slice additions, the s rows of each block and then its s
    columns: one ``sum(axis=(3, 5))`` over the 6-axis view was 6-8x slower on NumPy.
    """
    (N, C, H, W), s = cache
    rows = dy.reshape(N, C, H, s, s * W)                                   # (N, C, H, s, sW): a block's rows
    d = rows[:, :, :, 0].copy()                                            # (N, C, H, sW)
    for p in range(1, s):
        d += rows[:, :, :, p]                                              # (U2): sum over p
    cols = d.reshape(N, C, H, W, s)                                        # (N, C, H, W, s): a block's columns
    dx = cols[..., 0].copy()                                               # (N, C, H, W)
    for q in range(1, s):
        dx += cols[..., q]                                                 # (U2): sum over q
    return dx


def upsample_nearest_naive(x, s=2):
    """Loop-based twin of :func:`upsample_nearest_forward`."""
    xp = get_xp(x)
    N, C, H, W = x.shape
    y = xp.zeros((N, C, H * s, W * s), dtype=x.dtype)
    for i in range(H * s):
        for j in range(W * s):
            y[:, :, i, j] = x[:, :, i // s, j // s]                        # (U1)
    return y


def upsample_nearest_backward_naive(dy, s=2):
    """Loop-based twin of :func:`upsample_nearest_backward`: scatter each pixel's gradient to its source."""
    xp = get_xp(dy)
    N, C, Hs, Ws = dy.shape
    dx = xp.zeros((N, C, Hs // s, Ws // s), dtype=dy.dtype)
    for i in range(Hs):
        for j in range(Ws):
            dx[:, :, i // s, j // s] += dy[:, :, i, j]                     # (U2)
    return dx
