r"""Non-overlapping k x k pooling (VGG: k = 2, stride 2), average and max.

Odd trailing rows/columns are dropped, as Caffe/Keras/PyTorch floor mode does;
their gradient is zero.

Notes
-----
Average pooling over a window :math:`\Omega` of :math:`k^2` pixels:

.. math::  y = \frac{1}{k^2} \sum_{p \in \Omega} x_p, \qquad
           \frac{\partial L}{\partial x_p} = \frac{1}{k^2} \frac{\partial L}{\partial y}   \tag{P1}

Max pooling routes the whole gradient to the winner:

.. math::  y = \max_{p \in \Omega} x_p, \qquad
           \frac{\partial L}{\partial x_p} = [p = p^*] \frac{\partial L}{\partial y},
           \quad p^* = \operatorname{argmax}_{p \in \Omega} x_p                         \tag{P2}

Ties take the subgradient that gives everything to the first maximum in
row-major window order (what ``argmax`` returns).
"""
from ..backend import get_xp


def _windows(x, k):
    """View (N, C, H, W) as (N, C, Ho, k, Wo, k), dropping odd trailing pixels."""
    N, C, H, W = x.shape
    Ho, Wo = H // k, W // k
    return x[:, :, :Ho * k, :Wo * k].reshape(N, C, Ho, k, Wo, k)   # (N, C, Ho, k, Wo, k)


def avg_pool_forward(x, k=2):
    """Average pooling (P1). Returns ``(out (N, C, H//k, W//k), cache)``.

    Summed as k*k strided slices, one per window position: much faster than a
    mean over the strided axes of a 6-d view.
    """
    N, C, H, W = x.shape
    Ho, Wo = H // k, W // k
    out = None
    for i in range(k):
        for j in range(k):
            part = x[:, :, i:Ho * k:k, j:Wo * k:k]                          # (N, C, Ho, Wo): pixel (i, j) of each window
            out = part.copy() if out is None else _add(out, part)
    out *= out.dtype.type(1.0 / (k * k))                                    # (P1)
    cache = (x.shape, k)
    return out, cache


def avg_pool_backward(dout, cache):
    """Backward of average pooling (P1): spread ``dout / k^2`` over each window."""
    x_shape, k = cache
    xp = get_xp(dout)
    N, C, Ho, Wo = dout.shape
    dx = xp.zeros(x_shape, dtype=dout.dtype) if (x_shape[2] % k or x_shape[3] % k) else \
        xp.empty(x_shape, dtype=dout.dtype)                                  # odd trailing pixels get 0
    d = dout * dout.dtype.type(1.0 / (k * k))                               # (P1)
    for i in range(k):
        for j in range(k):
            dx[:, :, i:Ho * k:k, j:Wo * k:k] = d                            # each window pixel gets dout / k^2
    return dx


def _add(acc, part):
    acc += part
    return acc


def max_pool_forward(x, k=2):
    """Max pooling (P2). Returns ``(out, cache)``; ties go to the first maximum."""
    xp = get_xp(x)
    N, C, H, W = x.shape
    Ho, Wo = H // k, W // k
    win = _windows(x, k).transpose(0, 1, 2, 4, 3, 5).reshape(N, C, Ho, Wo, k * k)   # (N, C, Ho, Wo, k*k)
    arg = xp.argmax(win, axis=-1)                                   # (N, C, Ho, Wo): p*   (P2)
    out = xp.take_along_axis(win, arg[..., None], axis=-1)[..., 0]  # (N, C, Ho, Wo)
    cache = (x.shape, k, arg)
    return out, cache


def max_pool_backward(dout, cache):
    """Backward of max pooling (P2): the window's winner gets ``dout``, the rest 0."""
    x_shape, k, arg = cache
    xp = get_xp(dout)
    N, C, Ho, Wo = dout.shape
    onehot = arg[..., None] == xp.arange(k * k)                     # (N, C, Ho, Wo, k*k)   [p = p*]
    dwin = onehot * dout[..., None]                                 # (N, C, Ho, Wo, k*k)   (P2)
    dx = xp.zeros(x_shape, dtype=dout.dtype)
    _windows(dx, k)[...] = dwin.reshape(N, C, Ho, Wo, k, k).transpose(0, 1, 2, 4, 3, 5)  # (N, C, Ho, k, Wo, k)
    return dx


def avg_pool_naive(x, k=2):
    """Loop-based twin of :func:`avg_pool_forward`."""
    return _pool_naive(x, k, lambda w: w.mean())


def max_pool_naive(x, k=2):
    """Loop-based twin of :func:`max_pool_forward`."""
    return _pool_naive(x, k, lambda w: w.max())


def _pool_naive(x, k, reduce):
    xp = get_xp(x)
    N, C, H, W = x.shape
    out = xp.zeros((N, C, H // k, W // k), dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for h in range(H // k):
                for w in range(W // k):
                    out[n, c, h, w] = reduce(x[n, c, h * k:(h + 1) * k, w * k:(w + 1) * k])
    return out
