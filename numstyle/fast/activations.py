r"""ReLU (R1), fast: :class:`ChunkedReLU` stands in for :class:`numstyle.layers.ReLU`.

On NumPy the forward compares chunks with a block of zeros (NumPy's SIMD
loop for ``maximum`` runs only for two arrays, not for an array and the
scalar 0: 3x faster). Inference, and a layer marked ``inplace`` (VGG's,
where nothing else holds the array), overwrite their input instead of
allocating. On a GPU with the fused kernels the backward is one launch
instead of a comparison and a multiply. :class:`Rectified` is a ReLU that the convolution
before it has already applied.
"""
import numpy as np

from ..backend import get_xp
from . import StandIn
from ..layers import ReLU
from . import gpu_kernels

RELU_CHUNK = 1 << 16  # values per np.maximum call against a block of zeros (256 KB: stays in cache)
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
    if gpu_kernels.enabled(xp):                                             # (R1) in one GPU kernel
        return gpu_kernels.relu_backward(dout, out, out=dout if inplace else None)
    return xp.multiply(dout, out > 0, out=dout if inplace else None)  # (R1)


class ChunkedReLU(StandIn, ReLU):
    """:class:`numstyle.layers.ReLU` (R1) by :func:`relu_forward` and :func:`relu_backward`."""

    def forward(self, x):
        y, _ = relu_forward(x, inplace=self.inplace)                        # (R1)
        return y, y

    def backward(self, dy, cache):
        return relu_backward(dy, cache, inplace=self.inplace), {}           # (R1)

    def __call__(self, x):
        return relu_forward(x, inplace=True)[0]  # inference: x is not needed again


class Rectified(StandIn, ReLU):
    """:class:`numstyle.layers.ReLU` done by the layer before it: a pass-through both ways.

    Put in place by :func:`numstyle.engine.rectify_in_place` after a convolution that applies
    (R1) as it writes its output and (R1)'s backward in its own backward; the ReLU keeps its
    place and name in the chain (VGG's taps), and its input is already rectified.
    """

    def forward(self, x):
        return x, None

    def backward(self, dy, cache):
        return dy, {}

    def __call__(self, x):
        return x
