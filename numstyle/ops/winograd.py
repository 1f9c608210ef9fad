r"""Winograd F(2x2, 3x3): the 3x3, stride-1, pad-1 convolutions of VGG with 2.25x fewer multiplies.

Each 2x2 block of outputs is computed from a 4x4 tile of the padded input
(Lavin & Gray, 2016). With the constant matrices

.. math::  B^\top = \begin{bmatrix} 1&0&-1&0\\ 0&1&1&0\\ 0&-1&1&0\\ 0&1&0&-1 \end{bmatrix},\quad
           G = \begin{bmatrix} 1&0&0\\ \tfrac12&\tfrac12&\tfrac12\\ \tfrac12&-\tfrac12&\tfrac12\\ 0&0&1 \end{bmatrix},\quad
           A^\top = \begin{bmatrix} 1&1&1&0\\ 0&1&-1&-1 \end{bmatrix}

one tile's output is

.. math::  Y = A^\top \Big[ \sum_c (G g_{fc} G^\top) \odot (B^\top d_c B) \Big] A       \tag{W1}

Batched over all tiles, (W1) is four steps; the 16 positions of the 4x4
transform domain each become one GEMM that sums over channels:

.. math::  U = G\, g\, G^\top \quad (16, F, C)                                      \tag{W2}
.. math::  V = B^\top d\, B \quad (16, N, C, T) \qquad T = \text{tiles}              \tag{W3}
.. math::  M_k = U_k V_k \quad (F, C) \cdot (C, T), \quad k = 1 \dots 16              \tag{W4}
.. math::  Y = A^\top M A                                                            \tag{W5}

Every step is linear, so the backward is each step's adjoint, in reverse
order: the transpose of the constant matrices, the transposed GEMM, and an
overlap-add of the 4x4 tiles (neighbouring tiles share two rows/columns):

.. math::  dM = A\, dY A^\top \quad (W5^\top), \qquad dV_k = U_k^\top dM_k \quad (W4^\top),
           \qquad dd = B\, dV B^\top \quad (W3^\top)                                   \tag{W6}
.. math::  dU_k = \sum_n dM_{k,n} V_{k,n}^\top \quad (W4^\top), \qquad dg = G^\top dU\, G \quad (W2^\top)   \tag{W7}

A 3x3 convolution costs 9 multiplies per output; (W4) costs 16 per 2x2
outputs, i.e. 4: 2.25x fewer. The transforms are additions on strided views.
"""
import numpy as np

from ..backend import get_xp

BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=np.float64)
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], dtype=np.float64)
AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=np.float64)


def transform_kernel(w):
    r"""(W2): 3x3 kernels (F, C, 3, 3) -> the 4x4 transform domain, laid out (16, F, C)."""
    xp = get_xp(w)
    F, C = w.shape[:2]
    g = xp.asarray(G, dtype=w.dtype)
    P = (w.reshape(F * C * 3, 3) @ g.T).reshape(F * C, 3, 4)                 # w G^T: (FC, i, b)
    U = (P.transpose(0, 2, 1).reshape(F * C * 4, 3) @ g.T).reshape(F, C, 4, 4)  # (G w G^T)^T: (F, C, b, a)
    return xp.ascontiguousarray(U.transpose(3, 2, 0, 1)).reshape(16, F, C)  # (a, b, F, C) -> (16, F, C)


def winograd_conv3x3_forward(x, w, b, w_hat=None):
    r"""3x3 convolution, stride 1, zero padding 1, by (W1)-(W5).

    The image is processed in bands of tile rows so that each band's
    transform-domain buffers stay in cache (``BAND_BYTES``).

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    w : ndarray, shape (F, C, 3, 3)
    b : ndarray, shape (F,) or None
    w_hat : ndarray, shape (16, F, C), optional
        ``transform_kernel(w)``, precomputed when the weights are constant.

    Returns
    -------
    out : ndarray, shape (N, F, H, W)
    cache : tuple ``(x, w, w_hat)``
    """
    xp = get_xp(x)
    N, C, H, W = x.shape
    F = w.shape[0]
    th, tw = (H + 1) // 2, (W + 1) // 2                                      # tiles down and across
    if w_hat is None:
        w_hat = transform_kernel(w)                                          # (16, F, C)          (W2)
    even, odd = _split_columns(x, th, tw)
    Y = xp.empty((N, F, th, 2, tw, 2), dtype=x.dtype)                        # output pixel (2i + p, 2j + q)
    for i0, i1 in _bands(th, tw, max(C, F), N, x.dtype):
        V = _input_transform(even, odd, i0, i1, tw)                          # (16, N, C, t)       (W3)
        M = xp.matmul(w_hat[:, None], V)                                     # (16,1,F,C) @ (16,N,C,t) -> (16,N,F,t)  (W4)
        M6 = M.reshape(4, 4, N, F, i1 - i0, tw)                              # (a, b, N, F, rows, tw)
        Q = _apply(AT, [M6[a] for a in range(4)])                            # A^T along a: 2 x (b, N, F, rows, tw)  (W5)
        for p in range(2):
            for q, Ypq in enumerate(_apply(AT, [Q[p][s] for s in range(4)])):   # ... A along b             (W5)
                Y[:, :, i0:i1, p, :, q] = Ypq                                # interleave the 2x2 blocks
    y = Y.reshape(N, F, 2 * th, 2 * tw)                                      # (N, F, 2th, 2tw)
    if 2 * th != H or 2 * tw != W:
        y = xp.ascontiguousarray(y[:, :, :H, :W])
    if b is not None:
        y += b.reshape(1, F, 1, 1)
    cache = (x, w, w_hat)
    return y, cache


