r"""Layers: each op's forward and backward in textbook form, and the containers that chain them.

The contract every layer keeps (CS231n's ``*_forward`` / ``*_backward``, as objects):

- ``forward(x) -> (y, cache)``: the output, and what the backward needs.
- ``backward(dy, cache) -> (dx, grads)``: the gradient of the input, and of
  each parameter as ``{'w': dw, 'b': db}`` (empty for a layer without
  parameters, or one whose ``trainable`` is False). A convolution's ``dx`` is
  None when its ``input_grad`` is False: nothing below it needs one (the first
  layer of a network whose input is data; the other layers always return one).
- ``layer(x) -> y``: inference, the forward with nothing kept.

This file is the reference engine's: NumPy or CuPy through ``xp``, nothing
else. Faster versions of the same layers (threads, Winograd, fused GPU
kernels) are drop-in subclasses in :mod:`numstyle.fast`, chosen by
:mod:`numstyle.engine`; :mod:`numstyle.naive` has each one as loops.

Notes
-----
**Convolution** (cross-correlation, as Caffe, Keras and PyTorch compute it).
im2col copies every ``kh x kw`` window of the zero-padded input into a column,

.. math::  X_{\mathrm{col}}[n, (c, i, j), (h, w)]
           = x_{\mathrm{pad}}[n, c, s h + i, s w + j]                                   \tag{K1}

and col2im, its adjoint, adds each column entry back where it came from
(pixels shared by overlapping windows receive the sum):

.. math::  dx_{\mathrm{pad}}[n, c, y, x] = \sum_{s h + i = y,\ s w + j = x}
           dX_{\mathrm{col}}[n, (c, i, j), (h, w)]                                      \tag{K2}

With the kernel as a matrix :math:`W_{\mathrm{row}}` (F, C kh kw) -- ``Ckk`` in the
shape comments -- and ``L = Ho Wo`` output pixels, the convolution is one matrix
product per image, and its backward three more:

.. math::  y[n] = W_{\mathrm{row}} X_{\mathrm{col}}[n] + b \mathbf{1}^\top              \tag{CV1}
.. math::  dx = \mathrm{col2im}\big(W_{\mathrm{row}}^\top\, dy[n]\big)                  \tag{CV2}
.. math::  dW_{\mathrm{row}} = \sum_n dy[n]\, X_{\mathrm{col}}[n]^\top                  \tag{CV3}
.. math::  db_f = \sum_{n, l} dy[n, f, l]                                               \tag{CV4}

**ReLU**, with the subgradient 0 at the kink; the mask comes from the output:

.. math::  y = \max(z, 0), \qquad dz = dy\, [y > 0]                                     \tag{R1}

**Pooling** over non-overlapping k x k windows :math:`\Omega` (odd trailing
rows and columns dropped, as Caffe's floor mode; their gradient is 0). Average
pooling spreads the gradient evenly; max pooling gives it all to the first
maximum in row-major window order (``argmax``; after a ReLU, ties are common):

.. math::  y = \frac{1}{k^2} \sum_{p \in \Omega} x_p, \qquad dx_p = \frac{dy}{k^2}      \tag{P1}
.. math::  y = \max_{p \in \Omega} x_p, \qquad dx_p = [p = p^*]\, dy,
           \quad p^* = \operatorname{argmax}_{p \in \Omega} x_p                         \tag{P2}

**Containers.** A chain's backward runs its layers' backwards in reverse
(the chain rule); a residual block adds its input to a branch, so the
gradient flows both ways and adds up:

.. math::  y = x + f(x), \qquad dx = dy + J_f^\top dy                                   \tag{J2}
"""
from .backend import get_xp


class Layer:
    """Base of every layer: the contract above. Attributes set by the network that builds it:

    ``name`` (parameter keys are ``'<name>.w'``...), ``trainable`` (False: no
    parameter gradients, the weights are constants), ``input_grad`` (False:
    no ``dx``, for the first layer of a network whose input is data) and
    ``inplace`` (True: nothing else holds this layer's ``x`` or ``dy``, so a
    fast path may overwrite them; the reference never does).
    """

    name = None
    trainable = True
    input_grad = True
    inplace = False

    def forward(self, x):
        raise NotImplementedError

    def backward(self, dy, cache):
        raise NotImplementedError

    def __call__(self, x):
        return self.forward(x)[0]


def output_size(size, k, stride, pad):
    """Output length of a convolution along one axis: floor((size + 2 pad - k) / stride) + 1."""
    return (size + 2 * pad - k) // stride + 1


