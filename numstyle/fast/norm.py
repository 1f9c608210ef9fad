r"""Normalisation (N1)-(N3), fast: :class:`OnePassNorm` stands in for
:class:`numstyle.transformer_layers.Norm` (and, inside it, for the Norm of a
:class:`numstyle.transformer_layers.ConditionalNorm`: :class:`OnePassConditionalNorm`).

The same equations with fewer passes over memory: the sums of squares by
``einsum`` (no temporary), x-hat and the gradient built in place, inference
as one multiply-add per value in place (:func:`norm_inference`), and on a GPU
with the fused kernels (N1) and (N2) as one launch each.
"""
from ..backend import get_xp
from ..layers import Layer
from ..transformer_layers import ConditionalNorm, Norm
from . import StandIn
from . import gpu_kernels
from .activations import relu_forward

AXES = {"batch": (0, 2, 3), "instance": (2, 3)}


def norm_forward(x, gamma, beta, kind="instance", eps=1e-5, running=None, momentum=0.1, train=True):
    r"""Normalise (N1) over the axes of ``kind``.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    gamma, beta : ndarray, shape (C,)
    kind : {'batch', 'instance'}
    running : dict, optional
        Batch norm's ``{'mean': (C,), 'var': (C,)}``; updated in place when
        training, used instead of the batch statistics when ``train=False``.
        Instance norm of one image (N = 1): receives this image's statistics,
        so that tiles of it can later be normalised with the whole image's.

    Returns
    -------
    out : ndarray, shape (N, C, H, W)
    cache : tuple
    """
    xp = get_xp(x)
    axes = AXES[kind]
    C = x.shape[1]
    if kind == "batch" and not train:
        mu = running["mean"].reshape(1, C, 1, 1)
        var = running["var"].reshape(1, C, 1, 1)
    else:
        mu = x.mean(axis=axes, keepdims=True)                               # (N1)
        centred = x - mu                                                    # becomes xhat below
        m = x.size // (C if kind == "batch" else x.shape[0] * C)
        # sum of squares: one pass, no temporary
        sums = "nchw,nchw->c" if kind == "batch" else "nchw,nchw->nc"
        var = (xp.einsum(sums, centred, centred) / m).reshape(mu.shape)     # (N1), biased: 1/m
        if kind == "batch" and running is not None:
            running["mean"] = (1 - momentum) * running["mean"] + momentum * mu.reshape(C)
            running["var"] = (1 - momentum) * running["var"] + momentum * var.reshape(C) * (
                m / max(m - 1, 1))
        elif kind == "instance":
            record_instance_statistics(running, mu, var, x.shape[0], C)
    inv_std = (1.0 / xp.sqrt(var + eps)).astype(x.dtype, copy=False)
    frozen = kind == "batch" and not train
    if gpu_kernels.enabled(xp):  # (N1) in one GPU kernel
        xhat, out = (gpu_kernels.norm_forward(x, mu.astype(x.dtype, copy=False), inv_std, gamma,
                                              beta) if frozen else gpu_kernels.norm_forward(
                                                  centred, 0, inv_std, gamma, beta, xhat=centred))
        return out, (xhat, inv_std, gamma, axes, frozen)
    if frozen:
        xhat = (x - mu) * inv_std  # (N1) with the running statistics
    else:
        xhat = centred
        xhat *= inv_std                                                     # (N1), in place
    out = xp.multiply(xhat, gamma.reshape(1, C, 1, 1))                      # (N1): gamma xhat ...
    out += beta.reshape(1, C, 1, 1)                                         # ... + beta, in place
    cache = (xhat, inv_std, gamma, axes, frozen)
    return out, cache


def norm_inference(x, gamma, beta, kind="instance", eps=1e-5, running=None, relu=False):
    r"""(N1) for inference, in place on ``x`` and with no cache: ``x * s + t``, then ReLU if asked.

    With :math:`s = \gamma / \sqrt{\sigma^2 + \epsilon}` and :math:`t = \beta - \mu s`,
    (N1) is one multiply-add per value; the statistics are the image's own
    (instance norm; recorded into ``running`` when given, as in :func:`norm_forward`)
    or the running averages (batch norm). Same result as :func:`norm_forward`
    with ``train=False``, in a third of the passes over memory.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W), overwritten (a view is fine)
    relu : bool
        Apply (R1) in the same place.

    Returns
    -------
    out : ndarray, ``x`` itself
    """
    xp = get_xp(x)
    N, C = x.shape[:2]
    if kind == "batch":
        mu, var = running["mean"].reshape(1, C), running["var"].reshape(1, C)
    else:
        m = x.shape[2] * x.shape[3]
        mu = x.mean(axis=(2, 3))                                            # (N, C)          (N1)
        x -= mu[:, :, None, None]                                           # x - mu, in place
        var = xp.einsum("nchw,nchw->nc", x, x) / m  # (N, C): one pass, no temporary
        record_instance_statistics(running, mu, var, N, C)
    if gpu_kernels.enabled(xp):  # (N1) and (R1) in one GPU kernel
        as_x = lambda a: a[:, :, None, None].astype(x.dtype, copy=False)  # noqa: E731  (N, C, 1, 1)
        return gpu_kernels.normalize(x,
                                     as_x(mu) if kind == "batch" else 0, as_x(var), gamma, beta,
                                     eps, relu)
    s = gamma.reshape(1, C) / xp.sqrt(var + eps)                            # (N, C)
    t = beta.reshape(1, C) - mu * s if kind == "batch" else beta.reshape(
        1, C)  # instance: mu already subtracted
    x *= s[:, :, None, None].astype(x.dtype, copy=False)  # (N1): gamma xhat + beta ...
    x += t[:, :, None, None].astype(x.dtype, copy=False)  # ... as one multiply-add
    if relu:
        relu_forward(x, inplace=True)                                       # (R1)
    return x


