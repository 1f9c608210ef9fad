r"""Winograd's transforms compiled by Numba: (W3) and (W5) in one pass over each tile row.

The array code of :mod:`numstyle.fast.winograd` builds every transform from whole-array adds and
subtracts: each row of :math:`B^\top` or :math:`A^\top` is a pass over a band's buffers, so the
transforms move the data a dozen times where the arithmetic needs it once. Here each is one loop
nest, compiled (Numba, ``pip install numstyle[fast]``): per image, channel and tile row,

1. (W3) down the tile row: the :math:`\alpha` input rows it covers (zero outside the image: the
   padding is never built) combine into :math:`\alpha` rows, along whole image rows (contiguous:
   the compiler vectorises it);
2. (W3) across: each tile's :math:`\alpha` columns of those rows give its :math:`\alpha^2` entries
   of ``V`` (alpha^2, N, C, tiles).

The GEMMs (W4) are NumPy's; the output transform (W5) is the same two stages mirrored, writing each
output pixel once, bias added, straight into the output (ragged sides cut as it writes). The
arithmetic is the array code's -- the same rows of the same matrices, spelled out -- and
:func:`numstyle.fast.winograd.convolve` is its twin (tests/test_compiled.py). Large images run in
bands of about ``BAND_TILES`` tiles, each band's three steps on one core; small ones (the deep
layers) run each step on the whole image, split across the cores by channel, position, channel.

With the transforms this cheap, F(4x4, 3x3) pays where the array code's did not: (W4) costs 2.25
multiplies per output instead of F(2x2)'s 4. The input gradient of a constant kernel is the
forward convolution of its flipped, channel-swapped kernel (CV5), whose F(4x4) transform is made
once with the forward's.
"""
import sys
import threading

import numpy as np

from .. import settings
from ..backend import get_xp
from .conv import conv2d_weight_grad, flipped
from .parallel import for_each_band, split_rows
from .winograd import (FLIP, WINOGRAD_MIN_CHANNELS, WinogradConv2d, transform_kernel,
                       transformed)

try:
    import numba
except ImportError:  # the optional extra numstyle[fast]: without it, the array code
    numba = None
INSTALLED = numba is not None

