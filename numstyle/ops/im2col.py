r"""im2col / col2im: lay convolution windows out as matrix columns.

A convolution of ``x`` (N, C, H, W) with a kernel (F, C, kh, kw) is one
matrix product per image once every kh x kw window of ``x`` is copied into
a column:

.. math::  X_{\mathrm{col}}[n, (c, i, j), (h, w)] = x_{\mathrm{pad}}[n, c, s h + i, s w + j]   \tag{K1}

``col2im`` is the adjoint of ``im2col``: it adds every column entry back to
the pixel it came from (pixels shared by overlapping windows receive the sum),
which is exactly what the input gradient of a convolution needs:

.. math::  \frac{\partial L}{\partial x_{\mathrm{pad}}[n, c, y, x]} = \sum_{(i, j, h, w):\ s h + i = y,\ s w + j = x} \frac{\partial L}{\partial X_{\mathrm{col}}[n, (c, i, j), (h, w)]}   \tag{K2}

The ``*_rows`` variants do this for a band of output rows ``r0 <= h < r1``
only: the convolution works band by band so that the columns (9x the size of
the image for a 3x3 kernel) never exist for the whole image at once.
"""
from ..backend import get_xp
from . import kernels


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


def im2col_rows(xpad, kh, kw, stride, r0, r1, Wo, out=None):
    r"""Columns (K1) of output rows ``r0 .. r1-1`` from an already padded input.

    Parameters
    ----------
    xpad : ndarray, shape (N, C, Hp, Wp)
        The zero-padded input.
    r0, r1 : int
        Band of output rows.
    Wo : int
        Output width.
    out : ndarray, optional
        Buffer of ``N * C*kh*kw * (r1-r0)*Wo`` elements to write into.

    Returns
    -------
    cols : ndarray, shape (N, C*kh*kw, (r1-r0)*Wo)
        Row index ``(c*kh + i)*kw + j``, column index ``(h - r0)*Wo + w``.

    Notes
    -----
    One copy of :func:`tap_view`: a single strided copy (one kernel on a
    GPU). On NumPy it also beats one slice copy per kernel tap -- kh*kw
    calls -- by 5 % of a whole stylise or training step (docs/benchmarks.md).
    """
    xp = get_xp(xpad)
    N, C = xpad.shape[:2]
    rows = r1 - r0
    shape = (N, C, kh, kw, rows, Wo)
    cols = xp.empty(shape, dtype=xpad.dtype) if out is None else out.reshape(shape)
    cols[...] = tap_view(xpad[:, :, stride * r0:], kh, kw, stride, rows, Wo)   # (N, C, kh, kw, rows, Wo)   (K1)
    return cols.reshape(N, C * kh * kw, rows * Wo)                       # (N, C*kh*kw, rows*Wo)


def band_columns(x, kh, kw, stride, pad):
    r"""The columns (K1) of ``x`` zero-padded by ``pad``, a band at a time: ``columns(r0, r1, Wo, out=None)``.

    On NumPy ``x`` is padded once here and each band is :func:`im2col_rows`
    of the padded copy. On a GPU with the fused kernels each band is one
    gather that reads zeros outside ``x`` (``kernels.im2col_rows``): no padded
    copy, and two launches fewer per convolution.
    """
    if kernels.enabled(get_xp(x)):
        return lambda r0, r1, Wo, out=None: kernels.im2col_rows(x, kh, kw, stride, pad, r0, r1, Wo, out)
    xpad = zero_pad(x, pad)                                              # (N, C, H+2p, W+2p)
    return lambda r0, r1, Wo, out=None: im2col_rows(xpad, kh, kw, stride, r0, r1, Wo, out)


def tap_view(xpad, kh, kw, stride, rows, Wo):
    r"""(K1) as a view, nothing copied: ``view[n, c, i, j, h, w] = xpad[n, c, stride h + i, stride w + j]``.

    The six-axis strided view of the padded input whose copy is the columns:
    tap (i, j) moves along the input's own rows and columns (strides ``s_H``,
    ``s_W``), output pixel (h, w) by ``stride`` of them. Returns shape
    (N, C, kh, kw, rows, Wo). Read-only use: its entries overlap.
    """
    xp = get_xp(xpad)
    sN, sC, sH, sW = xpad.strides
    return xp.lib.stride_tricks.as_strided(
        xpad, shape=(xpad.shape[0], xpad.shape[1], kh, kw, rows, Wo),
        strides=(sN, sC, sH, sW, stride * sH, stride * sW))              # (N, C, kh, kw, rows, Wo)


def col2im_rows(cols, dxpad, kh, kw, stride, r0, r1, Wo):
    r"""Adjoint of :func:`im2col_rows`: add the band's columns into ``dxpad`` (K2), in place."""
    if kernels.enabled(get_xp(cols)):
        return kernels.col2im_rows(cols, dxpad, kh, kw, stride, r0, r1, Wo)   # (K2) in one GPU kernel
    N, C = dxpad.shape[:2]
    cols6 = cols.reshape(N, C, kh, kw, r1 - r0, Wo)                      # (N, C, kh, kw, rows, Wo)
    for i in range(kh):
        for j in range(kw):
            # (K2): windows overlap, so each tap adds (never assigns) into the image
            dxpad[:, :, stride * r0 + i:stride * (r1 - 1) + i + 1:stride,
                  j:j + stride * (Wo - 1) + 1:stride] += cols6[:, :, i, j]
    return dxpad


def im2col(x, kh, kw, stride=1, pad=0):
    r"""Copy every kh x kw window of ``x`` into a column (K1), for the whole image.

    Returns
    -------
    cols : ndarray, shape (N, C*kh*kw, Ho*Wo)
    """
    N, C, H, W = x.shape
    Ho, Wo = output_size(H, kh, stride, pad), output_size(W, kw, stride, pad)
    return im2col_rows(zero_pad(x, pad), kh, kw, stride, 0, Ho, Wo)


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
    dxpad = xp.zeros((N, C, H + 2 * pad, W + 2 * pad), dtype=cols.dtype)
    col2im_rows(cols, dxpad, kh, kw, stride, 0, Ho, Wo)
    return unpad(dxpad, pad)


def unpad(xpad, pad):
    """Crop ``pad`` pixels off each spatial border (a contiguous copy)."""
    if pad == 0:
        return xpad
    xp = get_xp(xpad)
    return xp.ascontiguousarray(xpad[:, :, pad:xpad.shape[2] - pad, pad:xpad.shape[3] - pad])


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
