r"""Winograd F(m x m, 3x3): 3x3, stride-1 convolutions with fewer multiplies.

Used for VGG's convolutions (pad 1) and the transformer's (pad 0).
Each m x m block of outputs is computed from an (m+2) x (m+2) tile of the
padded input (Lavin & Gray, 2016). For F(2x2, 3x3), with the constant matrices

.. math::  B^\top = \begin{bmatrix} 1&0&-1&0\\ 0&1&1&0\\ 0&-1&1&0\\ 0&1&0&-1 \end{bmatrix},\quad
           G = \begin{bmatrix} 1&0&0\\ \tfrac12&\tfrac12&\tfrac12\\
                               \tfrac12&-\tfrac12&\tfrac12\\ 0&0&1 \end{bmatrix},\quad
           A^\top = \begin{bmatrix} 1&1&1&0\\ 0&1&-1&-1 \end{bmatrix}

one tile's output is

.. math::  Y = A^\top \Big[ \sum_c (G g_{fc} G^\top) \odot (B^\top d_c B) \Big] A       \tag{W1}

F(4x4, 3x3) is the same formula with 6x6 tiles and the 6x6, 6x3 and 4x6
matrices ``BT4``, ``G4``, ``AT4`` below (interpolation points 0, +-1, +-2, oo).
Write :math:`\alpha = m + 2` for the tile size. Batched over all tiles, (W1)
is four steps; the :math:`\alpha^2` positions of the transform domain each
become one GEMM that sums over channels:

.. math::  U = G\, g\, G^\top \quad (\alpha^2, F, C)                               \tag{W2}
.. math::  V = B^\top d\, B \quad (\alpha^2, N, C, T) \qquad T = \text{tiles}       \tag{W3}
.. math::  M_k = U_k V_k \quad (F, C) \cdot (C, T), \quad k = 1 \dots \alpha^2       \tag{W4}
.. math::  Y = A^\top M A                                                            \tag{W5}

Every step is linear, so the backward is each step's adjoint, in reverse
order: the transpose of the constant matrices, the transposed GEMM, and an
overlap-add of the tiles (neighbouring tiles share two rows/columns):

.. math::  dM = A\, dY A^\top \quad (W5^T), \qquad dV_k = U_k^\top dM_k \quad (W4^T),
           \qquad dd = B\, dV B^\top \quad (W3^T)                                      \tag{W6}
.. math::  dU_k = \sum_n dM_{k,n} V_{k,n}^\top \quad (W4^T),
           \qquad dg = G^\top dU\, G \quad (W2^T)                                      \tag{W7}

For F(2x2, 3x3) the input gradient has a shorter road, (W8): the forward
steps themselves, with two transform rows swapped (:func:`winograd_conv3x3_input_grad`).

A 3x3 convolution costs 9 multiplies per output; (W4) costs
:math:`\alpha^2 / m^2` per output: 4 for F(2x2, 3x3) (2.25x fewer), 2.25 for
F(4x4, 3x3) (4x fewer). The transforms are additions on strided views.
"""
import weakref

import numpy as np

from ..backend import get_xp
from ..layers import Conv2d
from . import StandIn
from .conv import flipped
from .parallel import for_each_band, for_each_band_no_overlap, winograd_bands
from . import gpu_kernels, gpu_winograd

BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=np.float64)
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], dtype=np.float64)
AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=np.float64)

BT4 = np.array([[4, 0, -5, 0, 1, 0],
                [0, -4, -4, 1, 1, 0],
                [0, 4, -4, -1, 1, 0],
                [0, -2, -1, 2, 1, 0],
                [0, 2, -1, -2, 1, 0],
                [0, 4, 0, -5, 0, 1]], dtype=np.float64)
G4 = np.array([[1 / 4, 0, 0],
               [-1 / 6, -1 / 6, -1 / 6],
               [-1 / 6, 1 / 6, -1 / 6],
               [1 / 24, 1 / 12, 1 / 6],
               [1 / 24, -1 / 12, 1 / 6],
               [0, 0, 1]], dtype=np.float64)
