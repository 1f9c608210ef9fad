r"""Fused GPU kernels: one launch where the plain array code takes several.

On a GPU every array operation is a kernel launch with a fixed cost (~5-10 µs
of CuPy's Python and CUDA's launch) whatever its size, and every pass over
memory costs bandwidth. Some places in numstyle issue many small operations
per layer (docs/gpu.md counts them): reflection padding (RP1)/(RP2) as a
dozen slice copies, col2im (K2) as one add per kernel tap (81 for a 9x9
kernel), normalisation (N1)-(N2) as a dozen small operations and three to
six passes over the image, the losses' tails. Here each is one
``cupy.ElementwiseKernel``: a few lines of CUDA C run once per *output*
value, so each is a gather (no atomics, the same summation order every run).

The bodies are the equations, written per output element ``i`` (``PREAMBLE``'s
``pixel`` turns a flat index into image-channel, row and column):

- ``reflect_pad`` (RP1): padded pixel (r, c) reads x at (r(r), r(c)).
- ``reflect_pad_backward`` (RP2): pixel j sums the gradient of every padded
  pixel that copied it -- itself, its mirror on the low side (1 <= j <= p)
  and on the high side (H-1-p <= j <= H-2), in rows and in columns.
- ``im2col`` (K1): column entry (c, a, b, h, w) copies x at (s h + a - pad,
  s w + b - pad), or 0 outside x: the padding is read, never built.
- ``col2im`` (K2): padded pixel (y, x) sums ``cols[c, i, j, h, w]`` over the
  taps with ``s h + i = y`` and ``s w + j = x``.
- ``avg_pool``, ``avg_pool_backward`` (P1): a window's mean; each pixel's
  share of its window's gradient (0 on the odd edge floor mode drops).
- ``max_pool``, ``max_pool_backward`` (P2): a window's first maximum and its
  place (int8); the gradient to that place only.
- ``relu_backward`` (R1): ``dy`` where the output is positive, else 0.
- ``gram_loss`` (S3)-(S4), (J5): the style loss's squared differences and its
  gradient, one pass over the (C, C) matrices.
- ``tv`` (TV1)-(TV2): each pixel's gradient from its four neighbours, and the
  squares of its own two forward differences (summed after, for the loss).
- ``normalize`` (N1): ``y = (x - mu) gamma / sqrt(var + eps) + beta``, then (R1)
  ``max(y, 0)`` if asked (inference).
- ``norm_forward``, ``norm_backward`` (N1), (N2) for training, once the group
  means (reductions, the array code's) are known. With ``d = dy`` and
  :math:`\gamma` constant over a group, (N2) is
  ``dx = inv_std * gamma * (d - mean(d) - xhat * mean(d xhat))``.

Each has a plain-array twin -- the op in ``pad.py``, ``im2col.py``,
``pool.py``, ``norm.py`` -- used on NumPy, and on CuPy when ``NUMSTYLE_FUSED=0``;
tests/test_gpu.py checks each kernel against it (the norms through the
gradient-check table and the training step). Without a GPU the tests run the
kernel bodies as C++ on the CPU (``tests/fakecupy_kernels.py`` compiles them
with g++) and compile them with nvcc where it is installed.

Status: written and checked without a GPU, so not yet timed on one
(docs/gpu.md). ``NUMSTYLE_FUSED=0`` turns them off; so does a failed
``kernel_check.self_test``, which runs each kernel once against the array code the
first time a GPU op asks (one warning, then the array code).
"""
from .. import settings
from ..backend import get_xp

# The one helper the image kernels share: where flat index q falls in an array of shape
# (N*C, rows, cols) -- the output element the thread computes, or a pixel it reads.
PREAMBLE = """
struct Pixel { ptrdiff_t nc; int r, c; };       // image * channels + channel, row, column
__device__ inline Pixel pixel(ptrdiff_t q, int rows, int cols) {
    Pixel p;
    p.c = (int)(q % cols);
    p.r = (int)((q / cols) % rows);
    p.nc = q / ((ptrdiff_t)cols * rows);
    return p;
}
"""

