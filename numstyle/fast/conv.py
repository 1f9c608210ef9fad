r"""Convolution, fast: :class:`BandedConv2d` and :class:`BandedConvTranspose2d` stand in for
:class:`numstyle.layers.Conv2d` and :class:`numstyle.transformer_layers.ConvTranspose2d`.

The same im2col + GEMM (K1), (CV1)-(CV4) as the reference, in bands of
output rows: each band's columns are built into a reused buffer that stays in
cache, and the bands run on every core (:mod:`numstyle.fast.parallel`). Two
shortcuts for stride 1, (CV5) and (CV6), move fewer values.

Notes
-----
With ``X_col = im2col(x)`` (K1) of shape (N, C k k, L), ``L = Ho Wo`` and the
kernel flattened to ``W_row`` (F, C k k):

.. math::  y[n] = W_{\mathrm{row}} X_{\mathrm{col}}[n] + b \mathbf{1}^\top                \tag{CV1}

Backward, for an upstream gradient ``dy`` (N, F, L):

.. math::  \frac{\partial L}{\partial X_{\mathrm{col}}[n]} = W_{\mathrm{row}}^\top\, dy[n],
           \qquad dx
             = \mathrm{col2im}\Big(\frac{\partial L}{\partial X_{\mathrm{col}}}\Big)      \tag{CV2}

.. math::  dW_{\mathrm{row}} = \sum_n dy[n]\, X_{\mathrm{col}}[n]^\top                    \tag{CV3}

.. math::  db_f = \sum_{n, l} dy[n, f, l]                                                 \tag{CV4}

A Gatys step needs only (CV2): the VGG weights are constants, so
``conv2d_backward(..., weight_grad=False)`` skips (CV3)-(CV4) and never builds
``X_col`` again.

For stride 1, (CV2) is itself a convolution -- of ``dy`` with the kernel
flipped in space and with its channel axes swapped, padded by ``k - 1 - p``
(square kernels, k = kh = kw):

.. math::  dx = \mathrm{conv}\big(dy,\ \tilde w\big), \qquad
           \tilde w[c, f, i, j] = w[f, c, k_h - 1 - i, k_w - 1 - j]               \tag{CV5}

which replaces col2im's read-modify-write scatter (K2) by im2col's plain
copies (K1): the same GEMM, less memory traffic when ``F <= C``.

Read the other way, (CV5) says a stride-1 convolution is the adjoint of the
convolution with the flipped, channel-swapped kernel. When ``2F <= C`` (a
9x9 convolution from 32 channels to 3, say) the forward pass takes that
route -- ``W^T``-products scattered by col2im move k^2 F values per pixel
instead of im2col's k^2 C -- and the weight gradient is built from columns
of the (flipped) upstream gradient instead of the input:

.. math::  dW[f, c, i, j] = \sum_{u, v} \tilde x[c, u, v]\; \tilde{dy}[f, u + i, v + j]   \tag{CV6}

with :math:`\tilde x` the padded input flipped in space and :math:`\tilde{dy}`
the upstream gradient flipped and zero-padded by ``k - 1``.
"""
import numpy as np

from ..backend import get_xp
from . import StandIn
from ..layers import Conv2d
from ..transformer_layers import ConvTranspose2d
from .memory import scratch
from .parallel import for_each_band, for_each_band_no_overlap, split_rows
from . import gpu_kernels
from .im2col import band_columns, col2im_rows, im2col_rows, output_size, unpad, zero_pad

# im2col columns per band: small enough to stay in cache, big enough for fast GEMMs
BAND_BYTES = 8 << 20


def row_bands(Ho, N, ckk, Wo, itemsize, xp, halves=False):
    """Split ``Ho`` output rows into bands whose (N, ckk, rows*Wo) columns fit BAND_BYTES."""
    return split_rows(Ho, N * ckk * Wo * itemsize, BAND_BYTES, xp, halves)