def im2col(x, kh, kw, stride=1, pad=0):
    """(K1): every window of ``x`` (N, C, H, W) as a column: (N, Ckk, L)."""
    xp = get_xp(x)
    N, C, H, W = x.shape
    Ho, Wo = output_size(H, kh, stride, pad), output_size(W, kw, stride, pad)
    xpad = xp.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))            # (N, C, H + 2p, W + 2p)
    cols = xp.empty((N, C, kh, kw, Ho, Wo), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):  # tap (i, j) of every window
            cols[:, :, i, j] = xpad[:, :, i:i + stride * Ho:stride, j:j + stride * Wo:stride]
    return cols.reshape(N, C * kh * kw, Ho * Wo)                            # (N, Ckk, L)


def col2im(cols, x_shape, kh, kw, stride=1, pad=0):
    """(K2), the adjoint of :func:`im2col`: columns (N, Ckk, L) summed back into (N, C, H, W)."""
    xp = get_xp(cols)
    N, C, H, W = x_shape
    Ho, Wo = output_size(H, kh, stride, pad), output_size(W, kw, stride, pad)
    cols = cols.reshape(N, C, kh, kw, Ho, Wo)                               # (N, C, kh, kw, Ho, Wo)
    dxpad = xp.zeros((N, C, H + 2 * pad, W + 2 * pad), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):  # windows overlap: add, never assign
            dxpad[:, :, i:i + stride * Ho:stride, j:j + stride * Wo:stride] += cols[:, :, i, j]
    return dxpad[:, :, pad:pad + H, pad:pad + W]                            # (N, C, H, W)


def conv2d_input_grad(dy, w, x_shape, stride, pad):
    """(CV2): the input gradient of a convolution, ``col2im(W_row^T dy)`` -- the convolution's
    adjoint."""
    N, F, Ho, Wo = dy.shape
    _, C, kh, kw = w.shape
    w_row = w.reshape(F, C * kh * kw)                                       # (F, Ckk)
    dcols = w_row.T @ dy.reshape(N, F, Ho * Wo)  # (Ckk, F) @ (N, F, L) -> (N, Ckk, L)  (CV2)
    return col2im(dcols, x_shape, kh, kw, stride, pad)  # (N, C, H, W)        (K2)


def conv2d_weight_grad(dy, x, w_shape, stride, pad):
    """(CV3): ``sum_n dy[n] X_col[n]^T``, the columns rebuilt from ``x`` (cheaper than keeping
    them)."""
    N, F, Ho, Wo = dy.shape
    cols = im2col(x, w_shape[2], w_shape[3], stride, pad)  # (N, Ckk, L)         (K1)
    cols_t = cols.transpose(0, 2, 1)                                        # (N, L, Ckk)
    dw = dy.reshape(N, F, Ho * Wo) @ cols_t  # (N, F, L) @ (N, L, Ckk) -> (N, F, Ckk)   (CV3)
    return dw.sum(axis=0).reshape(w_shape)  # sum over n: (F, Ckk) -> (F, C, kh, kw)   (CV3)


class Conv2d(Layer):
    """2-D convolution by im2col and one GEMM (CV1)-(CV4).

    Parameters
    ----------
    w : ndarray, shape (F, C, kh, kw)
    b : ndarray, shape (F,) or None
    stride, pad : int
        The same on both axes; the padding is zeros.

    ``forward``: (N, C, H, W) -> (N, F, Ho, Wo), ``Ho = (H + 2 pad - kh) // stride + 1``.
    The cache is the input, not its columns: 9x less memory for a 3x3 kernel.
    """

    def __init__(self, w, b=None, stride=1, pad=0):
        self.w, self.b, self.stride, self.pad = w, b, stride, pad

    def forward(self, x):
        N, C, H, W = x.shape
        F, _, kh, kw = self.w.shape
        Ho = output_size(H, kh, self.stride, self.pad)
        Wo = output_size(W, kw, self.stride, self.pad)
        cols = im2col(x, kh, kw, self.stride, self.pad)  # (N, Ckk, L)         (K1)
        y = self.w.reshape(F, -1) @ cols  # (F, Ckk) @ (N, Ckk, L) -> (N, F, L)  (CV1)
        if self.b is not None:
            y += self.b.reshape(1, F, 1)  # (1, F, 1) broadcast over n, l      (CV1): + b 1^T
        return y.reshape(N, F, Ho, Wo), x                                   # (N, F, Ho, Wo)

    def backward(self, dy, cache):
        x = cache
        dx = None
        if self.input_grad:
            dx = conv2d_input_grad(dy, self.w, x.shape, self.stride, self.pad)     # (CV2)
        if not self.trainable:
            return dx, {}
        grads = {"w": conv2d_weight_grad(dy, x, self.w.shape, self.stride, self.pad)}   # (CV3)
        if self.b is not None:
            grads["b"] = dy.sum(axis=(0, 2, 3))                             # (CV4)
        return dx, grads