AT4 = np.array([[1, 1, 1, 1, 1, 0],
                [0, 1, -1, 2, -2, 0],
                [0, 1, 1, 4, 4, 0],
                [0, 1, -1, 8, -8, 1]], dtype=np.float64)

TRANSFORMS = {2: (BT, G, AT), 4: (BT4, G4, AT4)}     # m -> (B^T, G, A^T) of F(m x m, 3x3)
DEFAULT_M = 2


def transform_kernel(w, m=DEFAULT_M):
    r"""(W2): 3x3 kernels (F, C, 3, 3) -> the transform domain of F(m x m, 3x3), laid out (alpha^2,
    F, C)."""
    xp = get_xp(w)
    F, C = w.shape[:2]
    a = m + 2
    g = xp.asarray(TRANSFORMS[m][1], dtype=w.dtype)                          # (a, 3)
    P = (w.reshape(F * C * 3, 3) @ g.T).reshape(F * C, 3, a)                 # w G^T: (FC, i, b)
    U = (P.transpose(0, 2, 1).reshape(F * C * a, 3) @ g.T).reshape(F, C, a,
                                                                   a)  # (G w G^T)^T: (F, C, b, a)
    return xp.ascontiguousarray(U.transpose(3, 2, 0, 1)).reshape(a * a, F,
                                                                 C)  # (a, b, F, C) -> (a^2, F, C)


def tile_size(w_hat):
    """m of the F(m x m, 3x3) a transformed kernel (alpha^2, F, C) belongs to."""
    return {16: 2, 36: 4}[w_hat.shape[0]]


def winograd_conv3x3_forward(x, w, b, w_hat=None, pad=1):
    r"""3x3 convolution, stride 1, zero padding ``pad``, by (W1)-(W5).

    ``pad``: 1 for VGG's convolutions; 0 for the transformer's, after reflection padding.

    On NumPy in bands of tile rows, each band's buffers in cache (``BAND_BYTES``); on a GPU
    F(2x2, 3x3) is three launches (:mod:`numstyle.fast.gpu_winograd`).

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    w : ndarray, shape (F, C, 3, 3)
    b : ndarray, shape (F,) or None
    w_hat : ndarray, shape (alpha^2, F, C), optional
        ``transform_kernel(w, m)``, precomputed when the weights are constant;
        its first axis picks m (16: F(2x2, 3x3), 36: F(4x4, 3x3)). Without it,
        ``DEFAULT_M``.

    Returns
    -------
    out : ndarray, shape (N, F, H + 2 pad - 2, W + 2 pad - 2)
    cache : tuple ``(x, w, w_hat, pad)``
    """
    if w_hat is None:
        w_hat = transform_kernel(w)  # (a^2, F, C)         (W2)
    y = convolve(x, w_hat, pad, b)                                          # (W3)-(W5)
    cache = (x, w, w_hat, pad)
    return y, cache