def record_instance_statistics(running, mu, var, N, C):
    """Instance norm of one image: keep its statistics in ``running``, for tiled inference."""
    if running is not None and N == 1:
        running["mean"], running["var"] = mu.reshape(C), var.reshape(C)     # recorded, not blended


def norm_backward(dout, cache):
    r"""Backward of :func:`norm_forward` (N2)-(N3). Returns ``(dx, dgamma, dbeta)``."""
    xhat, inv_std, gamma, axes, frozen = cache
    xp = get_xp(dout)
    if gpu_kernels.enabled(xp):  # (N2) in one GPU kernel, (N3)
        return gpu_kernels.norm_backward(dout, xhat, inv_std, gamma, axes, frozen)
    C = dout.shape[1]
    dgamma = xp.einsum("nchw,nchw->c", dout, xhat)  # (N3): one pass, no temporary
    dbeta = dout.sum(axis=(0, 2, 3))                                        # (N3)
    dx = xp.multiply(dout, gamma.reshape(1, C, 1, 1))  # dxhat (N2); becomes dx in place
    if frozen:  # inference: statistics are constants
        dx *= inv_std
        return dx, dgamma, dbeta
    m = dout.size // (C if len(axes) == 3 else dout.shape[0] * C)
    sums = "nchw,nchw->c" if len(axes) == 3 else "nchw,nchw->nc"
    mean_dxhat_xhat = (xp.einsum(sums, dx, xhat) / m).reshape(inv_std.shape).astype(
        dx.dtype, copy=False)
    dx -= dx.mean(axis=axes, keepdims=True)  # (N2): dxhat - mean(dxhat)
    dx -= xhat * mean_dxhat_xhat  #       - xhat mean(dxhat xhat)
    dx *= inv_std  #       times 1/sqrt(var + eps)
    return dx, dgamma, dbeta


class OnePassNorm(StandIn, Norm):
    """:class:`numstyle.transformer_layers.Norm` by :func:`norm_forward`, :func:`norm_backward` and,
    for inference, :func:`norm_inference` (in place on the input)."""

    def forward(self, x):
        return norm_forward(x, self.gamma, self.beta, self.kind, self.eps, self.running,
                            self.momentum, self.train)  # (N1)

    def backward(self, dy, cache):
        dx, dgamma, dbeta = norm_backward(dy, cache)                        # (N2), (N3)
        return dx, ({"gamma": dgamma, "beta": dbeta} if self.trainable else {})

    def __call__(self, x):
        if self.train:
            return self.forward(x)[0]
        return self.inference(x)                                            # (N1), in place

    def inference(self, x, relu=False):
        """(N1) for inference, in place on ``x``; then (R1) with ``relu`` (:class:`NormReLU`)."""
        return norm_inference(x, self.gamma, self.beta, self.kind, self.eps, self.running, relu)


class OnePassConditionalNorm(StandIn, ConditionalNorm):
    """:class:`numstyle.transformer_layers.ConditionalNorm` (N4)-(N5) with its mixed Norm computed
    by :class:`OnePassNorm`."""

    def prepare(self):
        self.norm = OnePassNorm.replacing(self.norm)


class NormReLU(Layer):
    """A :class:`OnePassNorm` (or a subclass) and the ReLU after it, as one layer: inference in
    one pass, in place (one launch on a GPU instead of two); training runs the two layers' own
    forward and backward."""

    def __init__(self, norm, relu):
        self.norm, self.relu, self.name = norm, relu, norm.name

    def forward(self, x):
        y, norm_cache = self.norm.forward(x)                                # (N1)
        z, relu_cache = self.relu.forward(y)                                # (R1)
        return z, (norm_cache, relu_cache)

    def backward(self, dy, cache):
        norm_cache, relu_cache = cache
        d, _ = self.relu.backward(dy, relu_cache)                           # (R1)
        return self.norm.backward(d, norm_cache)                            # (N2), (N3)

    def __call__(self, x):
        if self.norm.train:
            return self.relu(self.norm(x))
        return self.norm.inference(x, relu=True)                            # (N1), (R1)