class ReLU(Layer):
    """(R1). The cache is the output: its sign is the mask."""

    def forward(self, x):
        y = get_xp(x).maximum(x, 0)                                         # (R1)
        return y, y

    def backward(self, dy, cache):
        y = cache
        return dy * (y > 0), {}                                             # (R1)


def pool_windows(x, k):
    """The k x k windows of ``x`` (N, C, H, W) as a last axis: (N, C, H // k, W // k, k k),
    row-major."""
    N, C, H, W = x.shape
    Ho, Wo = H // k, W // k
    x = x[:, :, :Ho * k, :Wo * k]  # floor mode: drop odd edges
    x = x.reshape(N, C, Ho, k, Wo, k).transpose(0, 1, 2, 4, 3, 5)           # (N, C, Ho, Wo, k, k)
    return x.reshape(N, C, Ho, Wo, k * k)                                   # (N, C, Ho, Wo, k k)


def unpool_windows(d, x_shape, k):
    """Adjoint of :func:`pool_windows`: (N, C, Ho, Wo, k k) back to (N, C, H, W), 0 on dropped
    edges."""
    xp = get_xp(d)
    N, C, Ho, Wo, _ = d.shape
    d = d.reshape(N, C, Ho, Wo, k, k).transpose(0, 1, 2, 4, 3, 5)           # (N, C, Ho, k, Wo, k)
    dx = xp.zeros(x_shape, dtype=d.dtype)
    dx[:, :, :Ho * k, :Wo * k] = d.reshape(N, C, Ho * k, Wo * k)            # (N, C, Ho k, Wo k)
    return dx                                                               # (N, C, H, W)


class AvgPool2d(Layer):
    """Average pooling over k x k windows, stride k (P1)."""

    def __init__(self, k=2):
        self.k = k

    def forward(self, x):
        return pool_windows(x, self.k).mean(axis=-1), x.shape  # (N, C, Ho, Wo)      (P1)

    def backward(self, dy, cache):
        x_shape, k = cache, self.k
        d = get_xp(dy).repeat(dy[..., None] / (k * k), k * k, axis=-1)  # (N, C, Ho, Wo, k k) (P1)
        return unpool_windows(d, x_shape, k), {}


class MaxPool2d(Layer):
    """Max pooling over k x k windows, stride k (P2); ties go to the first maximum."""

    def __init__(self, k=2):
        self.k = k

    def forward(self, x):
        windows = pool_windows(x, self.k)                                   # (N, C, Ho, Wo, k k)
        winner = windows.argmax(axis=-1)  # (N, C, Ho, Wo): the first maximum
        return windows.max(axis=-1), (x.shape, winner)                      # (P2)

    def backward(self, dy, cache):
        x_shape, winner = cache
        xp = get_xp(dy)
        place = xp.arange(self.k * self.k) == winner[..., None]  # (N, C, Ho, Wo, k k): one-hot p*
        return unpool_windows(place * dy[..., None], x_shape, self.k), {}   # (P2)


class Sequential(Layer):
    """Layers applied in order. ``backward`` consumes the cache list (each layer's cache is freed
    once its backward has run) and names each parameter gradient ``'<layer name>.<param>'``."""

    def __init__(self, layers):
        self.layers = list(layers)

    def forward(self, x):
        caches = []
        for layer in self.layers:
            x, cache = layer.forward(x)
            caches.append(cache)
        return x, caches

    def backward(self, dy, cache):
        grads = {}
        for layer in reversed(self.layers):  # the chain rule, last layer first
            dy, g = layer.backward(dy, cache.pop())
            grads.update({f"{layer.name}.{k}": v for k, v in g.items()} if layer.name else g)
            if dy is None:  # nothing below needs a gradient
                break
        return dy, grads

    def __call__(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


class Residual(Layer):
    """``x + branch(x)`` (J2): the gradient goes through the branch and around it."""

    def __init__(self, branch):
        self.branch = branch

    def forward(self, x):
        y, cache = self.branch.forward(x)
        return x + y, cache                                                 # (J2)

    def backward(self, dy, cache):
        dx, grads = self.branch.backward(dy, cache)
        return dy + dx, grads                                               # (J2): skip + branch

    def __call__(self, x):
        return x + self.branch(x)
