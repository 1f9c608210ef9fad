r"""Elementwise activations.

Notes
-----
.. math::  \mathrm{relu}(z) = \max(z, 0), \qquad
           \frac{\partial L}{\partial z} = \frac{\partial L}{\partial y}\,[y > 0]   \tag{R1}

The kink at 0 takes the subgradient 0: ``dz = dy * (y > 0)``. The mask comes
from the output ``y``, which the next layer keeps anyway, so the pair costs no
extra memory and the forward may overwrite its input (``inplace=True``).

.. math::  y = \tanh(z), \qquad \frac{\partial L}{\partial z} = \frac{\partial L}{\partial y} (1 - y^2)   \tag{R2}
"""
import numpy as np

from ..backend import get_xp
from . import kernels

RELU_CHUNK = 1 << 16     # values per np.maximum call against a block of zeros (256 KB: stays in cache)
_ZEROS = {}


def relu_forward(x, inplace=False):
    """ReLU. Returns ``(out, cache)``; ``cache`` is ``out`` itself (R1)."""
    xp = get_xp(x)
    out = x if inplace else xp.empty_like(x)
    if xp is np and x.flags.c_contiguous and out.flags.c_contiguous:
        _relu_by_chunks(x.reshape(-1), out.reshape(-1))
    else:
        xp.maximum(x, 0, out=out)                                       # (R1); one kernel on a GPU
    return out, out


def _relu_by_chunks(x, out):
    """``np.maximum(x, 0, out=out)`` for flat arrays, 3x faster.

    NumPy's SIMD loop for ``maximum`` runs only when both operands are arrays,
    not for a broadcast scalar 0 (measured: 1.1 ms against 0.33 ms for 8 MB),
    so each chunk is compared with a block of zeros.
    """
    zeros = _ZEROS.get(x.dtype)
    if zeros is None:
        zeros = _ZEROS.setdefault(x.dtype, np.zeros(RELU_CHUNK, dtype=x.dtype))
    for i in range(0, x.size, RELU_CHUNK):
        j = min(i + RELU_CHUNK, x.size)
        np.maximum(x[i:j], zeros[:j - i], out=out[i:j])                 # (R1)


def relu_backward(dout, cache, inplace=False):
    """Backward of ReLU (R1): subgradient 0 at 0. ``inplace`` overwrites ``dout``."""
    xp = get_xp(dout)
    out = cache
    if kernels.enabled(xp):                                             # (R1) in one GPU kernel
        return kernels.relu_backward(dout, out, out=dout if inplace else None)
    return xp.multiply(dout, out > 0, out=dout if inplace else None)  # (R1)


def tanh_forward(x):
    """tanh. Returns ``(out, cache)``; ``cache`` is ``out`` (R2)."""
    xp = get_xp(x)
    out = xp.tanh(x)
    return out, out


def tanh_backward(dout, cache):
    """Backward of tanh (R2): ``dout * (1 - y^2)``."""
    out = cache
    return dout * (1 - out * out)                                       # (R2)


def relu_forward_naive(x):
    """Loop-based twin of :func:`relu_forward`."""
    out = x.copy()
    flat = out.reshape(-1)
    for i in range(flat.size):
        if flat[i] < 0:
            flat[i] = 0
    return out
