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
from ..backend import get_xp


def relu_forward(x, inplace=False):
    """ReLU. Returns ``(out, cache)``; ``cache`` is ``out`` itself (R1)."""
    xp = get_xp(x)
    out = xp.maximum(x, 0, out=x if inplace else None)
    return out, out


def relu_backward(dout, cache, inplace=False):
    """Backward of ReLU (R1): subgradient 0 at 0. ``inplace`` overwrites ``dout``."""
    xp = get_xp(dout)
    out = cache
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