# name: (input params, output params, body). CuPy's ElementwiseKernel syntax: ``raw`` arrays are
# indexed freely (here: C-contiguous, flat index); the others are this element's value; T is the
# array dtype; ``i`` is the output element's flat index.
SOURCES = {
    "reflect_pad": ("raw T x, int32 H, int32 W, int32 p", "T y", """
        const Pixel o = pixel(i, H + 2 * p, W + 2 * p);
        int r = o.r - p, c = o.c - p;                  // padded row and column, -p <= r < H + p
        r = r < 0 ? -r : (r >= H ? 2 * (H - 1) - r : r);   // (RP1)
        c = c < 0 ? -c : (c >= W ? 2 * (W - 1) - c : c);
        y = x[(o.nc * H + r) * W + c];
        """),
    "reflect_pad_backward": ("raw T dy, int32 H, int32 W, int32 p", "T dx", """
        const int Hp = H + 2 * p, Wp = W + 2 * p;
        const Pixel o = pixel(i, H, W);
        const int r = o.r, c = o.c;
        int rows[3], cols[3], nr = 1, ncols = 1;       // padded pixels that copied (r, c):  (RP2)
        rows[0] = r; cols[0] = c;
        if (r >= 1 && r <= p) rows[nr++] = -r;                      // mirrored above
        if (r >= H - 1 - p && r <= H - 2) rows[nr++] = 2 * (H - 1) - r;   // mirrored below
        if (c >= 1 && c <= p) cols[ncols++] = -c;
        if (c >= W - 1 - p && c <= W - 2) cols[ncols++] = 2 * (W - 1) - c;
        T sum = 0;
        for (int a = 0; a < nr; ++a)
            for (int b = 0; b < ncols; ++b)
                sum += dy[(o.nc * Hp + rows[a] + p) * Wp + cols[b] + p];
        dx = sum;
        """),
    "im2col": (
        "raw T x, int32 kh, int32 kw, int32 s, int32 pad, int32 r0, int32 H, int32 W, int32 rows, "
        "int32 Wo",
        "T col", """
        // entry (n, c, a, b, h, w): o.nc = ((n C + c) kh + a) kw + b
        const Pixel o = pixel(i, rows, Wo);
        const int b = (int)(o.nc % kw), a = (int)((o.nc / kw) % kh);
        const ptrdiff_t nc = o.nc / ((ptrdiff_t)kw * kh);
        // the input pixel it copies  (K1)
        const int y = s * (r0 + o.r) + a - pad, xx = s * o.c + b - pad;
        col = (y >= 0 && y < H && xx >= 0 && xx < W) ? x[(nc * H + y) * W + xx]
                                                     : (T)0;    // zero padding
        """),
    "col2im": (
        "raw T cols, int32 kh, int32 kw, int32 s, int32 r0, int32 rows, int32 Wo, int32 y0, int32 "
        "Hb, int32 Wp",
        "T d", """
        const Pixel o = pixel(i, Hb, Wp);
        const int x = o.c, y = y0 + o.r;               // this padded pixel
        T sum = 0;
        for (int a = 0; a < kh; ++a) {                 // taps with s h + a = y, s w + b = x:  (K2)
            const int yy = y - a;
            if (yy < 0 || yy % s != 0) continue;
            const int h = yy / s - r0;                 // row within this band of output rows
            if (h < 0 || h >= rows) continue;
            for (int b = 0; b < kw; ++b) {
                const int xx = x - b;
                if (xx < 0 || xx % s != 0 || xx / s >= Wo) continue;
                sum += cols[(((o.nc * kh + a) * kw + b) * rows + h) * Wo + xx / s];
            }
        }
        d += sum;
        """),
    "avg_pool": ("raw T x, int32 k, int32 H, int32 W", "T y", """
        const Pixel o = pixel(i, H / k, W / k);        // output pixel: window (o.r, o.c)
        T sum = 0;
        for (int a = 0; a < k; ++a)                    // the window's k^2 pixels:  (P1)
            for (int b = 0; b < k; ++b)
                sum += x[(o.nc * H + o.r * k + a) * W + o.c * k + b];
        y = sum / (T)(k * k);
        """),
    "avg_pool_backward": ("raw T dy, int32 k, int32 H, int32 W", "T dx", """
        const int Ho = H / k, Wo = W / k;
        const Pixel o = pixel(i, H, W);                // input pixel, in window (o.r / k, o.c / k)
        // floor mode drops odd edges: gradient 0
        const bool inside = o.r < Ho * k && o.c < Wo * k;
        dx = inside ? dy[(o.nc * Ho + o.r / k) * Wo + o.c / k] / (T)(k * k) : (T)0;   // (P1)
        """),
    "max_pool": ("raw T x, int32 k, int32 H, int32 W", "T y, raw int8 winner", """
        const Pixel o = pixel(i, H / k, W / k);        // output pixel: window (o.r, o.c)
        const ptrdiff_t base = (o.nc * H + o.r * k) * W + o.c * k;
        T best = x[base];
        int win = 0;
        for (int a = 0; a < k; ++a)                    // strictly greater: the first maximum in
            for (int b = 0; b < k; ++b) {              // row-major window order wins  (P2)
                const T v = x[base + a * W + b];
                if (v > best) { best = v; win = a * k + b; }
            }
        y = best;
        winner[i] = (signed char)win;
        """),
    "max_pool_backward": ("raw T dy, raw int8 winner, int32 k, int32 H, int32 W", "T dx", """
        const int Ho = H / k, Wo = W / k;
        const Pixel o = pixel(i, H, W);                // input pixel, in window (o.r / k, o.c / k)
        const ptrdiff_t window = (o.nc * Ho + o.r / k) * Wo + o.c / k;
        // floor mode drops odd edges: gradient 0
        const bool inside = o.r < Ho * k && o.c < Wo * k;
        dx = (inside && winner[window] == (o.r % k) * k + o.c % k) ? dy[window] : (T)0;   // (P2)
        """),
    "relu_backward": ("T dy, T y", "T dx", """
        // (R1): the mask from the output, no mask array
        dx = y > (T)0 ? dy : (T)0;
        """),
    "norm_forward": ("T x, T mu, T inv_std, T gamma, T beta", "T xhat, T y", """
        xhat = (x - mu) * inv_std;                      // (N1)
        y = gamma * xhat + beta;
        """),
    "norm_backward": ("T dy, T xhat, T inv_std, T gamma, T mean_dy, T mean_dy_xhat", "T dx", """
        // (N2), gamma factored out of the means
        dx = inv_std * gamma * (dy - mean_dy - xhat * mean_dy_xhat);
        """),
    "tv": ("raw T x, int32 H, int32 W", "T dx, T sq", """
        const Pixel o = pixel(i, H, W);                // pixel i of the (contiguous) image x
        const T c = x[i];
        // each difference counted once, at its first pixel:
        T g = 0, e = 0;
        // (TV2): + the difference from the pixel above, and from the pixel to the left,
        if (o.r > 0) g += c - x[i - W];
        if (o.c > 0) g += c - x[i - 1];
        // - its own differences  (TV1)
        if (o.r < H - 1) { const T d = x[i + W] - c; g -= d; e += d * d; }
        if (o.c < W - 1) { const T d = x[i + 1] - c; g -= d; e += d * d; }
        dx = 2 * g;
        sq = e;
        """),
    "gram_loss": ("T G, T A, T s, T c", "T dG, T sq", """
        const T d = G - A;                             // the Gram matrix against its target
        dG = c * d;                                    // (S4) / d(J5)/dG: the gradient, scaled
        // (S3) / (J5): the loss's share, scaled; summed after
        sq = s * d * d;
        """),
    "normalize": ("T x, T mu, T var, T gamma, T beta, T eps, int32 relu", "T y", """
        const T v = (x - mu) * (gamma / sqrt(var + eps)) + beta;    // (N1)
        y = (relu && v < (T)0) ? (T)0 : v;                          // (R1)
        """),
}

