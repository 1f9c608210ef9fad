r"""2x2 pooling compiled by Numba: (P1) and (P2) in one pass over each plane.

The array code of :mod:`numstyle.fast.pool` builds a 2x2 window from four strided slices, so
each direction is four passes that read or write every other value. Here each output row is made
from its two input rows in one loop (Numba, ``pip install numstyle[fast]``): average pooling

.. math::  y_{ij} = \tfrac14 (x_{2i,2j} + x_{2i,2j+1} + x_{2i+1,2j} + x_{2i+1,2j+1})      \tag{P1}

and its backward, which writes :math:`dy_{ij}/4` to the window's four pixels; max pooling keeps
each window's winner :math:`p^* = 2a + b` (int8; the first maximum in row-major order, as the
reference's ``argmax``) and its backward writes :math:`dy_{ij}` there and 0 to the other three
(P2). Odd trailing rows and columns are not pooled; their gradient is 0. The planes (image,
channel) are split across the cores. The twins: :mod:`numstyle.fast.pool` and the reference
layers (tests/test_compiled.py, the gradient-check table).
"""
import numpy as np

from .. import settings
from ..layers import AvgPool2d, MaxPool2d
from . import StandIn
from .parallel import for_each_band, split_rows

try:
    import numba
except ImportError:  # the optional extra numstyle[fast]: without it, the array code
    numba = None
INSTALLED = numba is not None

BAND_BYTES = 4 << 20   # input bytes per band of planes: several bands per core on large layers


def available():
    """Whether the compiled pooling can run: Numba installed, ``NUMSTYLE_COMPILED`` not 0."""
    return INSTALLED and settings.get().compiled


def _each_plane_band(kernel, shape, itemsize):
    """``kernel(p0, p1)`` for bands of the planes (image, channel) of the full-size ``shape``
    (N, C, H, W), on every core."""
    N, C, H, W = shape
    for_each_band(lambda band: kernel(*band), split_rows(N * C, H * W * itemsize, BAND_BYTES))


def _input_gradient(x_shape, dtype):
    """The buffer the backward fills: odd trailing rows or columns are in no window (gradient 0)."""
    odd = x_shape[2] % 2 or x_shape[3] % 2
    return (np.zeros if odd else np.empty)(x_shape, dtype=dtype)