def winograd_conv3x3_backward(dout, cache, weight_grad=True):
    r"""Backward of :func:`winograd_conv3x3_forward`: the adjoint of each step (W6)-(W7).

    Returns
    -------
    dx : ndarray, shape (N, C, H, W)
    dw : ndarray, shape (F, C, 3, 3) or None
    db : ndarray, shape (F,) or None
    """
    x, w, w_hat = cache
    xp = get_xp(dout)
    N, C, H, W = x.shape
    F = w.shape[0]
    th, tw = (H + 1) // 2, (W + 1) // 2
    dY = xp.zeros((2, 2, N, F, th, tw), dtype=dout.dtype)                    # (p, q, N, F, th, tw): de-interleaved
    for p in range(2):
        for q in range(2):
            part = dout[:, :, p::2, q::2]                                    # odd sizes: the last block is cut
            dY[p, q, :, :, :part.shape[2], :part.shape[3]] = part
    d_even = xp.zeros((N, C, 2 * th + 2, tw + 1), dtype=dout.dtype)          # gradients of the padded columns
    d_odd = xp.zeros((N, C, 2 * th + 2, tw + 1), dtype=dout.dtype)
    dU = xp.zeros((16, F, C), dtype=dout.dtype) if weight_grad else None
    if weight_grad:
        even, odd = _split_columns(x, th, tw)
    for i0, i1 in _bands(th, tw, max(C, F), N, dout.dtype):
        rows = i1 - i0
        dM = xp.empty((4, 4, N, F, rows, tw), dtype=dout.dtype)              # (a, b, N, F, rows, tw)
        dQ = [_apply(AT.T, [dY[p, 0, :, :, i0:i1], dY[p, 1, :, :, i0:i1]]) for p in range(2)]   # (W5^T) along b
        for s in range(4):
            _apply(AT.T, [dQ[0][s], dQ[1][s]], out=[dM[a, s] for a in range(4)])   # (W5^T) along a
        dM = dM.reshape(16, N, F, rows * tw)                                 # (16, N, F, t)
        dV = xp.matmul(w_hat.transpose(0, 2, 1)[:, None], dM)                # (16,1,C,F) @ (16,N,F,t) -> (16,N,C,t)  (W4^T)
        _input_transform_adjoint(dV, d_even, d_odd, i0, i1, tw)              # (W3^T), accumulated
        if weight_grad:
            V = _input_transform(even, odd, i0, i1, tw)                      # (16, N, C, t), rebuilt
            dU += xp.matmul(dM, V.transpose(0, 1, 3, 2)).sum(axis=1)         # (16,N,F,t) @ (16,N,t,C) -> (16,F,C)  (W7)
    dx = _merge_columns(d_even, d_odd, (N, C, H, W))
    if not weight_grad:
        return dx, None, None
    g = xp.asarray(G, dtype=dout.dtype)
    dU4 = dU.reshape(4, 4, F * C).transpose(2, 0, 1)                         # (FC, a, b)
    dw = (g.T @ dU4 @ g).reshape(F, C, 3, 3)                                 # G^T dU G            (W2^T)
    db = dout.sum(axis=(0, 2, 3))
    return dx, dw, db


BAND_BYTES = 4 << 20     # transform-domain bytes per band: a few MB keeps a band in cache (measured best)