M_OF = {16: 2, 36: 4}   # first axis of a kernel's transform -> m of F(m x m, 3x3)
FLIPPED_POSITION = [4 * FLIP[2][k // 4] + FLIP[2][k % 4] for k in range(16)]   # (W8): k -> P(k)
BAND_TILES = 256    # tiles per band: (W4)'s GEMMs long enough, V and M near the core's cache
WHOLE_TILES = 512   # up to this many tiles, each step on the whole image, split by channel or k
#                     (both measured on 64-512 channels, docs/benchmarks.md)
NOTICE_AFTER_S = 1.0   # a first use slower than this is Numba compiling (its cache loads in ~0.1 s)
NOTICE = "numstyle: compiling the fast convolutions (Numba, first run only, ~10 s)"


def available():
    """Whether the compiled transforms can run: Numba installed, ``NUMSTYLE_COMPILED`` not 0."""
    return INSTALLED and settings.get().compiled and settings.get().winograd


def convolve(x, w_hat, pad=1, b=None, flip=False, rectify=False, mask=None):
    r"""(W3)-(W5), plus bias ``b``: ``x`` (N, C, H, W) against ``w_hat`` (alpha^2, F, C).

    The same contract as :func:`numstyle.fast.winograd.convolve` (``pad`` 1: zero "same" padding;
    0: ``x`` is already padded). Returns (N, F, H + 2 pad - 2, W + 2 pad - 2).

    ``flip`` (F(2x2, 3x3) only): the adjoint, (W8) -- ``x`` (N, F, H, W) against the flipped,
    channel-swapped kernel, read from the forward's ``w_hat``: with :math:`P` the involution of
    (W8), :math:`A^\top P M' P A = A^\top M'' A` with :math:`M''_k = U_{P(k)}^\top V_k`, so the
    transforms are the forward's and only the GEMMs pair each :math:`V_k` with another
    :math:`U`, transposed. Returns (N, C, ...).

    ``rectify``: the ReLU (R1) after the convolution, applied as (W5) writes each output row.
    ``mask`` (shaped as ``x``): (R1)'s backward before it -- ``x`` times ``mask > 0``, applied
    as (W3) reads each input row (``x`` an upstream gradient, ``mask`` the ReLU's output).
    """
    xp = get_xp(x)
    assert xp is np, "the compiled transforms are for NumPy arrays"
    if x.dtype not in _ready:
        _first_use(x.dtype)
    m = M_OF[w_hat.shape[0]]
    assert m == 2 or not flip, "the (W8) adjoint is F(2x2, 3x3)'s"
    a = m + 2
    N, C, H, W = x.shape
    F = w_hat.shape[2] if flip else w_hat.shape[1]
    Ho, Wo = H + 2 * pad - 2, W + 2 * pad - 2
    th, tw = -(-Ho // m), -(-Wo // m)                             # tiles down and across
    x = np.ascontiguousarray(x)
    w_hat = np.asarray(w_hat, dtype=x.dtype)
    bias = np.zeros(F, x.dtype) if b is None else np.ascontiguousarray(b, dtype=x.dtype)
    y = np.empty((N, F, Ho, Wo), dtype=x.dtype)
    input_transform, output_transform = KERNELS[m]
    floor = x.dtype.type(0) if rectify else None   # None: the kernel compiled without (R1)
    if mask is not None:
        mask = np.ascontiguousarray(mask)
        assert mask.shape == x.shape

    def products(V, M, k0, k1):                                   # (W4) for positions k0..k1
        if not flip:
            np.matmul(w_hat[k0:k1, None], V[k0:k1],
                      out=M[k0:k1])  # (k,1,F,C) @ (k,N,C,t) -> (k,N,F,t)
            return
        for k in range(k0, k1):                                   # (W8): U_{P(k)}^T V_k
            np.matmul(w_hat[FLIPPED_POSITION[k]].T, V[k], out=M[k])  # (F,C) @ (N,C,t) -> (N,F,t)

    if N * th * tw <= WHOLE_TILES:  # small and deep: each step whole, split across the cores
        V = np.empty((a * a, N, C, th * tw), dtype=x.dtype)      # (a^2, N, C, T)
        M = np.empty((a * a, N, F, th * tw), dtype=x.dtype)      # (a^2, N, F, T)
        for_each_band(lambda cs: input_transform(x, mask, pad, 0, th, tw, cs[0], cs[1], V),
                      _per_core(C, xp), xp)                                             # (W3)
        for_each_band(lambda ks: products(V, M, *ks), _per_core(a * a, xp), xp)          # (W4)
        for_each_band(lambda fs: output_transform(M, bias, floor, 0, th, tw, fs[0], fs[1], y),
                      _per_core(F, xp), xp)                                             # (W5)
        return y

    def band(rows):                                               # tile rows i0..i1 -> y's rows
        i0, i1 = rows
        V = np.empty((a * a, N, C, (i1 - i0) * tw), dtype=x.dtype)  # (a^2, N, C, t)
        M = np.empty((a * a, N, F, (i1 - i0) * tw), dtype=x.dtype)  # (a^2, N, F, t)
        input_transform(x, mask, pad, i0, i1, tw, 0, C, V)        # (W3), (R1)
        products(V, M, 0, a * a)                                  # (W4)
        output_transform(M, bias, floor, i0, i1, tw, 0, F, y)     # (W5), + b, (R1)

    for_each_band(band, split_rows(th, N * tw, BAND_TILES, xp), xp)  # ~BAND_TILES tiles each
    return y


_ready = set()   # the dtypes whose kernels this process has compiled or loaded


def _first_use(dtype):
    """Compile every kernel for ``dtype`` (or load it from Numba's cache) on a tiny input; if that
    takes over ``NOTICE_AFTER_S``, say so on stderr meanwhile: the first run waits ~10 s."""
    dtype = np.dtype(dtype)   # np.float32 and np.dtype('float32') hash apart
    _ready.add(dtype)
    timer = threading.Timer(NOTICE_AFTER_S, lambda: print(NOTICE, file=sys.stderr, flush=True))
    timer.start()
    try:
        x = np.zeros((1, 1, 6, 6), dtype)
        for alpha2 in M_OF:                                      # F(2x2, 3x3) and F(4x4, 3x3),
            for rectify, mask in ((False, None), (True, x)):    # with and without the ReLU
                convolve(x, np.zeros((alpha2, 1, 1), dtype), rectify=rectify, mask=mask)
    finally:
        timer.cancel()


def _per_core(total, xp):
    """``range(total)`` in one band per core."""
    return split_rows(total, 1, total, xp)


# --- the loop nests ----------------------------------------------------------------------------
# Stage one of (W3) runs along whole input rows (contiguous: vectorised) into ``rows`` (a, padded
# width); stage two reads each tile's a columns from it. (W5) mirrors it: stage one per tile
# into ``cols`` (a, m tw), laid out as the output row, stage two along whole output rows. Every
# inner loop reads and writes 1-d row views: indexing the 4-d ``V`` and ``M`` per element kept
# LLVM from vectorising them (twice the time, docs/benchmarks.md).


def _row(x, mask, n, c, y, zero, out):
    """Input row ``y`` of plane (n, c): ``zero`` outside the image (the padding); with a ``mask``
    (a ReLU's output), the row times ``mask > 0`` -- (R1)'s backward -- written to ``out``."""
    if y < 0 or y >= x.shape[2]:
        return zero
    if mask is None:
        return x[n, c, y]
    row, keep = x[n, c, y], mask[n, c, y]
    for u in range(row.shape[0]):
        out[u] = row[u] * (keep[u] > 0)                                     # (R1)
    return out


def _rectify(out, floor):
    """(R1) on one output row, in place, when ``floor`` (0) is not None (NaN stays NaN)."""
    if floor is not None:
        for u in range(out.shape[0]):
            if out[u] < floor:
                out[u] = floor


def _f2_input(x, mask, pad, i0, i1, tw, c0, c1, V):
    """(W3) of F(2x2, 3x3) for tile rows i0..i1, channels c0..c1: ``V`` (16, N, C, (i1 - i0) tw)."""
    N, C, H, W = x.shape
    rows = np.zeros((4, 2 * tw + 2), x.dtype)       # padded columns; never-written ones stay 0
    zero, masked = np.zeros(W, x.dtype), np.empty((4, W), x.dtype)
    for n in range(N):
        for c in range(c0, c1):
            for i in range(i0, i1):
                y0 = 2 * i - pad
                r0 = _row(x, mask, n, c, y0, zero, masked[0])
                r1 = _row(x, mask, n, c, y0 + 1, zero, masked[1])
                r2 = _row(x, mask, n, c, y0 + 2, zero, masked[2])
                r3 = _row(x, mask, n, c, y0 + 3, zero, masked[3])
                q0, q1, q2, q3 = rows[0, pad:], rows[1, pad:], rows[2, pad:], rows[3, pad:]
                for u in range(min(W, 2 * tw + 2 - pad)):        # B^T down the tile's rows
                    d0, d1, d2, d3 = r0[u], r1[u], r2[u], r3[u]
                    q0[u] = d0 - d2
                    q1[u] = d1 + d2
                    q2[u] = d2 - d1
                    q3[u] = d1 - d3
                t = (i - i0) * tw
                for r in range(4):                               # B along the tile's columns
                    row = rows[r]
                    v0, v1 = V[4 * r, n, c, t:t + tw], V[4 * r + 1, n, c, t:t + tw]
                    v2, v3 = V[4 * r + 2, n, c, t:t + tw], V[4 * r + 3, n, c, t:t + tw]
                    for j in range(tw):
                        d0, d1, d2, d3 = row[2 * j], row[2 * j + 1], row[2 * j + 2], row[2 * j + 3]
                        v0[j] = d0 - d2
                        v1[j] = d1 + d2
                        v2[j] = d2 - d1
                        v3[j] = d1 - d3


def _f4_input(x, mask, pad, i0, i1, tw, c0, c1, V):
    """(W3) of F(4x4, 3x3) (``BT4``) for tile rows i0..i1, channels c0..c1: ``V`` (36, N, C,
    (i1 - i0) tw)."""
    N, C, H, W = x.shape
    rows = np.zeros((6, 4 * tw + 2), x.dtype)
    zero, masked = np.zeros(W, x.dtype), np.empty((6, W), x.dtype)
    for n in range(N):
        for c in range(c0, c1):
            for i in range(i0, i1):
                y0 = 4 * i - pad
                r0 = _row(x, mask, n, c, y0, zero, masked[0])
                r1 = _row(x, mask, n, c, y0 + 1, zero, masked[1])
                r2 = _row(x, mask, n, c, y0 + 2, zero, masked[2])
                r3 = _row(x, mask, n, c, y0 + 3, zero, masked[3])
                r4 = _row(x, mask, n, c, y0 + 4, zero, masked[4])
                r5 = _row(x, mask, n, c, y0 + 5, zero, masked[5])
                q0, q1, q2 = rows[0, pad:], rows[1, pad:], rows[2, pad:]
                q3, q4, q5 = rows[3, pad:], rows[4, pad:], rows[5, pad:]
                for u in range(min(W, 4 * tw + 2 - pad)):        # B^T down the tile's rows
                    d0, d1, d2, d3, d4, d5 = r0[u], r1[u], r2[u], r3[u], r4[u], r5[u]
                    q0[u] = 4 * d0 - 5 * d2 + d4
                    q1[u] = d3 + d4 - 4 * (d1 + d2)
                    q2[u] = 4 * (d1 - d2) - d3 + d4
                    q3[u] = 2 * (d3 - d1) - d2 + d4
                    q4[u] = 2 * (d1 - d3) - d2 + d4
                    q5[u] = 4 * d1 - 5 * d3 + d5
                t = (i - i0) * tw
                for r in range(6):                               # B along the tile's columns
                    row = rows[r]
                    v0, v1 = V[6 * r, n, c, t:t + tw], V[6 * r + 1, n, c, t:t + tw]
                    v2, v3 = V[6 * r + 2, n, c, t:t + tw], V[6 * r + 3, n, c, t:t + tw]
                    v4, v5 = V[6 * r + 4, n, c, t:t + tw], V[6 * r + 5, n, c, t:t + tw]
                    for j in range(tw):
                        d0, d1, d2 = row[4 * j], row[4 * j + 1], row[4 * j + 2]
                        d3, d4, d5 = row[4 * j + 3], row[4 * j + 4], row[4 * j + 5]
                        v0[j] = 4 * d0 - 5 * d2 + d4
                        v1[j] = d3 + d4 - 4 * (d1 + d2)
                        v2[j] = 4 * (d1 - d2) - d3 + d4
                        v3[j] = 2 * (d3 - d1) - d2 + d4
                        v4[j] = 2 * (d1 - d3) - d2 + d4
                        v5[j] = 4 * d1 - 5 * d3 + d5


def _f2_output(M, bias, floor, i0, i1, tw, f0, f1, y):
    """(W5) of F(2x2, 3x3): ``M`` (16, N, F, (i1 - i0) tw) -> y's rows 2 i0 .. 2 i1, channels
    f0..f1, + bias."""
    N, F, Ho, Wo = y.shape
    cols = np.empty((4, 2 * tw), M.dtype)                        # [r, 2 j + q]
    for n in range(N):
        for f in range(f0, f1):
            for i in range(i0, i1):
                t = (i - i0) * tw
                for r in range(4):                               # A^T along the tile's columns
                    col = cols[r]
                    p0, p1 = M[4 * r, n, f, t:t + tw], M[4 * r + 1, n, f, t:t + tw]
                    p2, p3 = M[4 * r + 2, n, f, t:t + tw], M[4 * r + 3, n, f, t:t + tw]
                    for j in range(tw):
                        m0, m1, m2, m3 = p0[j], p1[j], p2[j], p3[j]
                        col[2 * j] = m0 + m1 + m2
                        col[2 * j + 1] = m1 - m2 - m3
                c0, c1, c2, c3 = cols[0], cols[1], cols[2], cols[3]
                y0, b = 2 * i, bias[f]
                out = y[n, f, y0]                                # ... and along its rows
                for u in range(Wo):
                    out[u] = c0[u] + c1[u] + c2[u] + b
                _rectify(out, floor)
                if y0 + 1 < Ho:                                  # the last tile row may be cut
                    out = y[n, f, y0 + 1]
                    for u in range(Wo):
                        out[u] = c1[u] - c2[u] - c3[u] + b
                    _rectify(out, floor)


def _f4_output(M, bias, floor, i0, i1, tw, f0, f1, y):
    """(W5) of F(4x4, 3x3) (``AT4``): ``M`` (36, N, F, (i1 - i0) tw) -> y's rows 4 i0 .. 4 i1,
    channels f0..f1, + bias."""
    N, F, Ho, Wo = y.shape
    cols = np.empty((6, 4 * tw), M.dtype)                        # [r, 4 j + q]
    for n in range(N):
        for f in range(f0, f1):
            for i in range(i0, i1):
                t = (i - i0) * tw
                for r in range(6):                               # A^T along the tile's columns
                    col = cols[r]
                    p0, p1 = M[6 * r, n, f, t:t + tw], M[6 * r + 1, n, f, t:t + tw]
                    p2, p3 = M[6 * r + 2, n, f, t:t + tw], M[6 * r + 3, n, f, t:t + tw]
                    p4, p5 = M[6 * r + 4, n, f, t:t + tw], M[6 * r + 5, n, f, t:t + tw]
                    for j in range(tw):
                        m0, m1, m2, m3, m4, m5 = p0[j], p1[j], p2[j], p3[j], p4[j], p5[j]
                        col[4 * j] = m0 + m1 + m2 + m3 + m4
                        col[4 * j + 1] = m1 - m2 + 2 * (m3 - m4)
                        col[4 * j + 2] = m1 + m2 + 4 * (m3 + m4)
                        col[4 * j + 3] = m1 - m2 + 8 * (m3 - m4) + m5
                c0, c1, c2, c3, c4, c5 = cols[0], cols[1], cols[2], cols[3], cols[4], cols[5]
                y0, b = 4 * i, bias[f]
                inside = min(4, Ho - y0)                         # the last tile row may be cut
                out = y[n, f, y0]                                # ... and along its rows
                for u in range(Wo):
                    out[u] = c0[u] + c1[u] + c2[u] + c3[u] + c4[u] + b
                _rectify(out, floor)
                if inside > 1:
                    out = y[n, f, y0 + 1]
                    for u in range(Wo):
                        out[u] = c1[u] - c2[u] + 2 * (c3[u] - c4[u]) + b
                    _rectify(out, floor)
                if inside > 2:
                    out = y[n, f, y0 + 2]
                    for u in range(Wo):
                        out[u] = c1[u] + c2[u] + 4 * (c3[u] + c4[u]) + b
                    _rectify(out, floor)
                if inside > 3:
                    out = y[n, f, y0 + 3]
                    for u in range(Wo):
                        out[u] = c1[u] - c2[u] + 8 * (c3[u] - c4[u]) + c5[u] + b
                    _rectify(out, floor)


if INSTALLED:
    _jit = numba.njit(nogil=True, cache=True, error_model="numpy")
    _row, _rectify = _jit(_row), _jit(_rectify)   # called by the kernels: compiled first
    KERNELS = {2: (_jit(_f2_input), _jit(_f2_output)), 4: (_jit(_f4_input), _jit(_f4_output))}
else:
    KERNELS = {}


# F(4x4, 3x3) up to this many input channels, F(2x2, 3x3) above: (W4) costs 2.25 multiplies per
# output instead of 4, but the kernel's transform is 36/9 of its size, twice (the flipped one
# for the input gradient; F(2x2)'s (W8) reads its own): measured (docs/benchmarks.md)
F4_MAX_CHANNELS = 128


class CompiledWinogradConv2d(WinogradConv2d):
    """:class:`numstyle.layers.Conv2d` by Winograd with compiled transforms: (W2)-(W5) forward,
    F(4x4, 3x3) up to ``F4_MAX_CHANNELS`` inputs (the input gradient: the flipped kernel's forward,
    (CV5)), F(2x2, 3x3) above (the input gradient: (W8)).

    The same layers as :class:`numstyle.fast.winograd.WinogradConv2d` (3x3, stride 1, constant
    weights), on NumPy, where Numba is installed (``NUMSTYLE_COMPILED=0`` turns it off).

    ``rectify`` (set by :func:`numstyle.engine.rectify_in_place`): the layer also applies the
    ReLU after it (R1) as it writes its output, and (R1)'s backward as its own backward reads the
    gradient; the ReLU in the chain then passes values through
    (:class:`numstyle.fast.activations.Rectified`).
    """

    numpy_only = True   # Numba compiles for the CPU: never offered CuPy arrays
    rectify = False

    @classmethod
    def applies(cls, layer, xp):
        return (xp is np and available() and cls.computes(layer) and not layer.trainable
                and layer.w.dtype in (np.float32, np.float64)  # what the kernels compile for
                and layer.w.shape[1] >= WINOGRAD_MIN_CHANNELS)

    def prepare(self):
        m = 4 if self.w.shape[1] <= F4_MAX_CHANNELS else 2
        if self.trainable:  # gradient checks: the weights change between calls
            self.w_hat = transform_kernel(self.w, m)                                  # (W2)
            self.w_hat_flip = transform_kernel(flipped(self.w), m) if m == 4 else None  # (CV5)
        else:               # constants: kept while they live
            self.w_hat = transformed(self.w, m)
            self.w_hat_flip = transformed(self.w, m, flip=True) if m == 4 else None

    def forward(self, x):
        y = convolve(x, self.w_hat, self.pad, self.b, rectify=self.rectify)      # (W3)-(W5), (R1)
        # x only for (CV3): constant weights let the input go once the next layer has read it;
        # y (the ReLU's output) only when the ReLU is done here: its sign is (R1)'s mask
        return y, (x if self.trainable else None, y if self.rectify else None)

    def backward(self, dy, cache):
        if not self.input_grad and not self.trainable:
            return None, {}
        x, y = cache
        pad = self.pad
        if y is not None and self.trainable:      # gradient checks: dy masked once, for dw too
            dy, y = dy * (y > 0), None                                           # (R1)
        dx = None
        if self.input_grad and self.w_hat_flip is None:
            dx = convolve(dy, self.w_hat, 2 - pad, flip=True, mask=y)            # (R1), (W8)
        elif self.input_grad:
            dx = convolve(dy, self.w_hat_flip, 2 - pad, mask=y)                  # (R1), (CV5)
        if not self.trainable:
            return dx, {}
        dw = conv2d_weight_grad(dy, x, self.w.shape, 1, pad)  # (CV3): gradient checks only,
        db = dy.sum(axis=(0, 2, 3))                           # (CV4)  trainable layers keep im2col
        return dx, ({"w": dw} if self.b is None else {"w": dw, "b": db})
