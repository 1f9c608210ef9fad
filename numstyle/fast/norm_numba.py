r"""Normalisation for inference compiled by Numba: (N1), and the ReLU after it, in three passes.

:func:`numstyle.fast.norm.norm_inference` takes the mean, subtracts it, sums the squares, scales,
shifts and rectifies: six passes over the activations. Here (Numba, ``pip install
numstyle[fast]``) each plane (image, channel) is read twice for its statistics -- the sum, then
the squares about the mean, both accumulated in float64 -- and written once,

.. math::  y = \max(0,\ x s + t), \qquad s = \gamma / \sqrt{\sigma^2 + \epsilon},
           \quad t = \beta - \mu s                                                    \tag{N1}

(the max only with ``relu``, (R1)). The statistics are the plane's own (instance norm) or the
running averages (batch norm), as in the twin, :func:`numstyle.fast.norm.norm_inference`
(tests/test_compiled.py). Training keeps :class:`numstyle.fast.norm.OnePassNorm`'s forward and
backward. The planes are split across the cores.
"""
import numpy as np

from .. import settings
from .norm import OnePassNorm, record_instance_statistics
from .parallel import for_each_band, split_rows

try:
    import numba
except ImportError:  # the optional extra numstyle[fast]: without it, the array code
    numba = None
INSTALLED = numba is not None

BAND_BYTES = 4 << 20   # bytes of activations per band of planes


def available():
    """Whether the compiled normalisation can run: Numba installed, ``NUMSTYLE_COMPILED`` not 0."""
    return INSTALLED and settings.get().compiled


def norm_inference(x, gamma, beta, kind="instance", eps=1e-5, running=None, relu=False):
    """(N1) for inference, in place on ``x`` (N, C, H, W), then (R1) if ``relu``: the contract of
    :func:`numstyle.fast.norm.norm_inference`. Returns ``x`` (a contiguous copy if it was not)."""
    x = np.ascontiguousarray(x)
    N, C, H, W = x.shape
    bands = split_rows(N * C, H * W * x.itemsize, BAND_BYTES)
    if kind == "batch":
        mu = np.broadcast_to(running["mean"].reshape(1, C), (N, C)).astype(np.float64)
        var = np.broadcast_to(running["var"].reshape(1, C), (N, C)).astype(np.float64)
    else:
        mu, var = np.empty((N, C)), np.empty((N, C))                     # float64
        for_each_band(lambda band: KERNELS["statistics"](x, *band, mu, var), bands)      # (N1)
        record_instance_statistics(running, mu.astype(x.dtype), var.astype(x.dtype), N, C)
    s = gamma.reshape(1, C) / np.sqrt(var + eps)                           # (N, C)
    t = beta.reshape(1, C) - mu * s                                        # (N, C)
    floor = x.dtype.type(0) if relu else None   # None: the kernel compiled without (R1)
    for_each_band(lambda band: KERNELS["scale_shift"](x, s, t, floor, *band), bands)  # (N1), (R1)
    return x


# --- the loop nests: planes p0..p1 of (N, C), p = n C + c ------------------------------------


def _statistics(x, p0, p1, mu, var):
    """Each plane's mean and (biased) variance, ``mu``, ``var`` (N, C) float64: the sum, then the
    squares about the mean (two reads; no cancellation as in E[x^2] - E[x]^2)."""
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    for p in range(p0, p1):
        n, c = p // C, p % C
        total = 0.0
        for i in range(H):
            row = x[n, c, i]
            for j in range(W):
                total += row[j]
        mean = total / (H * W)
        squares = 0.0
        for i in range(H):
            row = x[n, c, i]
            for j in range(W):
                d = row[j] - mean
                squares += d * d
        mu[n, c], var[n, c] = mean, squares / (H * W)                      # (N1)


def _scale_shift(x, s, t, floor, p0, p1):
    """``x = x s + t`` per plane, in place; then (R1) unless ``floor`` is None (NaN stays NaN)."""
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    for p in range(p0, p1):
        n, c = p // C, p % C
        a, b = x.dtype.type(s[n, c]), x.dtype.type(t[n, c])
        for i in range(H):
            row = x[n, c, i]
            for j in range(W):
                v = row[j] * a + b                                          # (N1)
                if floor is not None and v < floor:
                    v = floor                                               # (R1)
                row[j] = v


if INSTALLED:
    # "reassoc" lets LLVM split the float64 sums into vector lanes (3x faster; the sums are
    # float64 either way, more exact than the array code's float32 ones)
    KERNELS = {"statistics": numba.njit(nogil=True, cache=True, error_model="numpy",
                                        fastmath={"reassoc"})(_statistics),
               "scale_shift": numba.njit(nogil=True, cache=True, error_model="numpy")(_scale_shift)}
else:
    KERNELS = {}


class CompiledNorm(OnePassNorm):
    """:class:`numstyle.transformer_layers.Norm`: inference by the compiled :func:`norm_inference`
    (in place; with the ReLU after it inside :class:`~numstyle.fast.norm.NormReLU`), training by
    :class:`~numstyle.fast.norm.OnePassNorm`'s forward and backward; on NumPy where Numba is
    installed (``NUMSTYLE_COMPILED=0`` turns it off)."""

    numpy_only = True   # Numba compiles for the CPU: never offered CuPy arrays

    @classmethod
    def applies(cls, layer, xp):
        return xp is np and available()

    def inference(self, x, relu=False):
        return norm_inference(x, self.gamma, self.beta, self.kind, self.eps, self.running,
                              relu)                                         # (N1), (R1)
