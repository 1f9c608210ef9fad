r"""Winograd F(2x2, 3x3) on the GPU: the transforms (W3) and (W5) as one fused kernel each.

The array code in :mod:`numstyle.fast.winograd` builds each transform from
additions of strided views -- cheap on a CPU, dozens of kernel launches per
convolution on a GPU. Here the whole convolution is three launches:

1. ``winograd_input`` (W3): every entry of :math:`V = B^\top d B` computed
   from its tile's 4x4 input pixels, zero outside the image (the padding is
   read, never built), laid out (16, C, N, tiles) so that
2. (W4) is one batched GEMM, 16 products (F, C) @ (C, N tiles) -- cuBLAS's
   strided batch -- and
3. ``winograd_output`` (W5): each output pixel from the 16 entries of its
   tile's :math:`M`, :math:`Y = A^\top M A`, plus the bias.

Against im2col + GEMM (9 C values written per pixel, 9 C multiplies per output
value) this writes 4 C + 4 F values per pixel and does 4 C multiplies: 2.25x
fewer. ``flip`` swaps rows 0 and 3 of :math:`B^\top` and columns 0 and 3 of
:math:`A^\top`: the input gradient (W8) by the same three launches.

Both bodies are gathers, one thread per output value, like the kernels in
:mod:`numstyle.fast.gpu_kernels` (whose launcher and self-test they share); the
array code's twin is :func:`numstyle.fast.winograd.convolve`.
"""
from .. import settings
from ..backend import get_xp
from . import gpu_kernels
from .parallel import winograd_bands

SOURCES = {
    "winograd_input": (
        "raw T x, int32 C, int32 N, int32 H, int32 W, int32 pad, int32 i0, int32 rows, int32 tw, "
        "int32 flip",
        "T v", """
        const int BT[16] = {1, 0, -1, 0,               // B^T of F(2x2, 3x3)
                            0, 1, 1, 0,
                            0, -1, 1, 0,
                            0, 1, 0, -1};
        // V entry (k, c, img, tile row i0 + o.r, tile column)
        const Pixel o = pixel(i, rows, tw);
        const int img = (int)(o.nc % N), c = (int)((o.nc / N) % C),
                  k = (int)(o.nc / ((ptrdiff_t)N * C));
        int r = k / 4, s = k % 4;                      // transform-domain position (r, s)
        if (flip) { r = r % 3 ? r : 3 - r; s = s % 3 ? s : 3 - s; }    // (W8): rows 0 and 3 swapped
        const int y0 = 2 * (i0 + o.r) - pad, x0 = 2 * o.c - pad;   // the tile's first input pixel
        const ptrdiff_t plane = ((ptrdiff_t)img * C + c) * H;
        T sum = 0;
        // (B^T d B)[r, s] = sum_uw B^T[r, u] d[u, w] B^T[s, w]  (W3)
        for (int u = 0; u < 4; ++u) {
            const int yy = y0 + u;
            if (BT[r * 4 + u] == 0 || yy < 0 || yy >= H) continue;    // zero padding
            for (int w = 0; w < 4; ++w) {
                const int xx = x0 + w;
                if (BT[s * 4 + w] == 0 || xx < 0 || xx >= W) continue;
                sum += (T)(BT[r * 4 + u] * BT[s * 4 + w]) * x[(plane + yy) * W + xx];
            }
        }
        v = sum;
        """),
    "winograd_output": (
        "raw T M, raw T b, int32 F, int32 N, int32 Hb, int32 Wo, int32 rows, int32 tw, int32 bias, "
        "int32 flip",
        "T y", """
        const int AT[8] = {1, 1, 1, 0,  0, 1, -1, -1};  // A^T of F(2x2, 3x3)
        // output pixel (img, f, row in the band, column)
        const Pixel o = pixel(i, Hb, Wo);
        const int f = (int)(o.nc % F), img = (int)(o.nc / F);
        const int p = o.r % 2, q = o.c % 2;            // its place in its 2x2 block
        const ptrdiff_t tiles = (ptrdiff_t)N * rows * tw;
        // its tile, among the band's
        const ptrdiff_t t = ((ptrdiff_t)img * rows + o.r / 2) * tw + o.c / 2;
        T sum = 0;
        // (A^T M A)[p, q] = sum_rs A^T[p, r] M[r, s] A^T[q, s]  (W5)
        for (int r = 0; r < 4; ++r) {
            // (W8): columns 0 and 3 swapped
            const int ar = AT[p * 4 + (flip && r % 3 == 0 ? 3 - r : r)];
            if (ar == 0) continue;
            for (int s = 0; s < 4; ++s) {
                const int as = AT[q * 4 + (flip && s % 3 == 0 ? 3 - s : s)];
                if (as != 0) sum += (T)(ar * as) * M[((ptrdiff_t)(r * 4 + s) * F + f) * tiles + t];
            }
        }
        y = bias ? sum + b[f] : sum;
        """),
}
gpu_kernels.SOURCES.update(SOURCES)  # compiled, cached and self-tested with the other fused kernels


def available(xp):
    """Whether 3x3 convolutions go through Winograd on ``xp``.

    Yes on NumPy, or on a GPU with the fused kernels (without them each transform is dozens of
    launches). ``NUMSTYLE_WINOGRAD=0``: im2col everywhere."""
    if not settings.get().winograd:
        return False
    return xp.__name__ == "numpy" or gpu_kernels.enabled(xp)


def convolve(x, w_hat, pad=1, b=None, flip=False):
    r"""(W3)-(W5) of F(2x2, 3x3) in three launches.

    ``x`` (N, C, H, W), ``w_hat`` (16, F, C) -> (N, F, Ho, Wo),
    ``Ho, Wo = H + 2 pad - 2, W + 2 pad - 2``; ``flip`` runs (W8)'s permuted transforms. One band
    of tile rows unless V and M would pass ``parallel.DEVICE_BAND_BYTES`` (as im2col's columns).
    """
    xp = get_xp(x)
    N, C, H, W = x.shape
    F = w_hat.shape[1]
    Ho, Wo = H + 2 * pad - 2, W + 2 * pad - 2
    th, tw = -(-Ho // 2), -(-Wo // 2)                                        # tiles down and across
    x = xp.ascontiguousarray(x)
    y = xp.empty((N, F, Ho, Wo), dtype=x.dtype)
    for i0, i1 in winograd_bands(th, tw, 4, max(C, F), N, x.dtype, xp):  # tile rows i0..i1
        rows, y_band = i1 - i0, y[:, :, 2 * i0:min(2 * i1, Ho)]  # (N, F, Hb, Wo): a view
        V = xp.empty((16, C, N * rows * tw), dtype=x.dtype)                  # (16, C, N tiles)
        gpu_kernels.kernel(xp, "winograd_input")(x, C, N, H, W, pad, i0, rows, tw, int(flip),
                                                  V)  # (W3)
        M = xp.matmul(w_hat, V)  # (16, F, C) @ (16, C, N t) -> (16, F, N t)  (W4)
        gpu_kernels.kernel(xp,
                            "winograd_output")(M, M if b is None else b, F, N,
                                               y_band.shape[2], Wo, rows, tw, int(b is not None),
                                               int(flip), y_band)  # (W5) + bias
    return y