def avg_pool_forward(x):
    """(P1), 2x2 windows: ``x`` (N, C, H, W) -> ``(y (N, C, H//2, W//2), x.shape)``."""
    N, C, H, W = x.shape
    x = np.ascontiguousarray(x)
    y = np.empty((N, C, H // 2, W // 2), dtype=x.dtype)
    _each_plane_band(lambda p0, p1: KERNELS["avg"](x, p0, p1, y), x.shape, x.itemsize)
    return y, x.shape


def avg_pool_backward(dy, x_shape):
    """Backward of (P1): ``dy / 4`` to each window's four pixels; odd trailing ones get 0."""
    dy = np.ascontiguousarray(dy)
    dx = _input_gradient(x_shape, dy.dtype)
    _each_plane_band(lambda p0, p1: KERNELS["avg_back"](dy, p0, p1, dx), x_shape, dy.itemsize)
    return dx


def max_pool_forward(x):
    """(P2), 2x2 windows: ``x`` (N, C, H, W) -> ``(y (N, C, H//2, W//2), (x.shape, winner))``,
    ``winner`` (N, C, H//2, W//2) int8: the place ``2a + b`` of each window's first maximum."""
    N, C, H, W = x.shape
    x = np.ascontiguousarray(x)
    y = np.empty((N, C, H // 2, W // 2), dtype=x.dtype)
    winner = np.empty(y.shape, dtype=np.int8)
    _each_plane_band(lambda p0, p1: KERNELS["max"](x, p0, p1, y, winner), x.shape, x.itemsize)
    return y, (x.shape, winner)


def max_pool_backward(dy, cache):
    """Backward of (P2): ``dy`` to each window's winner, 0 to the rest (and to odd trailing
    pixels)."""
    x_shape, winner = cache
    dy = np.ascontiguousarray(dy)
    dx = _input_gradient(x_shape, dy.dtype)
    _each_plane_band(lambda p0, p1: KERNELS["max_back"](dy, winner, p0, p1, dx), x_shape,
                     dy.itemsize)
    return dx


# --- the loop nests: planes p0..p1 of (N, C), p = n C + c; every inner loop over 1-d row views
# (indexing the 4-d arrays per element would keep LLVM from vectorising it) ------------------


def _avg(x, p0, p1, y):
    C, Ho, Wo = x.shape[1], y.shape[2], y.shape[3]
    quarter = x.dtype.type(0.25)
    for p in range(p0, p1):
        n, c = p // C, p % C
        for i in range(Ho):
            r0, r1, out = x[n, c, 2 * i], x[n, c, 2 * i + 1], y[n, c, i]
            for j in range(Wo):
                out[j] = (r0[2 * j] + r0[2 * j + 1] + r1[2 * j] + r1[2 * j + 1]) * quarter  # (P1)


def _avg_back(dy, p0, p1, dx):
    C, Ho, Wo = dy.shape[1], dy.shape[2], dy.shape[3]
    quarter = dy.dtype.type(0.25)
    for p in range(p0, p1):
        n, c = p // C, p % C
        for i in range(Ho):
            d, r0, r1 = dy[n, c, i], dx[n, c, 2 * i], dx[n, c, 2 * i + 1]
            for j in range(Wo):
                v = d[j] * quarter                                              # (P1)
                r0[2 * j], r0[2 * j + 1], r1[2 * j], r1[2 * j + 1] = v, v, v, v


def _max(x, p0, p1, y, winner):
    C, Ho, Wo = x.shape[1], y.shape[2], y.shape[3]
    for p in range(p0, p1):
        n, c = p // C, p % C
        for i in range(Ho):
            r0, r1 = x[n, c, 2 * i], x[n, c, 2 * i + 1]
            out, place = y[n, c, i], winner[n, c, i]
            for j in range(Wo):
                best, at = r0[2 * j], 0               # row-major order; strictly greater wins
                if r0[2 * j + 1] > best:
                    best, at = r0[2 * j + 1], 1
                if r1[2 * j] > best:
                    best, at = r1[2 * j], 2
                if r1[2 * j + 1] > best:
                    best, at = r1[2 * j + 1], 3
                out[j], place[j] = best, at                                     # (P2)


def _max_back(dy, winner, p0, p1, dx):
    C, Ho, Wo = dy.shape[1], dy.shape[2], dy.shape[3]
    zero = dy.dtype.type(0)
    for p in range(p0, p1):
        n, c = p // C, p % C
        for i in range(Ho):
            d, place = dy[n, c, i], winner[n, c, i]
            r0, r1 = dx[n, c, 2 * i], dx[n, c, 2 * i + 1]
            for j in range(Wo):
                v, at = d[j], place[j]                                          # (P2)
                r0[2 * j] = v if at == 0 else zero
                r0[2 * j + 1] = v if at == 1 else zero
                r1[2 * j] = v if at == 2 else zero
                r1[2 * j + 1] = v if at == 3 else zero


if INSTALLED:
    _jit = numba.njit(nogil=True, cache=True, error_model="numpy")
    KERNELS = {"avg": _jit(_avg), "avg_back": _jit(_avg_back), "max": _jit(_max),
               "max_back": _jit(_max_back)}
else:
    KERNELS = {}


class CompiledPool:
    """Mixin: the compiled pooling, offered for 2x2 windows on NumPy arrays where Numba is
    installed (``NUMSTYLE_COMPILED=0`` turns it off)."""

    numpy_only = True   # Numba compiles for the CPU: never offered CuPy arrays

    @classmethod
    def computes(cls, layer):
        return layer.k == 2

    @classmethod
    def applies(cls, layer, xp):
        return xp is np and available() and cls.computes(layer)


class CompiledAvgPool2d(CompiledPool, StandIn, AvgPool2d):
    """:class:`numstyle.layers.AvgPool2d` (P1), 2x2, by the compiled loops."""

    def forward(self, x):
        return avg_pool_forward(x)

    def backward(self, dy, cache):
        return avg_pool_backward(dy, cache), {}


class CompiledMaxPool2d(CompiledPool, StandIn, MaxPool2d):
    """:class:`numstyle.layers.MaxPool2d` (P2), 2x2, by the compiled loops."""

    def forward(self, x):
        return max_pool_forward(x)

    def backward(self, dy, cache):
        return max_pool_backward(dy, cache), {}