def _bands(th, tw, channels, N, dtype):
    """Split the ``th`` tile rows into bands whose (16, N, channels, rows*tw) buffer fits BAND_BYTES."""
    per_row = 16 * N * channels * tw * dtype.itemsize
    rows = max(1, min(th, BAND_BYTES // per_row))
    return [(i, min(i + rows, th)) for i in range(0, th, rows)]


def _split_columns(x, th, tw):
    """Even and odd columns of the zero-padded input, each (N, C, 2th+2, tw+1).

    Tile column k of tile j is padded column 2j + k: even[j], odd[j],
    even[j+1], odd[j+1] for k = 0..3 -- contiguous slices, no stride-2 reads
    in the inner loop. Padded column c holds x's column c - 1.
    """
    xp = get_xp(x)
    N, C, H, W = x.shape
    even = xp.zeros((N, C, 2 * th + 2, tw + 1), dtype=x.dtype)
    odd = xp.zeros((N, C, 2 * th + 2, tw + 1), dtype=x.dtype)
    odd[:, :, 1:H + 1, :(W + 1) // 2] = x[:, :, :, 0::2]                     # padded 1, 3, 5 ... = x 0, 2, 4 ...
    even[:, :, 1:H + 1, 1:W // 2 + 1] = x[:, :, :, 1::2]                     # padded 2, 4, ...   = x 1, 3, ...
    return even, odd


def _merge_columns(d_even, d_odd, x_shape):
    """Adjoint of :func:`_split_columns`: gather the padded columns' gradients back into x."""
    xp = get_xp(d_even)
    N, C, H, W = x_shape
    dx = xp.empty(x_shape, dtype=d_even.dtype)
    dx[:, :, :, 0::2] = d_odd[:, :, 1:H + 1, :(W + 1) // 2]
    dx[:, :, :, 1::2] = d_even[:, :, 1:H + 1, 1:W // 2 + 1]
    return dx


def _tile_columns(even, odd, tw):
    """The four tile columns k = 0..3 of every tile, as contiguous-row slices."""
    return [even[..., 0:tw], odd[..., 0:tw], even[..., 1:tw + 1], odd[..., 1:tw + 1]]


def _input_transform(even, odd, i0, i1, tw):
    r"""(W3) for tile rows i0..i1: every 4x4 tile d -> B^T d B, as (16, N, C, (i1-i0) tw)."""
    xp = get_xp(even)
    N, C = even.shape[:2]
    rows = i1 - i0
    V = xp.empty((4, 4, N, C, rows, tw), dtype=even.dtype)                   # (a, b, N, C, rows, tw)
    Ue = _apply(BT, [even[:, :, 2 * i0 + j:2 * i1 + j:2] for j in range(4)])  # B^T along tile rows: 4 x (N, C, rows, tw+1)
    Uo = _apply(BT, [odd[:, :, 2 * i0 + j:2 * i1 + j:2] for j in range(4)])
    for a in range(4):
        _apply(BT, _tile_columns(Ue[a], Uo[a], tw), out=[V[a, s] for s in range(4)])   # ... B along tile columns
    return V.reshape(16, N, C, rows * tw)


def _input_transform_adjoint(dV, d_even, d_odd, i0, i1, tw):
    r"""(W3^T) for tile rows i0..i1: dd = B dV B^T per tile, overlap-added into the padded columns."""
    xp = get_xp(dV)
    N, C = d_even.shape[:2]
    rows = i1 - i0
    dV6 = dV.reshape(4, 4, N, C, rows, tw)
    dUe, dUo = [], []
    for a in range(4):
        dcols = _apply(BT.T, [dV6[a, s] for s in range(4)])                  # adjoint of B along tile columns
        e = xp.zeros((N, C, rows, tw + 1), dtype=dV.dtype)
        o = xp.zeros((N, C, rows, tw + 1), dtype=dV.dtype)
        for dst, dcol in zip(_tile_columns(e, o, tw), dcols):
            dst += dcol                                                      # overlap-add: tiles share columns
        dUe.append(e)
        dUo.append(o)
    for dpad, dU in ((d_even, dUe), (d_odd, dUo)):
        for j, drow in enumerate(_apply(BT.T, dU)):                          # adjoint of B^T along tile rows
            dpad[:, :, 2 * i0 + j:2 * i1 + j:2] += drow                      # overlap-add: tiles share rows


def _apply(mat, parts, out=None):
    """``result[r] = sum_j mat[r, j] * parts[j]`` for a small constant matrix, skipping zeros.

    The transforms are this one operation along one tile axis at a time; with
    ``out`` the rows are written into the given arrays.
    """
    xp = get_xp(parts[0])
    results = []
    for r, row in enumerate(mat):
        terms = [(c, p) for c, p in zip(row, parts) if c != 0]
        dest = None if out is None else out[r]
        (c0, p0), rest = terms[0], terms[1:]
        if rest and c0 == 1 and rest[0][0] in (1, -1):                       # start with one fused add/subtract
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


def winograd_conv3x3_naive(x, w, b):
    """Loop-based twin: (W1) tile by tile, straight from the formula."""
    xp = get_xp(x)
    N, C, H, W = x.shape
    F = w.shape[0]
    th, tw = (H + 1) // 2, (W + 1) // 2
    xpad = xp.zeros((N, C, 2 * th + 2, 2 * tw + 2), dtype=x.dtype)
    xpad[:, :, 1:H + 1, 1:W + 1] = x
    bt, g, at = (xp.asarray(m, dtype=x.dtype) for m in (BT, G, AT))
    y = xp.zeros((N, F, 2 * th, 2 * tw), dtype=x.dtype)
    for n in range(N):
        for f in range(F):
            for i in range(th):
                for j in range(tw):
                    acc = xp.zeros((4, 4), dtype=x.dtype)
                    for c in range(C):
                        d = xpad[n, c, 2 * i:2 * i + 4, 2 * j:2 * j + 4]
                        acc += (g @ w[f, c] @ g.T) * (bt @ d @ bt.T)                  # (W1)
                    y[n, f, 2 * i:2 * i + 2, 2 * j:2 * j + 2] = at @ acc @ at.T + (0 if b is None else b[f])
    return y[:, :, :H, :W]