_compiled = {}
_passed = {}                 # module name -> did the kernels pass their self-test there


def could_run(xp):
    """True when ``xp`` is a GPU module with ``ElementwiseKernel`` and the settings allow fused
    kernels."""
    return xp.__name__ != "numpy" and hasattr(xp, "ElementwiseKernel") and settings.get().fused


def enabled(xp):
    """True when the kernels :func:`could_run` on ``xp`` and passed their self-test there
    (``kernel_check.ensure``, which the engine runs before it picks fast paths for a GPU)."""
    return could_run(xp) and _passed.get(xp.__name__, False)


def self_tested(xp):
    return xp.__name__ in _passed


def record_self_test(xp, passed):
    """Keep the self-test's verdict for ``xp`` (:mod:`numstyle.fast.kernel_check`)."""
    _passed[xp.__name__] = bool(passed)


def kernel(xp, name):
    key = (xp.__name__, name)
    if key not in _compiled:
        in_params, out_params, body = SOURCES[name]
        _compiled[key] = xp.ElementwiseKernel(in_params, out_params, body, f"numstyle_{name}",
                                              preamble=PREAMBLE)
    return _compiled[key]


def reflect_pad(x, p):
    """(RP1) in one launch: (N, C, H, W) -> (N, C, H+2p, W+2p)."""
    xp = get_xp(x)
    N, C, H, W = x.shape
    out = xp.empty((N, C, H + 2 * p, W + 2 * p), dtype=x.dtype)
    kernel(xp, "reflect_pad")(xp.ascontiguousarray(x), H, W, p, out)
    return out