def conv2d_forward(x, w, b, stride=1, pad=0):
    r"""Convolve a batch of images with a bank of filters (CV1).

    Works in bands of output rows: im2col (K1) of one band into a reused
    buffer, one GEMM, then the next band -- the columns of the whole image
    (9x its size for 3x3 kernels) never exist at once.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    w : ndarray, shape (F, C, kh, kw)
    b : ndarray, shape (F,) or None
    stride, pad : int
        Stride and zero padding, the same on both spatial axes.

    Returns
    -------
    out : ndarray, shape (N, F, Ho, Wo)
        ``Ho = (H + 2 pad - kh) // stride + 1`` and likewise ``Wo``.
    cache : tuple
        ``(x, w, stride, pad)``: the input, not the columns, to keep memory at
        one copy of the activations.
    """
    xp = get_xp(x)
    N, C, H, W = x.shape
    F, Cw, kh, kw = w.shape
    assert C == Cw, f"conv2d: input has {C} channels, kernel expects {Cw}"
    Ho, Wo = output_size(H, kh, stride, pad), output_size(W, kw, stride, pad)
    if _few_outputs(F, C, kh, kw, stride, pad,
                    xp):  # (CV5) read backwards: scatter k^2 F, not k^2 C
        out = conv2d_input_grad(x, flipped(w), (N, F, Ho, Wo), 1, kh - 1 - pad)
        if b is not None:
            out += b.reshape(1, F, 1, 1)
        return out, (x, w, stride, pad)
    ckk = C * kh * kw
    w_row = w.reshape(F, ckk)                                            # (F, Ckk)
    columns = band_columns(x, kh, kw, stride, pad)  # zero-pads x (once, or as it reads)
    out = xp.empty((N, F, Ho, Wo), dtype=x.dtype)
    out_rows = out.reshape(N, F, Ho * Wo)                                # (N, F, Ho*Wo): a view

    def band(rows):                                                      # output rows r0..r1
        r0, r1 = rows
        buf = scratch("im2col", (N * ckk * (r1 - r0) * Wo,), x.dtype, x)  # this thread's buffer
        cols = columns(r0, r1, Wo, out=buf)  # (N, Ckk, rows*Wo)              (K1)
        if xp is np:  # a copy: measured 1-5 % faster than
            y = xp.matmul(w_row, cols)  # NumPy's matmul into a strided slice
            out[:, :, r0:r1] = y.reshape(N, F, r1 - r0,
                                         Wo)  # (F, Ckk) @ (N, Ckk, L) -> (N, F, L)  (CV1)
        else:  # GPU: one band, so straight into out
            xp.matmul(w_row, cols,
                      out=out_rows[:, :, r0 * Wo:r1 * Wo])  # (N, F, L)                        (CV1)

    for_each_band(band, row_bands(Ho, N, ckk, Wo, x.dtype.itemsize, xp),
                  xp)  # bands are independent
    if b is not None:
        out += b.reshape(1, F, 1, 1)                                     # (CV1) bias
    cache = (x, w, stride, pad)
    return out, cache


def conv2d_backward(dout, cache, weight_grad=True, input_grad=True):
    r"""Backward of :func:`conv2d_forward`.

    Parameters
    ----------
    dout : ndarray, shape (N, F, Ho, Wo)
    cache : tuple from :func:`conv2d_forward`
    weight_grad : bool
        When False only ``dx`` is computed (CV2) and ``dw, db`` are None.
    input_grad : bool
        When False ``dx`` is None (a network's first layer needs no input gradient).

    Returns
    -------
    dx : ndarray, shape (N, C, H, W) or None
    dw : ndarray, shape (F, C, kh, kw) or None
    db : ndarray, shape (F,) or None
    """
    x, w, stride, pad = cache
    dx = conv2d_input_grad(dout, w, x.shape, stride, pad) if input_grad else None   # (CV2) / (CV5)
    if not weight_grad:
        return dx, None, None
    dw = conv2d_weight_grad(dout, x, w.shape, stride, pad)               # (CV3)
    db = dout.sum(axis=(0, 2, 3))                                        # (CV4)
    return dx, dw, db


def conv2d_input_grad(dout, w, x_shape, stride, pad):
    r"""(CV2): the input gradient of a convolution -- the adjoint map of :func:`conv2d_forward`.

    Stride 1 with ``F <= C``: the flipped-kernel convolution (CV5). Otherwise
    ``W^T dy`` band by band, scattered back by col2im (K2).
    """
    xp = get_xp(dout)
    N, F, Ho, Wo = dout.shape
    _, C, kh, kw = w.shape
    if stride == 1 and kh == kw and pad < kh and F <= C and (Ho, Wo) == _same_size(
            x_shape, kh, pad):
        dx, _ = conv2d_forward(dout, flipped(w), None, 1, kh - 1 - pad)    # (CV5)
        return dx
    ckk = C * kh * kw
    w_row = w.reshape(F, ckk)                                            # (F, Ckk)
    dxpad = xp.zeros((N, C, x_shape[2] + 2 * pad, x_shape[3] + 2 * pad), dtype=dout.dtype)

    def band(rows):  # output rows r0..r1 -> dxpad's rows
        r0, r1 = rows
        dout_band = dout[:, :, r0:r1].reshape(N, F, (r1 - r0) * Wo)     # (N, F, L): a view
        dcols = xp.matmul(w_row.T, dout_band)  # (Ckk, F) @ (N, F, L) -> (N, Ckk, L)  (CV2)
        col2im_rows(dcols, dxpad, kh, kw, stride, r0, r1, Wo)            # (K2)

    bands = row_bands(Ho, N, ckk, Wo, dout.dtype.itemsize, xp,
                      halves=True)  # even, then odd: both on every core
    middle = [r1 - r0 for r0, r1 in bands[1:-1]]
    if not middle or min(middle) * stride >= kh - stride:  # bands k and k+2 write no common row:
        for_each_band_no_overlap(band, bands, xp)  #   band k+1's rows keep them apart
    else:  # thin bands: one after another
        for rows in bands:
            band(rows)
    return unpad(dxpad, pad)                                             # (N, C, H, W)


