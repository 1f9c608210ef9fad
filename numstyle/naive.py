r"""Every op as loops: the twins the tests hold the vectorised code to.

Each layer here is a subclass of its reference layer with the same
constructor and the same ``forward(x) -> (y, cache)`` / ``backward(dy, cache)
-> (dx, grads)`` contract, written one output value (or one window) at a
time, straight from its equation. The loss functions have the signatures of
:mod:`numstyle.losses`. Slow by design: for small float64 cases only
(``tests/test_naive.py`` holds each twin to the vectorised code;
``tests/test_gradcheck.py`` also checks the loss twins by finite differences).
"""
import numpy as np

from .backend import get_xp
from .fast.winograd import TRANSFORMS
from .layers import AvgPool2d, Conv2d, MaxPool2d, ReLU, output_size
from .transformer_layers import ConvTranspose2d, Norm, ReflectionPad2d, Upsample


def im2col_loops(x, kh, kw, stride=1, pad=0):
    """(K1) entry by entry: (N, C kh kw, Ho Wo)."""
    xp = get_xp(x)
    N, C, H, W = x.shape
    Ho, Wo = output_size(H, kh, stride, pad), output_size(W, kw, stride, pad)
    xpad = xp.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    cols = xp.zeros((N, C * kh * kw, Ho * Wo), dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(kh):
                for j in range(kw):
                    for h in range(Ho):
                        for w in range(Wo):
                            cols[n, (c * kh + i) * kw + j, h * Wo + w] = xpad[n, c, stride * h + i,
                                                                              stride * w + j]
    return cols


def col2im_loops(cols, x_shape, kh, kw, stride=1, pad=0):
    """(K2) entry by entry: each column entry added back to the pixel it came from."""
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
                            xpad[n, c, stride * h + i,
                                 stride * w + j] += cols[n, (c * kh + i) * kw + j, h * Wo + w]
    return xpad[:, :, pad:pad + H, pad:pad + W]


def stamp(x, w, out_shape, stride, pad):
    """Each input value stamps its weighted kernel.

    ``x`` (N, F, H, W), ``w`` (F, C, k, k) -> (N, C, H', W'). The adjoint of the convolution,
    written directly: (CV2) and the transposed convolution (T1).
    """
    xp = get_xp(x)
    N, F, H, W = x.shape
    _, C, kh, kw = w.shape
    full = xp.zeros((N, C, out_shape[2] + 2 * pad + kh, out_shape[3] + 2 * pad + kw), dtype=x.dtype)
    for n in range(N):
        for f in range(F):
            for h in range(H):
                for v in range(W):
                    full[n, :, stride * h:stride * h + kh,
                         stride * v:stride * v + kw] += x[n, f, h, v] * w[f]
    return full[:, :, pad:pad + out_shape[2], pad:pad + out_shape[3]]


def correlate(x, w, stride, pad):
    """(CV1) one dot product per output value: ``x`` (N, C, H, W), ``w`` (F, C, k, k) -> (N, F, Ho,
    Wo)."""
    xp = get_xp(x)
    N, C, H, W = x.shape
    F, _, kh, kw = w.shape
    Ho, Wo = output_size(H, kh, stride, pad), output_size(W, kw, stride, pad)
    xpad = xp.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out = xp.zeros((N, F, Ho, Wo), dtype=x.dtype)
    for n in range(N):
        for f in range(F):
            for h in range(Ho):
                for v in range(Wo):
                    out[n, f, h, v] = xp.sum(
                        xpad[n, :, stride * h:stride * h + kh, stride * v:stride * v + kw] * w[f])
    return out


def window_products(x, dy, w_shape, stride, pad):
    """(CV3) window by window: ``dW[f] = sum_{n,h,v} dy[n, f, h, v] * window(n, h, v)``."""
    xp = get_xp(dy)
    N, F, Ho, Wo = dy.shape
    kh, kw = w_shape[2:]
    xpad = xp.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dw = xp.zeros(w_shape, dtype=dy.dtype)
    for n in range(N):
        for f in range(F):
            for h in range(Ho):
                for v in range(Wo):
                    dw[f] += dy[n, f, h, v] * xpad[n, :, stride * h:stride * h + kh,
                                                   stride * v:stride * v + kw]
    return dw


class Conv2dLoops(Conv2d):
    """:class:`numstyle.layers.Conv2d`: (CV1) a dot product per output; (CV2) and (CV3) window by
    window."""

    def forward(self, x):
        y = correlate(x, self.w, self.stride, self.pad)                     # (CV1)
        if self.b is not None:
            y += self.b.reshape(1, -1, 1, 1)
        return y, x

    def backward(self, dy, cache):
        x = cache
        dx = stamp(dy, self.w, x.shape, self.stride, self.pad) if self.input_grad else None  # (CV2)
        if not self.trainable:
            return dx, {}
        grads = {"w": window_products(x, dy, self.w.shape, self.stride, self.pad)}          # (CV3)
        if self.b is not None:
            grads["b"] = dy.sum(axis=(0, 2, 3))                             # (CV4)
        return dx, grads


class ConvTranspose2dLoops(ConvTranspose2d):
    """:class:`numstyle.transformer_layers.ConvTranspose2d`: (T1) by stamps,
    (T2) by dot products."""

    def forward(self, x):
        return stamp(x, self.w, self.output_shape(x.shape), self.stride, self.pad), x       # (T1)

    def backward(self, dy, cache):
        x = cache
        dx = correlate(dy, self.w, self.stride, self.pad) if self.input_grad else None  # (T2)
        if not self.trainable:
            return dx, {}
        return dx, {"w": window_products(dy, x, self.w.shape, self.stride, self.pad)}  # (T2)


class ReLULoops(ReLU):
    """(R1) value by value."""

    def forward(self, x):
        y = x.copy()
        flat = y.reshape(-1)
        for i in range(flat.size):
            if flat[i] < 0:
                flat[i] = 0
        return y, y

    def backward(self, dy, cache):
        dx = dy.copy()
        flat, y = dx.reshape(-1), cache.reshape(-1)
        for i in range(flat.size):
            if not y[i] > 0:
                flat[i] = 0
        return dx, {}


def _windows(shape, k):
    """Every pooling window: ``(n, c, h, w, rows, cols)`` with the slices it covers."""
    N, C, H, W = shape
    for n in range(N):
        for c in range(C):
            for h in range(H // k):
                for w in range(W // k):
                    yield n, c, h, w, slice(h * k, (h + 1) * k), slice(w * k, (w + 1) * k)


class AvgPool2dLoops(AvgPool2d):
    """(P1) window by window."""

    def forward(self, x):
        N, C, H, W = x.shape
        y = get_xp(x).zeros((N, C, H // self.k, W // self.k), dtype=x.dtype)
        for n, c, h, w, rows, cols in _windows(x.shape, self.k):
            y[n, c, h, w] = x[n, c, rows, cols].mean()                      # (P1)
        return y, x.shape

    def backward(self, dy, cache):
        dx = get_xp(dy).zeros(cache, dtype=dy.dtype)
        for n, c, h, w, rows, cols in _windows(cache, self.k):
            dx[n, c, rows, cols] = dy[n, c, h, w] / (self.k * self.k)       # (P1)
        return dx, {}


class MaxPool2dLoops(MaxPool2d):
    """(P2) per window; each window's first maximum (``argmax``, row-major) gets the gradient."""

    def forward(self, x):
        N, C, H, W = x.shape
        y = get_xp(x).zeros((N, C, H // self.k, W // self.k), dtype=x.dtype)
        for n, c, h, w, rows, cols in _windows(x.shape, self.k):
            y[n, c, h, w] = x[n, c, rows, cols].max()                       # (P2)
        return y, x

    def backward(self, dy, cache):
        x = cache
        dx = get_xp(dy).zeros(x.shape, dtype=dy.dtype)
        for n, c, h, w, rows, cols in _windows(x.shape, self.k):
            i, j = divmod(int(x[n, c, rows, cols].argmax()), self.k)        # the first maximum
            dx[n, c, h * self.k + i, w * self.k + j] = dy[n, c, h, w]       # (P2)
        return dx, {}


def _reflect(i, n):
    """(RP1): the source index of padded index ``i`` along an axis of length ``n``."""
    return -i if i < 0 else (2 * (n - 1) - i if i >= n else i)


class ReflectionPad2dLoops(ReflectionPad2d):
    """(RP1) pixel by pixel; (RP2) each padded pixel's gradient added to its source."""

    def forward(self, x):
        N, C, H, W = x.shape
        p = self.p
        y = get_xp(x).zeros((N, C, H + 2 * p, W + 2 * p), dtype=x.dtype)
        for i in range(-p, H + p):
            for j in range(-p, W + p):
                y[:, :, i + p, j + p] = x[:, :, _reflect(i, H), _reflect(j, W)]     # (RP1)
        return y, x.shape

    def backward(self, dy, cache):
        N, C, H, W = cache
        p = self.p
        dx = get_xp(dy).zeros(cache, dtype=dy.dtype)
        for i in range(-p, H + p):
            for j in range(-p, W + p):
                dx[:, :, _reflect(i, H), _reflect(j, W)] += dy[:, :, i + p, j + p]  # (RP2)
        return dx, {}


class NormLoops(Norm):
    """(N1)-(N3) group by group, with the means written as sums."""

    def groups(self, shape):
        N, C = shape[:2]
        if self.kind == "batch":
            return [(slice(None), c) for c in range(C)]
        return [(n, c) for n in range(N) for c in range(C)]

    def forward(self, x):
        xp = get_xp(x)
        y, xhat, inv_std = xp.zeros_like(x), xp.zeros_like(x), xp.zeros_like(x)
        for n, c in self.groups(x.shape):
            vals = x[n, c]
            if self.frozen():
                mu, var = self.running["mean"][c], self.running["var"][c]
            else:
                mu = vals.sum() / vals.size                                 # (N1)
                var = ((vals - mu) ** 2).sum() / vals.size
            inv_std[n, c] = 1 / (var + self.eps) ** 0.5
            xhat[n, c] = (vals - mu) * inv_std[n, c]
            y[n, c] = self.gamma[c] * xhat[n, c] + self.beta[c]             # (N1)
        return y, (xhat, inv_std)

    def backward(self, dy, cache):
        xhat, inv_std = cache
        xp = get_xp(dy)
        dx = xp.zeros_like(dy)
        dgamma, dbeta = xp.zeros_like(self.gamma), xp.zeros_like(self.beta)
        for n, c in self.groups(dy.shape):
            d, xh, m = dy[n, c], xhat[n, c], dy[n, c].size
            dgamma[c] += (d * xh).sum()                                     # (N3)
            dbeta[c] += d.sum()
            dxhat = self.gamma[c] * d                                       # (N2)
            if self.frozen():
                dx[n, c] = dxhat * inv_std[n, c]
            else:
                dx[n, c] = inv_std[n, c] * (dxhat - dxhat.sum() / m - xh * (dxhat * xh).sum() / m)
        return dx, {"gamma": dgamma, "beta": dbeta}


class UpsampleLoops(Upsample):
    """(U1) pixel by pixel; (U2) each pixel's gradient added to its source."""

    def forward(self, x):
        N, C, H, W = x.shape
        s = self.s
        y = get_xp(x).zeros((N, C, H * s, W * s), dtype=x.dtype)
        for i in range(H * s):
            for j in range(W * s):
                y[:, :, i, j] = x[:, :, i // s, j // s]                     # (U1)
        return y, x.shape

    def backward(self, dy, cache):
        dx = get_xp(dy).zeros(cache, dtype=dy.dtype)
        for i in range(dy.shape[2]):
            for j in range(dy.shape[3]):
                dx[:, :, i // self.s, j // self.s] += dy[:, :, i, j]        # (U2)
        return dx, {}


LAYERS = {
    Conv2d: Conv2dLoops,
    ConvTranspose2d: ConvTranspose2dLoops,
    ReLU: ReLULoops,
    AvgPool2d: AvgPool2dLoops,
    MaxPool2d: MaxPool2dLoops,
    ReflectionPad2d: ReflectionPad2dLoops,
    Norm: NormLoops,
    Upsample: UpsampleLoops
}  # reference layer -> its twin

# --- the losses, with the signatures of numstyle.losses -------------------------------------------

def content_loss(F, P, weight=1.0):
    """(C1) as a sum of squares and (C2) entry by entry, both times ``weight``."""
    loss, dF = 0.0, get_xp(F).zeros_like(F)
    for index in np.ndindex(*F.shape):
        d = F[index] - P[index]
        loss += float(0.5 * weight * d * d)                                 # (C1)
        dF[index] = weight * d                                              # (C2)
    return loss, dF


def style_target(G_style, M_style, M_target):
    """(S7) entry by entry: each Gram entry per style pixel, times the generated image's pixels."""
    A = get_xp(G_style).zeros_like(G_style)
    for index in np.ndindex(*G_style.shape):
        A[index] = G_style[index] / M_style * M_target                      # (S7)
    return A


def feature_loss(F, P, weight=1.0):
    """(J3) entry by entry: the mean squared difference over the batch's ``N C H W`` values."""
    size = F.size
    loss, dF = 0.0, get_xp(F).zeros_like(F)
    for index in np.ndindex(*F.shape):
        d = F[index] - P[index]
        loss += float(weight * d * d / size)                                # (J3)
        dF[index] = 2.0 * weight * d / size
    return loss, dF


def gram_forward(F):
    """(S1) entry by entry, ``G_ij = sum_k F_ik F_jk``: (N, C, H, W) -> (N, C, C), and F as
    (N, C, M)."""
    xp = get_xp(F)
    N, C = F.shape[:2]
    Fm = F.reshape(N, C, -1)
    G = xp.zeros((N, C, C), dtype=F.dtype)
    for n in range(N):
        for i in range(C):
            for j in range(C):
                for k in range(Fm.shape[2]):
                    G[n, i, j] += Fm[n, i, k] * Fm[n, j, k]                 # (S1)
    return G, Fm


def gram_backward(dG, cache):
    """(S2) entry by entry: ``dF_ik = sum_j (dG_ij + dG_ji) F_jk``."""
    Fm = cache
    dF = get_xp(Fm).zeros_like(Fm)
    N, C, M = Fm.shape
    for n in range(N):
        for i in range(C):
            for k in range(M):
                for j in range(C):
                    dF[n, i, k] += (dG[n, i, j] + dG[n, j, i]) * Fm[n, j, k]   # (S2)
    return dF


def style_loss_from_gram(G, A, M_l, weight=1.0):
    """(S3) as a sum of squares and (S4) entry by entry."""
    N_l = G.shape[1]
    scale = 1.0 / (4.0 * N_l ** 2 * M_l ** 2)
    loss, dG = 0.0, get_xp(G).zeros_like(G)
    for index in np.ndindex(*G.shape):
        d = G[index] - A[index]
        loss += float(weight * scale * d * d)                               # (S3)
        dG[index] = 2.0 * scale * weight * d                                # (S4)
    return loss, dG


def style_layer_loss(F, A, weight=1.0):
    """(S3)-(S5) from the loops above: (S5) is (S2) applied to (S4)."""
    _, N_l, H, W = F.shape
    G, Fm = gram_forward(F)                                                 # (S1)
    loss, dG = style_loss_from_gram(G, A, H * W, weight)                    # (S3), (S4)
    return loss, gram_backward(dG, Fm).reshape(F.shape)                     # (S2) -> (S5)


def tv_loss(x):
    """(TV1) difference by difference, and (TV2): each difference sends +2d below, -2d above."""
    dx = get_xp(x).zeros_like(x)
    N, C, H, W = x.shape
    total = 0.0
    for n in range(N):
        for c in range(C):
            for i in range(H):
                for j in range(W):
                    for di, dj in ((1, 0), (0, 1)):
                        if i + di < H and j + dj < W:
                            d = x[n, c, i + di, j + dj] - x[n, c, i, j]
                            total += float(d * d)                           # (TV1)
                            dx[n, c, i + di, j + dj] += 2 * d               # (TV2)
                            dx[n, c, i, j] -= 2 * d
    return total, dx


def phase_loss(x, period=4):
    """(PH1) and (PH2) pixel by pixel: each phase's sum, then each pixel's share of its phase;
    the top-left whole periods only."""
    N, C, H, W = x.shape
    p = period
    H, W = H // p * p, W // p * p
    dx = get_xp(x).zeros_like(x)
    total = 0.0
    for n in range(N):
        for c in range(C):
            m = [[0.0] * p for _ in range(p)]
            for i in range(H):
                for j in range(W):
                    m[i % p][j % p] += float(x[n, c, i, j]) / (H * W / (p * p))  # m_{nc,ab}
            mean = sum(sum(row) for row in m) / (p * p)                         # m̄_{nc}
            for a in range(p):
                for b in range(p):
                    total += (m[a][b] - mean) ** 2 / (N * C * p * p)              # (PH1)
            for i in range(H):
                for j in range(W):
                    dx[n, c, i, j] = 2 * (m[i % p][j % p] - mean) / (N * C * H * W)  # (PH2)
    return total, dx


def block_mean_loss(x, y, size=4):
    """(LR1) and (LR2) pixel by pixel: each block's sums, then each pixel's share of its block's
    difference; the top-left whole blocks only."""
    N, C, H, W = x.shape
    s = size
    h, w = H // s, W // s
    dx = get_xp(x).zeros_like(x)
    total = 0.0
    for n in range(N):
        for c in range(C):
            for u in range(h):
                for v in range(w):
                    d = 0.0
                    for i in range(u * s, u * s + s):
                        for j in range(v * s, v * s + s):
                            d += float(x[n, c, i, j] - y[n, c, i, j]) / (s * s)  # mu(x) - mu(y)
                    total += d * d / (N * C * h * w)                            # (LR1)
                    for i in range(u * s, u * s + s):
                        for j in range(v * s, v * s + s):
                            dx[n, c, i, j] = 2 * d / (N * C * h * w * s * s)     # (LR2)
    return total, dx


def gram_normalized(F):
    """(J4) from the loops: Gatys' Gram (S1) over ``C H W``."""
    N, C, H, W = F.shape
    G, Fm = gram_forward(F)
    return G * (1.0 / (C * H * W)), Fm


def style_loss_johnson(F, Gs, weight=1.0):
    """(J5) entry by entry, its gradient through (J4) and (S2)."""
    N, C, H, W = F.shape
    G, Fm = gram_normalized(F)
    Gs = get_xp(G).broadcast_to(Gs, G.shape)
    loss, dG = 0.0, get_xp(G).zeros_like(G)
    for index in np.ndindex(*G.shape):
        d = G[index] - Gs[index]
        loss += float(weight * d * d / N)                                   # (J5)
        dG[index] = 2.0 * weight * d / (N * C * H * W)
    return loss, gram_backward(dG, Fm).reshape(F.shape)                     # (S2)


def winograd_conv3x3_loops(x, w, b, m=2):
    """Winograd F(m x m, 3x3) tile by tile, straight from (W1): the twin of
    :mod:`numstyle.fast.winograd`."""
    xp = get_xp(x)
    (N, C, H, W), F, a = x.shape, w.shape[0], m + 2
    th, tw = -(-H // m), -(-W // m)
    xpad = xp.zeros((N, C, m * th + 2, m * tw + 2), dtype=x.dtype)
    xpad[:, :, 1:H + 1, 1:W + 1] = x
    bt, g, at = (xp.asarray(mat, dtype=x.dtype) for mat in TRANSFORMS[m])
    y = xp.zeros((N, F, m * th, m * tw), dtype=x.dtype)
    for n in range(N):
        for f in range(F):
            for i in range(th):
                for j in range(tw):
                    acc = xp.zeros((a, a), dtype=x.dtype)
                    for c in range(C):
                        d = xpad[n, c, m * i:m * i + a, m * j:m * j + a]
                        acc += (g @ w[f, c] @ g.T) * (bt @ d @ bt.T)                  # (W1)
                    y[n, f, m * i:m * i + m,
                      m * j:m * j + m] = at @ acc @ at.T + (0 if b is None else b[f])
    return y[:, :, :H, :W]