def reflect_pad_backward(dout, x_shape, p):
    """(RP2) in one launch: (N, C, H+2p, W+2p) -> (N, C, H, W)."""
    xp = get_xp(dout)
    N, C, H, W = x_shape
    dx = xp.empty((N, C, H, W), dtype=dout.dtype)
    kernel(xp, "reflect_pad_backward")(xp.ascontiguousarray(dout), H, W, p, dx)
    return dx


def im2col_rows(x, kh, kw, stride, pad, r0, r1, Wo, out=None):
    """(K1) for output rows ``r0 .. r1-1`` of ``x`` zero-padded by ``pad``, in one launch: (N,
    C*kh*kw, rows*Wo)."""
    xp = get_xp(x)
    N, C, H, W = x.shape
    shape = (N, C, kh, kw, r1 - r0, Wo)
    cols = xp.empty(shape, dtype=x.dtype) if out is None else out.reshape(shape)
    kernel(xp, "im2col")(xp.ascontiguousarray(x), kh, kw, stride, pad, r0, H, W, r1 - r0, Wo, cols)
    return cols.reshape(N, C * kh * kw, (r1 - r0) * Wo)                 # (N, C*kh*kw, rows*Wo)


def col2im_rows(cols, dxpad, kh, kw, stride, r0, r1, Wo):
    """(K2) for output rows ``r0 .. r1-1`` in one launch, added into the padded rows they touch."""
    xp = get_xp(cols)
    Hp, Wp = dxpad.shape[2:]
    y0, y1 = stride * r0, min(stride * (r1 - 1) + kh, Hp)  # padded rows this band writes
    region = dxpad[:, :, y0:y1]                                          # (N, C, y1-y0, Wp): a view
    kernel(xp, "col2im")(xp.ascontiguousarray(cols), kh, kw, stride, r0, r1 - r0, Wo, y0, y1 - y0,
                          Wp, region)
    return dxpad


