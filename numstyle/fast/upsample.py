r"""Nearest-neighbour up-sampling, and the resize-convolution run at the small size.

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

A 3x3 convolution of the up-sampled, reflection-padded image need not be
computed at the large size. Output row :math:`2i + a` reads up-sampled rows
:math:`2i + a - 1 .. 2i + a + 1`, which are only two rows of the small image:
:math:`i - 1, i, i` for :math:`a = 0` and :math:`i, i, i + 1` for :math:`a = 1`
(the same for columns). So each of the four output phases :math:`(a, b)` is
a 2x2 convolution of the small image, with the taps that read the same small
pixel added together:

.. math::  K^{ab} = S_a\, w\, S_b^\top, \quad
           S_0 = \begin{bmatrix} 1 & 0 & 0 \\ 0 & 1 & 1 \end{bmatrix},\
           S_1 = \begin{bmatrix} 1 & 1 & 0 \\ 0 & 0 & 1 \end{bmatrix}               \tag{U3}

All four run as one convolution with 4F outputs of the small image padded by
repeating its edge pixels, :math:`E(x)` -- which is what reflection padding
of the up-sampled image reads there (padded row -1 reflects to row 1, a copy
of row 0) -- and each phase keeps its own F channels, shifted by its offset
(a "pixel shuffle"):

.. math::  z = E(x) \star \big[K^{00}; K^{01}; K^{10}; K^{11}\big], \qquad
           y_{:,:,2i+a,2j+b} = z^{(ab)}_{:,:,i+a,j+b}                              \tag{U4}

16 multiplies per small pixel and channel pair instead of 36, one GEMM with
4F rows instead of a thin one, and no up-sampled copy. The backward composes
the adjoints: the shuffle's (dy scattered back into dz), the convolution's
(CV2)-(CV3), the kernel gradients summed back through (U3), and the edge
padding folded back:

.. math::  dw = \sum_{a,b} S_a^\top\, dK^{ab}\, S_b, \qquad dx = E^\top(dE)           \tag{U5}
"""
from ..backend import get_xp
from ..transformer_layers import Upsample, UpsampleConv
from . import StandIn
from .conv import conv2d_backward, conv2d_forward


def upsample_nearest_forward(x, s=2):
    """Repeat every pixel of (N, C, H, W) into an s x s block (U1): (N, C, s*H, s*W)."""
    xp = get_xp(x)
    wide = xp.repeat(x, s, axis=3)  # (N, C, H, sW): columns first,
    return xp.repeat(wide, s, axis=2), (x.shape, s)  # (N, C, sH, sW): then whole rows


def upsample_nearest_backward(dy, cache):
    """Adjoint of :func:`upsample_nearest_forward` (U2): sum each s x s block of ``dy``.

    As two passes of slice additions, the s rows of each block and then its s
    columns: one ``sum(axis=(3, 5))`` over the 6-axis view was 6-8x slower on NumPy.
    """
    (N, C, H, W), s = cache
    rows = dy.reshape(N, C, H, s, s * W)  # (N, C, H, s, sW): a block's rows
    d = rows[:, :, :, 0].copy()                                            # (N, C, H, sW)
    for p in range(1, s):
        d += rows[:, :, :, p]                                              # (U2): sum over p
    cols = d.reshape(N, C, H, W, s)  # (N, C, H, W, s): a block's columns
    dx = cols[..., 0].copy()                                               # (N, C, H, W)
    for q in range(1, s):
        dx += cols[..., q]                                                 # (U2): sum over q
    return dx


PHASES = ((0, 0), (0, 1), (1, 0), (1, 1))       # (a, b): output row 2i + a, column 2j + b


def _phase_sums(xp, dtype):
    """(S_0, S_1) of (U3): which of the 3 taps read each of the 2 small rows, per output phase."""
    return (xp.asarray([[1, 0, 0], [0, 1, 1]],
                       dtype=dtype), xp.asarray([[1, 1, 0], [0, 0, 1]], dtype=dtype))


def resize_conv_forward(x, w):
    """3x3 convolution (no bias) of ``x`` up-sampled x2 (U1), reflection-padded by 1, by (U3)-(U4).

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    w : ndarray, shape (F, C, 3, 3)

    Returns
    -------
    y : ndarray, shape (N, F, 2H, 2W)
        Equal to ``conv2d(reflect_pad(upsample_nearest(x), 1), w)``.
    cache : tuple
    """
    xp = get_xp(x)
    N, C, H, W = x.shape
    F = w.shape[0]
    S = _phase_sums(xp, w.dtype)
    k = xp.concatenate([S[a] @ w @ S[b].T for a, b in PHASES])             # (4F, C, 2, 2)   (U3)
    e = xp.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="edge")           # (N, C, H+2, W+2): E(x)
    z, conv_cache = conv2d_forward(e, k, None, 1, 0)  # (N, 4F, H+1, W+1)   (U4)
    y = xp.empty((N, F, 2 * H, 2 * W), dtype=x.dtype)                     # (N, F, 2H, 2W)
    for n, (a, b) in enumerate(PHASES):
        y[:, :, a::2, b::2] = z[:, n * F:(n + 1) * F, a:a + H, b:b + W]    # (U4): the pixel shuffle
    return y, (x.shape, S, z.shape, conv_cache)


def resize_conv_backward(dy, cache):
    """Backward of :func:`resize_conv_forward` (U5): ``(dx, dw)``."""
    xp = get_xp(dy)
    (N, C, H, W), S, z_shape, conv_cache = cache
    F = z_shape[1] // 4
    dz = xp.zeros(z_shape, dtype=dy.dtype)                                # (N, 4F, H+1, W+1)
    for n, (a, b) in enumerate(PHASES):
        dz[:, n * F:(n + 1) * F, a:a + H, b:b + W] = dy[:, :, a::2, b::2]  # undo the shuffle
    de, dk, _ = conv2d_backward(dz, conv_cache)                            # (CV2)-(CV3) of (U4)
    dw = sum(S[a].T @ dk[n * F:(n + 1) * F] @ S[b]
             for n, (a, b) in enumerate(PHASES))  # (F, C, 3, 3)  (U5)
    de[:, :, 1] += de[:, :, 0]  # E^T (U5): fold the padded rows
    de[:, :, H] += de[:, :, H + 1]  # onto the edge rows (corners too),
    de[:, :, :, 1] += de[:, :, :, 0]                                       # then the padded columns
    de[:, :, :, W] += de[:, :, :, W + 1]
    return de[:, :, 1:H + 1, 1:W + 1], dw                                  # (N, C, H, W)


class SlicedUpsample(StandIn, Upsample):
    """:class:`numstyle.transformer_layers.Upsample` (U1)-(U2), the backward by slice additions."""

    def forward(self, x):
        return upsample_nearest_forward(x, self.s)                          # (U1)

    def backward(self, dy, cache):
        return upsample_nearest_backward(dy, cache), {}                     # (U2)


class PhaseResizeConv(StandIn, UpsampleConv):
    """:class:`numstyle.transformer_layers.UpsampleConv` at the small size: four 2x2 convolutions in
    one GEMM and a pixel shuffle, (U3)-(U5)."""

    def forward(self, x):
        return resize_conv_forward(x, self.w)                               # (U3), (U4)

    def backward(self, dy, cache):
        dx, dw = resize_conv_backward(dy, cache)                            # (U5)
        return dx, ({"w": dw} if self.trainable else {})