def conv2d_weight_grad(dout, x, w_shape, stride, pad):
    r"""(CV3): ``dW = sum_n dy[n] X_col[n]^T``, with the columns rebuilt band by band.

    With few output channels (``F < C``, stride 1) the columns come from the
    upstream gradient instead (CV6).
    """
    xp = get_xp(dout)
    N, F, Ho, Wo = dout.shape
    _, C, kh, kw = w_shape
    if _few_outputs(F, C, kh, kw, stride, pad, xp):
        return _weight_grad_from_dout_columns(dout, x, w_shape, pad)
    ckk = C * kh * kw
    columns = band_columns(x, kh, kw, stride, pad)
    parts = {}                                                           # band -> its share of dW

    def band(rows):
        r0, r1 = rows
        dout_band = dout[:, :, r0:r1].reshape(N, F, (r1 - r0) * Wo)     # (N, F, L): a view
        buf = scratch("im2col", (N * ckk * (r1 - r0) * Wo,), x.dtype, x)
        cols = columns(r0, r1, Wo, out=buf)  # (N, Ckk, L), rebuilt rather than cached
        parts[rows] = xp.matmul(dout_band, cols.transpose(0, 2, 1)).sum(
            axis=0)  # (N, F, L) @ (N, L, Ckk) -> (F, Ckk)  (CV3)

    bands = row_bands(Ho, N, ckk, Wo, dout.dtype.itemsize, xp)
    for_each_band(band, bands, xp)
    dw = sum(parts[rows] for rows in bands)                              # (F, Ckk), in band order
    return dw.reshape(w_shape)


def _weight_grad_from_dout_columns(dout, x, w_shape, pad):
    r"""(CV6): columns of the flipped, padded upstream gradient against the flipped input."""
    xp = get_xp(dout)
    N, F, Ho, Wo = dout.shape
    _, C, k, _ = w_shape
    xflip = zero_pad(x, pad)[:, :, ::-1, ::-1]  # (N, C, Hp, Wp), Hp = Ho + k - 1
    Hp, Wp = xflip.shape[2:]
    dpad = zero_pad(xp.ascontiguousarray(dout[:, :, ::-1, ::-1]),
                    k - 1)  # (N, F, Ho + 2k - 2, Wo + 2k - 2)
    fkk = F * k * k
    parts = {}                                                           # band -> its share of dW

    def band(rows):
        r0, r1 = rows
        buf = scratch("im2col", (N * fkk * (r1 - r0) * Wp,), dout.dtype, dout)
        cols = im2col_rows(dpad, k, k, 1, r0, r1, Wp, out=buf)  # (N, F k k, rows Wp)     (CV6)
        xband = xp.ascontiguousarray(xflip[:, :, r0:r1]).reshape(N, C,
                                                                 (r1 - r0) * Wp)  # (N, C, rows Wp)
        parts[rows] = xp.matmul(cols, xband.transpose(0, 2, 1)).sum(
            axis=0)  # (N, Fkk, L) @ (N, L, C) -> (Fkk, C)  (CV6)

    bands = row_bands(Hp, N, fkk, Wp, dout.dtype.itemsize, xp)
    for_each_band(band, bands, xp)
    dw = sum(parts[rows] for rows in bands)                              # (Fkk, C), in band order
    return dw.reshape(F, k, k, C).transpose(0, 3, 1, 2).copy()          # (F, C, k, k)


def _few_outputs(F, C, kh, kw, stride, pad, xp):
    """Stride-1 square convolutions with fewer outputs than inputs take the (CV5)/(CV6) routes.

    They move k^2 F values per pixel instead of im2col's k^2 C: for the
    transformer's last 9x9 convolution (32 -> 3 channels) 243 instead of 2592,
    2.7 GB fewer written and read at 512². On a GPU only with the fused
    kernels: the array code's col2im is one add per kernel tap (81 launches).
    """
    return stride == 1 and kh == kw and pad < kh and 2 * F <= C and (xp is np
                                                                     or gpu_kernels.enabled(xp))