def avg_pool(x, k):
    """(P1) in one launch: (N, C, H, W) -> (N, C, H//k, W//k)."""
    xp = get_xp(x)
    N, C, H, W = x.shape
    out = xp.empty((N, C, H // k, W // k), dtype=x.dtype)
    kernel(xp, "avg_pool")(xp.ascontiguousarray(x), k, H, W, out)
    return out


def avg_pool_backward(dout, x_shape, k):
    """(P1)'s gradient in one launch: ``dout / k^2`` on every window pixel.

    Dropped odd edges get 0."""
    xp = get_xp(dout)
    dx = xp.empty(x_shape, dtype=dout.dtype)
    kernel(xp, "avg_pool_backward")(xp.ascontiguousarray(dout), k, x_shape[2], x_shape[3], dx)
    return dx


def max_pool(x, k):
    """(P2) in one launch: ``(y, winner)``, winner = a k + b, the first maximum's place in its
    window (int8)."""
    xp = get_xp(x)
    N, C, H, W = x.shape
    out = xp.empty((N, C, H // k, W // k), dtype=x.dtype)
    winner = xp.empty(out.shape, dtype=xp.int8)
    kernel(xp, "max_pool")(xp.ascontiguousarray(x), k, H, W, out, winner)
    return out, winner


def max_pool_backward(dout, winner, x_shape, k):
    """(P2)'s gradient in one launch: each window's winner gets ``dout``, every other pixel 0."""
    xp = get_xp(dout)
    dx = xp.empty(x_shape, dtype=dout.dtype)
    kernel(xp, "max_pool_backward")(xp.ascontiguousarray(dout), winner, k, x_shape[2], x_shape[3],
                                     dx)
    return dx


def relu_backward(dout, y, out=None):
    """(R1)'s gradient in one launch (the array code: a comparison, then a multiply); ``out`` may be
    ``dout``."""
    xp = get_xp(dout)
    out = xp.empty_like(dout) if out is None else out
    kernel(xp, "relu_backward")(dout, y, out)
    return out


def norm_forward(x, mu, inv_std, gamma, beta, xhat=None):
    """(N1) given the statistics: ``(xhat, gamma xhat + beta)`` in one launch.

    ``xhat`` may be ``x`` itself. ``mu``: (N, C, 1, 1), (1, C, 1, 1) or 0 (already subtracted);
    ``inv_std``: like ``mu``; ``gamma``, ``beta``: (C,).
    """
    xp = get_xp(x)
    C = x.shape[1]
    xhat = xp.empty_like(x) if xhat is None else xhat
    out = xp.empty_like(x)
    kernel(xp, "norm_forward")(x, mu, inv_std, gamma.reshape(1, C, 1, 1), beta.reshape(1, C, 1, 1),
                                xhat, out)
    return xhat, out


def norm_backward(dout, xhat, inv_std, gamma, axes, frozen):
    """(N2) and (N3): the two group sums once (array reductions), then ``dx`` in one launch.

    Returns ``(dx, dgamma, dbeta)``. The group sums of ``dy`` and ``dy xhat`` are (N3)'s
    ``dbeta`` and ``dgamma`` (summed over the batch for instance norm) and, over ``m``,
    (N2)'s means.
    """
    xp = get_xp(dout)
    N, C = dout.shape[:2]
    batch = len(axes) == 3
    sum_dy = dout.sum(axis=axes)  # (C,) batch, (N, C) instance
    sum_dy_xhat = xp.einsum("nchw,nchw->c" if batch else "nchw,nchw->nc", dout, xhat)
    dbeta, dgamma = (sum_dy, sum_dy_xhat) if batch else (sum_dy.sum(axis=0),
                                                         sum_dy_xhat.sum(axis=0))  # (N3)
    if frozen:  # inference batch norm: constant statistics
        mean_dy = mean_dy_xhat = 0
    else:
        m = dout.size // (C if batch else N * C)
        as_group = lambda a: (a / m).reshape(inv_std.shape).astype(dout.dtype, copy=False
                                                                   )  # noqa: E731
        mean_dy, mean_dy_xhat = as_group(sum_dy), as_group(
            sum_dy_xhat)  # like inv_std: (1|N, C, 1, 1)
    dx = xp.empty_like(dout)
    kernel(xp, "norm_backward")(dout, xhat, inv_std, gamma.reshape(1, C, 1, 1), mean_dy,
                                 mean_dy_xhat, dx)
    return dx, dgamma, dbeta


def tv_loss(x):
    """(TV1) and (TV2) in one launch and a sum: ``(0-d loss, dx)`` for (N, C, H, W)."""
    xp = get_xp(x)
    dx, sq = xp.empty_like(x), xp.empty_like(x)
    kernel(xp, "tv")(xp.ascontiguousarray(x), x.shape[2], x.shape[3], dx, sq)
    return sq.sum(), dx


def gram_loss(G, A, s, c):
    """A style layer's loss and ``dL/dG`` in one launch and a sum: ``(s sum (G - A)^2, c (G - A))``;
    ``A`` broadcasts (one target for a batch)."""
    xp = get_xp(G)
    dG, sq = xp.empty_like(G), xp.empty_like(G)
    kernel(xp, "gram_loss")(G, A, s, c, dG, sq)
    return sq.sum(), dG


def normalize(x, mu, var, gamma, beta, eps, relu):
    """(N1) with the given statistics, then (R1) if ``relu``: in place on ``x``, one launch.

    ``mu``, ``var``: (N, C, 1, 1), (1, C, 1, 1) or a number; ``gamma``, ``beta``: (C,).
    """
    xp = get_xp(x)
    C = x.shape[1]
    kernel(xp, "normalize")(x, mu, var, gamma.reshape(1, C, 1, 1), beta.reshape(1, C, 1, 1), eps,
                             int(relu), x)
    return x
