r"""im2col / col2im: lay convolution windows out as matrix columns.

A convolution of ``x`` (N, C, H, W) with a kernel (F, C, kh, kw) is one
matrix product per image once every kh x kw window of ``x`` is copied into
a column:

.. math::  X_{\mathrm{col}}[n, (c, i, j), (h, w)] = x_{\mathrm{pad}}[n, c, s h + i, s w + j]   \tag{K1}

``col2im`` is the adjoint of ``im2col``: it adds every column entry back to
the pixel it came from (pixels shared by overlapping windows receive the sum),
which is exactly what the input gradient of a convolution needs:

.. math::  \frac{\partial L}{\partial x_{\mathrm{pad}}[n, c, y, x]} = \sum_{(i, j, h, w):\ s h + i = y,\ s w + j = x} \frac{\partial L}{\partial X_{\mathrm{col}}[n, (c, i, j), (h, w)]}   \tag{K2}
"""
from ..backend import get_xp, scratch


def output_size(size, k, stride, pad):
    """Output length of a convolution along one axis: floor((size + 2p - k) / s) + 1."""
    return (size + 2 * pad - k) // stride + 1


def zero_pad(x, pad):
    """Zero-pad the two spatial axes of an NCHW array (a new array; x untouched)."""
    if pad == 0:
        return x
    xp = get_xp(x)
    N, C, H, W = x.shape
    xpad = xp.zeros((N, C, H + 2 * pad, W + 2 * pad), dtype=x.dtype)
    xpad[:, :, pad:pad + H, pad:pad + W] = x
    return xpad


def im2col(x, kh, kw, stride=1, pad=0, reuse=False):
    r"""Copy every kh x kw window of ``x`` into a column (K1).

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    kh, kw : int
        Kernel height and width.
    stride, pad : int
        Stride and zero padding (same on both axes).
    reuse : bool
        Write into a shared work buffer (:func:`numstyle.backend.scratch`)
        instead of a fresh array: for callers that consume ``cols`` at once.

    Returns
    -------
    cols : ndarray, shape (N, C*kh*kw, Ho*Wo)
        Row index ``(c*kh + i)*kw + j``, column index ``h*Wo + w``.
    """
    xp = get_xp(x)
    N, C, H, W = x.shape
    Ho, Wo = output_size(H, kh, stride, pad), output_size(W, kw, stride, pad)
    xpad = zero_pad(x, pad)                                     # (N, C, H+2p, W+2p)
    shape = (N, C, kh, kw, Ho, Wo)
    cols = scratch("im2col", shape, x.dtype, x) if reuse else xp.empty(shape, dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            # (K1): one strided slice per kernel tap, all channels and positions at once
            cols[:, :, i, j] = xpad[:, :, i:i + stride * Ho:stride, j:j + stride * Wo:stride]
    return cols.reshape(N, C * kh * kw, Ho * Wo)                # (N, C*kh*kw, Ho*Wo)


def col2im(cols, x_shape, kh, kw, stride=1, pad=0):
    r"""Adjoint of :func:`im2col`: sum columns back into an image (K2).

    Parameters
    ----------
    cols : ndarray, shape (N, C*kh*kw, Ho*Wo)
    x_shape : tuple (N, C, H, W)
        Shape of the unpadded image the columns came from.

    Returns
    -------
    x : ndarray, shape (N, C, H, W)
    """
    xp = get_xp(cols)
    N, C, H, W = x_shape
    Ho, Wo = output_size(H, kh, stride, pad), output_size(W, kw, stride, pad)
    cols6 = cols.reshape(N, C, kh, kw, Ho, Wo)                  # (N, C, kh, kw, Ho, Wo)
    xpad = xp.zeros((N, C, H + 2 * pad, W + 2 * pad), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            # (K2): windows overlap, so each tap adds (never assigns) into the image
            xpad[:, :, i:i + stride * Ho:stride, j:j + stride * Wo:stride] += cols6[:, :, i, j]
    if pad == 0:
        return xpad
    return xp.ascontiguousarray(xpad[:, :, pad:pad + H, pad:pad + W])


def im2col_naive(x, kh, kw, stride=1, pad=0):
    """Loop-based twin of :func:`im2col`, for tests."""
    xp = get_xp(x)
    N, C, H, W = x.shape
    Ho, Wo = output_size(H, kh, stride, pad), output_size(W, kw, stride, pad)
    xpad = zero_pad(x, pad)
    cols = xp.zeros((N, C * kh * kw, Ho * Wo), dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(kh):
                for j in range(kw):
                    for h in range(Ho):
                        for w in range(Wo):
                            cols[n, (c * kh + i) * kw + j, h * Wo + w] = xpad[n, c, stride * h + i, stride * w + j]
    return cols


def col2im_naive(cols, x_shape, kh, kw, stride=1, pad=0):
    """Loop-based twin of :func:`col2im`, for tests."""
    xp = get_xp(cols)
    N, C, H, W = x_shape
    Ho, Wo = output_size(H, kh, stride, pad), output_size(W, kw, stride, pad)
    xpad = xp.zeros((N, C, H + 2 * pad, W + 2 * pad), dtype=cols.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(kh):
                for j in range(kw):
                    for h in range(Ho):
                        for w in range(Wo):
                            xpad[n, c, stride * h + i, stride * w + j] += cols[n, (c * kh + i) * kw + j, h * Wo + w]
    return xpad[:, :, pad:pad + H, pad:pad + W]