def flipped(w):
    """The flipped, channel-swapped kernel of (CV5): (F, C, k, k) -> (C, F, k, k)."""
    xp = get_xp(w)
    return xp.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))


def _same_size(x_shape, k, pad):
    """Output (H, W) of a stride-1 convolution of ``x_shape``."""
    return (x_shape[2] + 2 * pad - k + 1, x_shape[3] + 2 * pad - k + 1)


def conv_transpose2d_forward(x, w, b, stride=2, pad=1, output_padding=1):
    r"""Transposed convolution: the adjoint of :func:`conv2d_forward`.

    Also called "fractionally strided" convolution (stride 1/s).

    Notes
    -----
    For the convolution :math:`y = K x` with kernel ``w`` (F, C, k, k), stride
    ``s`` and padding ``p``, the transposed convolution maps (N, F, H, W) to
    (N, C, Ho, Wo) by the adjoint matrix:

    .. math::  \mathrm{conv}^\top(x) = K^\top x, \qquad
               \langle K u, v \rangle = \langle u, K^\top v \rangle                   \tag{T1}

    so its forward *is* the convolution's input gradient (CV2), and its
    backward is the convolution itself plus the weight gradient with the
    roles of input and upstream gradient swapped:

    .. math::  dx = K\, dy, \qquad
               dW_{\mathrm{row}} = \sum_n x[n]\, \mathrm{im2col}(dy)[n]^\top          \tag{T2}

    ``Ho = (H - 1) s - 2p + k + output_padding``: with k = 3, s = 2, p = 1,
    output_padding = 1 the image doubles in size.

    Parameters
    ----------
    x : ndarray, shape (N, F, H, W)
    w : ndarray, shape (F, C, k, k)
        Laid out as the convolution it transposes (F "outputs" of that conv).
    b : ndarray, shape (C,) or None

    Returns
    -------
    out : ndarray, shape (N, C, Ho, Wo)
    cache : tuple ``(x, w, stride, pad)``
    """
    N, F, H, W = x.shape
    _, C, kh, kw = w.shape
    Ho, Wo = transposed_output_size(H, W, kh, kw, stride, pad, output_padding)
    out = conv2d_input_grad(x, w, (N, C, Ho, Wo), stride, pad)           # K^T x                (T1)
    if b is not None:
        out += b.reshape(1, C, 1, 1)
    cache = (x, w, stride, pad)
    return out, cache


def transposed_output_size(H, W, kh, kw, stride, pad, output_padding):
    """``(Ho, Wo)`` of a transposed convolution.

    Per axis: ``(H - 1) s - 2p + k + output_padding``."""
    if not 0 <= output_padding < max(stride, 1):
        raise ValueError(
            f"output_padding must be in [0, stride), got {output_padding} with stride {stride}")
    return ((H - 1) * stride - 2 * pad + kh + output_padding,
            (W - 1) * stride - 2 * pad + kw + output_padding)


def conv_transpose2d_backward(dout, cache, weight_grad=True):
    r"""Backward of :func:`conv_transpose2d_forward` (T2).

    The convolution is the adjoint's adjoint."""
    x, w, stride, pad = cache
    dx, _ = conv2d_forward(dout, w, None, stride, pad)                   # K dy                 (T2)
    if not weight_grad:
        return dx, None, None
    dw = conv2d_weight_grad(x, dout, w.shape, stride, pad)               # roles swapped        (T2)
    db = dout.sum(axis=(0, 2, 3))
    return dx, dw, db


def _named(dw, db, b):
    """The parameter gradients as the layer contract names them."""
    return {} if dw is None else ({"w": dw} if b is None else {"w": dw, "b": db})


class BandedConv2d(StandIn, Conv2d):
    """:class:`numstyle.layers.Conv2d` by :func:`conv2d_forward` / :func:`conv2d_backward`."""

    def forward(self, x):
        return conv2d_forward(x, self.w, self.b, self.stride, self.pad)          # (CV1)

    def backward(self, dy, cache):
        dx, dw, db = conv2d_backward(dy, cache, weight_grad=self.trainable,
                                     input_grad=self.input_grad)
        return dx, _named(dw, db, self.b)                                        # (CV2)-(CV4)


class BandedConvTranspose2d(StandIn, ConvTranspose2d):
    """:class:`numstyle.transformer_layers.ConvTranspose2d` by :func:`conv_transpose2d_forward` /
    :func:`conv_transpose2d_backward`."""

    def forward(self, x):
        return conv_transpose2d_forward(x, self.w, None, self.stride, self.pad,
                                        self.output_padding)  # (T1)

    def backward(self, dy, cache):
        dx, dw, _ = conv_transpose2d_backward(dy, cache, weight_grad=self.trainable)     # (T2)
        return dx, ({} if dw is None else {"w": dw})