def convolve(x, w_hat, pad=1, b=None, perm=None):
    r"""The array code of (W3)-(W5) band by band, plus bias ``b``.

    ``x`` (N, C, H, W) against ``w_hat`` (alpha^2, F, C) -> (N, F, Ho, Wo), with
    ``Ho, Wo = H + 2 pad - 2, W + 2 pad - 2``: ``pad=1`` zero-pads ("same"), ``pad=0`` reads an
    already padded ``x``. ``perm`` reorders the rows of B^T and the columns of A^T (W8).
    """
    xp = get_xp(x)
    m = tile_size(w_hat)
    if xp is not np and m == 2 and gpu_kernels.enabled(xp):  # the GPU: three launches
        return gpu_winograd.convolve(x, w_hat, pad, b, flip=perm is not None)
    N, C, H, W = x.shape
    F = w_hat.shape[1]
    bt, _, at = TRANSFORMS[m]
    if perm is not None:
        bt, at = bt[perm], at[:, perm]
    a = m + 2
    H, W = H + 2 * pad - 2, W + 2 * pad - 2                                  # output size
    th, tw = -(-H // m), -(-W // m)                                          # tiles down and across
    phases = _split_columns(x, m, th, tw, pad)
    Y = xp.empty((N, F, th, m, tw, m), dtype=x.dtype)  # output pixel (m i + p, m j + q)

    def band(rows):  # tile rows i0..i1 -> Y's rows
        i0, i1 = rows
        V = _input_transform(bt, phases, m, i0, i1, tw)  # (a^2, N, C, t)      (W3)
        M = xp.matmul(w_hat[:, None], V)  # (a^2,1,F,C) @ (a^2,N,C,t) -> (a^2,N,F,t)  (W4)
        M6 = M.reshape(a, a, N, F, i1 - i0, tw)  # (a, b, N, F, rows, tw)
        Q = _apply(at, [M6[r] for r in range(a)])  # A^T along a: m x (b, N, F, rows, tw)  (W5)
        for p in range(m):
            for q, Ypq in enumerate(_apply(at,
                                           [Q[p][s]
                                            for s in range(a)])):  # ... A along b            (W5)
                Y[:, :, i0:i1, p, :, q] = Ypq  # interleave the m x m blocks

    for_each_band(band, winograd_bands(th, tw, a, max(C, F), N, x.dtype, xp),
                  xp)  # bands are independent
    y = Y.reshape(N, F, m * th, m * tw)                                      # (N, F, m th, m tw)
    if m * th != H or m * tw != W:
        y = xp.ascontiguousarray(y[:, :, :H, :W])
    if b is not None:
        y += b.reshape(1, F, 1, 1)
    return y


FLIP = {2: [3, 1, 2, 0]}   # F(2x2, 3x3): flipping a kernel swaps rows 0 and 3 of its transform (W8)


def winograd_conv3x3_input_grad(dout, w_hat, pad=1):
    r"""(W8): the input gradient as a forward Winograd convolution -- the flipped kernel's, (CV5).

    The adjoint of a 3x3, stride-1, pad-1 convolution is the convolution with
    the flipped, channel-swapped kernel (CV5), and flipping permutes the
    F(2x2, 3x3) transform: :math:`GJ = PG` (:math:`J` reverses the taps,
    :math:`P` swaps rows 0 and 3). The permutation moves onto the data:

    .. math::  dx = (A^\top P)\Big[\sum_f U_{fc} \odot
               \big((P B^\top)\, dy_f\, (P B^\top)^\top\big)\Big](P^\top A)

    -- the forward (W3)-(W5) with swapped rows of :math:`B^\top` and columns
    of :math:`A^\top`, ``w_hat`` read transposed: no new kernel, no overlap-add
    (derivation: docs/math.md, section 9).

    Parameters
    ----------
    dout : ndarray, shape (N, F, Ho, Wo)
    w_hat : ndarray, shape (16, F, C), the forward kernel's transform (F(2x2, 3x3) only)
    pad : int, the forward's padding; the adjoint pads ``dout`` by ``2 - pad`` (CV5)

    Returns
    -------
    dx : ndarray, shape (N, C, Ho + 2 - 2 pad, Wo + 2 - 2 pad)
    """
    return convolve(dout, w_hat.transpose(0, 2, 1), 2 - pad,
                    perm=FLIP[tile_size(w_hat)])  # (W8): (a^2, C, F)


def winograd_conv3x3_backward(dout, cache, weight_grad=True):
    r"""Backward of :func:`winograd_conv3x3_forward`.

    (W8) (F(2x2)) or (W6) (F(4x4)) for dx, (W7) for dw.

    Returns
    -------
    dx : ndarray, shape (N, C, H, W)
    dw : ndarray, shape (F, C, 3, 3) or None
    db : ndarray, shape (F,) or None
    """
    x, w, w_hat, pad = cache
    m = tile_size(w_hat)
    input_grad_by_w8 = m in FLIP
    assert input_grad_by_w8 or pad == 1, "F(4x4, 3x3)'s backward (W6) is for pad 1 only"
    dx = winograd_conv3x3_input_grad(dout, w_hat, pad) if input_grad_by_w8 else None   # (W8)
    if input_grad_by_w8 and not weight_grad:
        return dx, None, None
    xp = get_xp(dout)
    (N, C), (F, H, W) = x.shape[:2], dout.shape[1:]  # H, W: the output's, which tiles cover
    BT_, G_, AT_ = TRANSFORMS[m]
    a = m + 2
    th, tw = -(-H // m), -(-W // m)
    if (m * th, m * tw) != (H, W):  # ragged: the last blocks were cut
        padded = xp.zeros((N, F, m * th, m * tw), dtype=dout.dtype)
        padded[:, :, :H, :W] = dout
        dout = padded
    dY = dout.reshape(N, F, th, m, tw, m)  # (N, F, i, p, j, q): a view, pixel (m i + p, m j + q)
    if not input_grad_by_w8:
        d_phases = [xp.zeros((N, C, m * th + 2, tw + 1), dtype=dout.dtype)
                    for _ in range(m)]  # padded columns' gradients
    bands = winograd_bands(th, tw, a, max(C, F), N, dout.dtype, xp)
    dU_parts = {}  # band -> its share of dU (W7)
    if weight_grad:
        phases = _split_columns(x, m, th, tw, pad)

    def band(rows):  # tile rows i0..i1 -> d_phases' rows, dU
        i0, i1 = rows
        dM = xp.empty((a, a, N, F, i1 - i0, tw), dtype=dout.dtype)  # (a, b, N, F, rows, tw)
        dQ = [_apply(AT_.T, [dY[:, :, i0:i1, p, :, q] for q in range(m)])
              for p in range(m)]  # (W5^T) along b
        for s in range(a):
            _apply(AT_.T, [dQ[p][s] for p in range(m)],
                   out=[dM[r, s] for r in range(a)])  # (W5^T) along a
        dM = dM.reshape(a * a, N, F, (i1 - i0) * tw)                         # (a^2, N, F, t)
        if not input_grad_by_w8:
            dV = xp.matmul(w_hat.transpose(0, 2, 1)[:, None],
                           dM)  # (a^2,1,C,F) @ (a^2,N,F,t) -> (a^2,N,C,t)  (W4^T)
            _input_transform_adjoint(BT_, dV, d_phases, m, i0, i1, tw)       # (W3^T), accumulated
        if weight_grad:
            V = _input_transform(BT_, phases, m, i0, i1, tw)  # (a^2, N, C, t), rebuilt
            dU_parts[rows] = xp.matmul(dM, V.transpose(0, 1, 3, 2)).sum(
                axis=1)  # (a^2,N,F,t) @ (a^2,N,t,C) -> (a^2,F,C)  (W7)

    if input_grad_by_w8:
        for_each_band(band, bands, xp)  # only dU: bands are independent
    else:
        for_each_band_no_overlap(band, bands, xp)  # neighbours overlap-add 2 shared rows
        dx = _merge_columns(d_phases, m, x.shape)
    if not weight_grad:
        return dx, None, None
    dU = sum(dU_parts[rows] for rows in bands)  # (a^2, F, C), in band order
    g = xp.asarray(G_, dtype=dout.dtype)                                     # (a, 3)
    dU4 = dU.reshape(a, a, F * C).transpose(2, 0, 1)                         # (FC, a, b)
    dw = (g.T @ dU4 @ g).reshape(F, C, 3, 3)  # G^T dU G            (W2^T)
    db = dout.sum(axis=(0, 2, 3))
    return dx, dw, db


def _phase_columns(m, p, W, pad=1):
    """Which x columns padded column phase p holds: ``x[..., first::m]`` goes to phase indices j0,
    j0+1, ..."""
    first = p - pad if p >= pad else p - pad + m  # padded column c holds x's column c - pad
    j0 = 0 if p >= pad else 1
    count = len(range(first, W, m))
    return slice(first, None, m), slice(j0, j0 + count)


def _split_columns(x, m, th, tw, pad=1):
    """The zero-padded input split by column phase: m arrays (N, C, m th + 2, tw + 1).

    ``pad=0`` when ``x`` is already padded (the transformer's reflection-padded input).

    Phase p index j holds padded column m j + p, so tile column k of tile j is
    ``phases[k % m][..., j + k // m]`` -- contiguous slices, no stride-m reads
    in the inner loop.
    """
    xp = get_xp(x)
    N, C, H, W = x.shape
    phases = []
    for p in range(m):
        phase = xp.zeros((N, C, m * th + 2, tw + 1), dtype=x.dtype)
        src, dst = _phase_columns(m, p, W, pad)
        phase[:, :, pad:H + pad, dst] = x[:, :, :, src]
        phases.append(phase)
    return phases


def _merge_columns(d_phases, m, x_shape):
    """Adjoint of :func:`_split_columns`: gather the padded columns' gradients back into x."""
    xp = get_xp(d_phases[0])
    N, C, H, W = x_shape
    dx = xp.empty(x_shape, dtype=d_phases[0].dtype)
    for p, d_phase in enumerate(d_phases):
        src, dst = _phase_columns(m, p, W)
        dx[:, :, :, src] = d_phase[:, :, 1:H + 1, dst]
    return dx


def _tile_columns(per_phase, m, tw):
    """The alpha = m + 2 tile columns k of every tile: contiguous-row slices of the phase arrays."""
    return [per_phase[k % m][..., k // m:k // m + tw] for k in range(m + 2)]


def _input_transform(bt, phases, m, i0, i1, tw):
    r"""(W3) for tile rows i0..i1: every tile d -> B^T d B, as (alpha^2, N, C, (i1-i0) tw)."""
    xp = get_xp(phases[0])
    N, C = phases[0].shape[:2]
    a, rows = m + 2, i1 - i0
    V = xp.empty((a, a, N, C, rows, tw), dtype=phases[0].dtype)  # (a, b, N, C, rows, tw)
    U = [
        _apply(bt, [ph[:, :, m * i0 + k:m * i1 + k:m]
                    for k in range(a)])  # B^T along tile rows, per phase:
        for ph in phases
    ]  #   m x a x (N, C, rows, tw+1)
    for r in range(a):
        _apply(bt, _tile_columns([U[p][r] for p in range(m)], m, tw),
               out=[V[r, s] for s in range(a)])  # ... B along tile columns
    return V.reshape(a * a, N, C, rows * tw)


def _input_transform_adjoint(bt, dV, d_phases, m, i0, i1, tw):
    r"""(W3^T) for tile rows i0..i1: dd = B dV B^T per tile, overlap-added into the phase arrays."""
    xp = get_xp(dV)
    N, C = d_phases[0].shape[:2]
    a, rows = m + 2, i1 - i0
    dV6 = dV.reshape(a, a, N, C, rows, tw)  # (a, b, N, C, rows, tw)
    dU = [[] for _ in range(m)]  # [phase][a]: (N, C, rows, tw+1)
    for r in range(a):
        dcols = _apply(bt.T, [dV6[r, s] for s in range(a)])  # adjoint of B along tile columns
        per_phase = [xp.zeros((N, C, rows, tw + 1), dtype=dV.dtype) for _ in range(m)]
        for dst, dcol in zip(_tile_columns(per_phase, m, tw), dcols):
            dst += dcol  # overlap-add: tiles share columns
        for p in range(m):
            dU[p].append(per_phase[p])
    for d_phase, dU_p in zip(d_phases, dU):
        for k, drow in enumerate(_apply(bt.T, dU_p)):  # adjoint of B^T along tile rows
            d_phase[:, :, m * i0 + k:m * i1 + k:m] += drow  # overlap-add: tiles share rows


def _apply(mat, parts, out=None):
    """``result[r] = sum_j mat[r, j] * parts[j]`` for a small constant matrix, skipping zeros.

    The transforms are this along one tile axis at a time; ``out``: the rows' destinations.
    """
    xp = get_xp(parts[0])
    results = []
    for r, row in enumerate(mat):
        terms = [(c, p) for c, p in zip(row, parts) if c != 0]
        dest = None if out is None else out[r]
        (c0, p0), rest = terms[0], terms[1:]
        if rest and c0 == 1 and rest[0][0] in (1, -1):  # start with one fused add/subtract
            (c1, p1), rest = rest[0], rest[1:]
            acc = (xp.add if c1 == 1 else xp.subtract)(p0, p1, out=dest)
        else:
            acc = xp.multiply(p0, p0.dtype.type(c0), out=dest)
        for c, p in rest:
            if c == 1:
                xp.add(acc, p, out=acc)
            elif c == -1:
                xp.subtract(acc, p, out=acc)
            else:
                acc += p.dtype.type(c) * p
        results.append(acc)
    return results


# Winograd pays where the GEMMs dominate its transforms: layers with at least this many input
# channels (measured: docs/benchmarks.md).
WINOGRAD_MIN_CHANNELS = 64


_transformed = {}   # (id(w), m, flip) -> (a weak reference to w, its transform), while w lives


def transformed(w, m=DEFAULT_M, flip=False):
    """``transform_kernel(w, m)`` (W2) -- of the flipped, channel-swapped kernel (CV5) with
    ``flip`` -- made once per weight array while it lives: a network built again for every image
    (stylising, tiles) finds its kernels' transforms here.

    Only for arrays that are never changed in place (constant weights: the engine offers Winograd
    only to layers that are not ``trainable``). The entry goes when the array does.
    """
    key = (id(w), m, flip)
    entry = _transformed.get(key)
    if entry is not None and entry[0]() is w:
        return entry[1]
    w_hat = transform_kernel(flipped(w) if flip else w, m)
    try:
        _transformed[key] = (weakref.ref(w), w_hat)
        weakref.finalize(w, _transformed.pop, key, None)
    except TypeError:  # no weak references: no cache
        pass
    return w_hat


class WinogradConv2d(StandIn, Conv2d):
    """:class:`numstyle.layers.Conv2d` by Winograd F(2x2, 3x3): (W2)-(W5) forward, (W8), (W7) back.

    Stands in for 3x3, stride-1 convolutions (padding 1: VGG's; 0: the
    transformer's, after reflection padding) with at least
    ``WINOGRAD_MIN_CHANNELS`` inputs whose weights are constants (not
    ``trainable``): the kernel's transform (W2) is made once, here. Training
    keeps im2col: per call Winograd won, per training iteration it did not
    (docs/benchmarks.md). On a GPU only with the fused kernels (each array
    transform would be dozens of launches).
    """

    def __init__(self, w, b=None, stride=1, pad=1):
        super().__init__(w, b, stride, pad)
        self.prepare()

    @classmethod
    def computes(cls, layer):
        return layer.w.shape[2:] == (3, 3) and layer.stride == 1 and layer.pad in (0, 1)

    @classmethod
    def applies(cls, layer, xp):
        return (cls.computes(layer) and not layer.trainable
                and layer.w.shape[1] >= WINOGRAD_MIN_CHANNELS and gpu_winograd.available(xp))

    def prepare(self):
        # (16, F, C) (W2); constant weights' transforms are kept while the weights live
        self.w_hat = transform_kernel(self.w) if self.trainable else transformed(self.w)

    def forward(self, x):
        return winograd_conv3x3_forward(x, self.w, self.b, self.w_hat, self.pad)   # (W3)-(W5)

    def backward(self, dy, cache):
        if not self.input_grad and not self.trainable:
            return None, {}
        dx, dw, db = winograd_conv3x3_backward(dy, cache, weight_grad=self.trainable)   # (W8), (W7)
        return dx, ({} if dw is None else {"w": dw} if self.b is None else {"w": dw, "b": db})
