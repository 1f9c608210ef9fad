r"""im2col (K1) and col2im (K2) a band of output rows at a time, for :mod:`numstyle.fast.conv`.

The reference builds the columns of the whole image (:func:`numstyle.layers.im2col`),
9x its size for a 3x3 kernel; here the convolution works band by band, so
each band's columns fit in cache. The columns of a band are one strided copy
(:func:`tap_view`); on a GPU with the fused kernels one gather that reads the
padding as zeros instead of building a padded copy.
"""
from ..backend import get_xp
from ..layers import output_size  # noqa: F401  (re-exported for fast.conv)
from . import gpu_kernels


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
    cols[...] = tap_view(xpad[:, :, stride * r0:], kh, kw, stride, rows,
                         Wo)  # (N, C, kh, kw, rows, Wo)   (K1)
    return cols.reshape(N, C * kh * kw, rows * Wo)                       # (N, C*kh*kw, rows*Wo)


def band_columns(x, kh, kw, stride, pad):
    r"""The columns (K1) of ``x`` zero-padded by ``pad``, a band at a time.

    Returns ``columns(r0, r1, Wo, out=None)``. On NumPy ``x`` is padded once
    here and each band is :func:`im2col_rows` of the padded copy. On a GPU with
    the fused kernels each band is one gather that reads zeros outside ``x``
    (``gpu_kernels.im2col_rows``): no padded copy, and two launches fewer per
    convolution.
    """
    if gpu_kernels.enabled(get_xp(x)):
        return lambda r0, r1, Wo, out=None: gpu_kernels.im2col_rows(x, kh, kw, stride, pad, r0, r1,
                                                                    Wo, out)
    xpad = zero_pad(x, pad)                                              # (N, C, H+2p, W+2p)
    return lambda r0, r1, Wo, out=None: im2col_rows(xpad, kh, kw, stride, r0, r1, Wo, out)


def tap_view(xpad, kh, kw, stride, rows, Wo):
    r"""(K1) as a view, nothing copied.

    ``view[n, c, i, j, h, w] = xpad[n, c, stride h + i, stride w + j]``. The
    six-axis strided view of the padded input whose copy is the columns:
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
    if gpu_kernels.enabled(get_xp(cols)):
        return gpu_kernels.col2im_rows(cols, dxpad, kh, kw, stride, r0, r1,
                                       Wo)  # (K2) in one GPU kernel
    N, C = dxpad.shape[:2]
    cols6 = cols.reshape(N, C, kh, kw, r1 - r0, Wo)                      # (N, C, kh, kw, rows, Wo)
    for i in range(kh):
        for j in range(kw):
            # (K2): windows overlap, so each tap adds (never assigns) into the image
            dxpad[:, :, stride * r0 + i:stride * (r1 - 1) + i + 1:stride,
                  j:j + stride * (Wo - 1) + 1:stride] += cols6[:, :, i, j]
    return dxpad


def unpad(xpad, pad):
    """Crop ``pad`` pixels off each spatial border (a contiguous copy)."""
    if pad == 0:
        return xpad
    xp = get_xp(xpad)
    return xp.ascontiguousarray(xpad[:, :, pad:xpad.shape[2] - pad, pad:xpad.shape[3] - pad])
