r"""Reflection padding (RP1)-(RP2), fast: :class:`SlicedReflectionPad2d` stands in for
:class:`numstyle.transformer_layers.ReflectionPad2d`.

Four reversed slices each way instead of ``pad(mode='reflect')`` and a loop of
single rows; on a GPU with the fused kernels one launch each way (a dozen
slice copies otherwise).
"""
from ..backend import get_xp
from ..transformer_layers import ReflectionPad2d
from . import StandIn
from ..errors import ImageError
from . import gpu_kernels


def reflect_pad_forward(x, p):
    """Reflection-pad the spatial axes of (N, C, H, W) by ``p`` (RP1); needs p < H, W."""
    xp = get_xp(x)
    H, W = x.shape[2:]
    if p >= H or p >= W:
        raise ImageError(
            f"image too small for the network: reflection padding by {p} needs more than {p} px "
            f"on each side at this layer, got {W}x{H}")
    if gpu_kernels.enabled(xp):
        return gpu_kernels.reflect_pad(x, p), (x.shape, p)  # (RP1) in one GPU kernel
    N, C = x.shape[:2]
    out = xp.empty((N, C, H + 2 * p, W + 2 * p), dtype=x.dtype)            # (N, C, H+2p, W+2p)
    out[:, :, p:p + H, p:p + W] = x                                         # centre
    if p:  # (RP1) as reversed slices:
        out[:, :, p:p + H, :p] = x[:, :, :, 1:p + 1][..., ::-1]             # left: columns p..1
        out[:, :, p:p + H, p + W:] = x[:, :, :,
                                       W - 1 - p:W - 1][..., ::-1]  # right: columns W-2..W-1-p
        out[:, :, :p] = out[:, :, p + 1:2 * p + 1][:, :, ::-1]  # top: rows p..1 (corners included)
        out[:, :, p + H:] = out[:, :, H - 1:H - 1 + p][:, :, ::-1]  # bottom: rows H-2..H-1-p
    return out, (x.shape, p)


def reflect_pad_backward(dout, cache):
    """Adjoint of :func:`reflect_pad_forward` (RP2): fold the mirrored borders back in."""
    (N, C, H, W), p = cache
    if gpu_kernels.enabled(get_xp(dout)):
        return gpu_kernels.reflect_pad_backward(dout, (N, C, H, W), p)  # (RP2) in one GPU kernel
    d = dout[:, :, :, p:p + W].copy()  # (N, C, H+2p, W): centre columns
    d[:, :, :, 1:p + 1] += dout[:, :, :,
                                p - 1::-1] if p else 0  # left border -> columns 1..p  (RP2)
    d[:, :, :, W - 1 - p:W - 1] += dout[:, :, :,
                                        W + 2 * p - 1:W + p - 1:-1] if p else 0  # right border
    dx = d[:, :, p:p + H].copy()                                           # centre rows
    dx[:, :, 1:p + 1] += d[:, :, p - 1::-1] if p else 0  # top border -> rows 1..p     (RP2)
    dx[:, :, H - 1 - p:H - 1] += d[:, :, H + 2 * p - 1:H + p - 1:-1] if p else 0   # bottom border
    return dx


class SlicedReflectionPad2d(StandIn, ReflectionPad2d):
    """:class:`numstyle.transformer_layers.ReflectionPad2d` by :func:`reflect_pad_forward` /
    :func:`reflect_pad_backward`."""

    def forward(self, x):
        return reflect_pad_forward(x, self.p)                               # (RP1)

    def backward(self, dy, cache):
        return reflect_pad_backward(dy, cache), {}                          # (RP2)
