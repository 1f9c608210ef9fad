r"""Batch and instance normalisation: one forward, one backward, different axes.

Batch norm normalises each channel over (N, H, W) -- the whole batch --
and keeps running averages for inference; instance norm normalises each
channel of each image over (H, W) alone (Ulyanov et al.), the same at
training and inference. Both are the same computation over a set of axes:

Notes
-----
Over the :math:`m` values of one normalisation group:

.. math::  \mu = \frac1m \sum x, \qquad \sigma^2 = \frac1m \sum (x - \mu)^2, \qquad
           \hat x = \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}}, \qquad y = \gamma \hat x + \beta   \tag{N1}

Backward (the terms from :math:`\mu` and :math:`\sigma^2` collapse into two
group means):

.. math::  d\hat x = \gamma\, dy, \qquad
           dx = \frac{1}{\sqrt{\sigma^2 + \epsilon}} \Big( d\hat x - \overline{d\hat x}
                - \hat x\, \overline{d\hat x \odot \hat x} \Big)                       \tag{N2}

.. math::  d\gamma = \sum_{n,h,w} dy \odot \hat x, \qquad d\beta = \sum_{n,h,w} dy   \tag{N3}

where the bar is the mean over the group. In inference mode batch norm uses
the running :math:`\mu, \sigma^2` as constants, so :math:`dx = \gamma\, dy / \sqrt{\sigma^2 + \epsilon}`.
"""
from ..backend import get_xp
from . import kernels
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
        sums = "nchw,nchw->c" if kind == "batch" else "nchw,nchw->nc"       # sum of squares: one pass, no temporary
        var = (xp.einsum(sums, centred, centred) / m).reshape(mu.shape)     # (N1), biased: 1/m
        if kind == "batch" and running is not None:
            running["mean"] = (1 - momentum) * running["mean"] + momentum * mu.reshape(C)
            running["var"] = (1 - momentum) * running["var"] + momentum * var.reshape(C) * (m / max(m - 1, 1))
        elif kind == "instance":
            _record(running, mu, var, x.shape[0], C)
    inv_std = (1.0 / xp.sqrt(var + eps)).astype(x.dtype, copy=False)
    frozen = kind == "batch" and not train
    if kernels.enabled(xp):                                                 # (N1) in one GPU kernel
        xhat, out = (kernels.norm_forward(x, mu.astype(x.dtype, copy=False), inv_std, gamma, beta) if frozen
                     else kernels.norm_forward(centred, 0, inv_std, gamma, beta, xhat=centred))
        return out, (xhat, inv_std, gamma, axes, frozen)
    if frozen:
        xhat = (x - mu) * inv_std                                           # (N1) with the running statistics
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
        var = xp.einsum("nchw,nchw->nc", x, x) / m                          # (N, C): one pass, no temporary
        _record(running, mu, var, N, C)
    if kernels.enabled(xp):                                                 # (N1) and (R1) in one GPU kernel
        as_x = lambda a: a[:, :, None, None].astype(x.dtype, copy=False)    # noqa: E731  (N, C, 1, 1)
        return kernels.normalize(x, as_x(mu) if kind == "batch" else 0, as_x(var), gamma, beta, eps, relu)
    s = gamma.reshape(1, C) / xp.sqrt(var + eps)                            # (N, C)
    t = beta.reshape(1, C) - mu * s if kind == "batch" else beta.reshape(1, C)   # instance: mu already subtracted
    x *= s[:, :, None, None].astype(x.dtype, copy=False)                    # (N1): gamma xhat + beta ...
    x += t[:, :, None, None].astype(x.dtype, copy=False)                    # ... as one multiply-add
    if relu:
        relu_forward(x, inplace=True)                                       # (R1)
    return x


def _record(running, mu, var, N, C):
    """Instance norm of one image: keep its statistics in ``running`` (tiled inference reuses them)."""
    if running is not None and N == 1:
        running["mean"], running["var"] = mu.reshape(C), var.reshape(C)     # recorded, not blended


def norm_backward(dout, cache):
    r"""Backward of :func:`norm_forward` (N2)-(N3). Returns ``(dx, dgamma, dbeta)``."""
    xhat, inv_std, gamma, axes, frozen = cache
    xp = get_xp(dout)
    if kernels.enabled(xp):                                                 # (N2) in one GPU kernel, (N3)
        return kernels.norm_backward(dout, xhat, inv_std, gamma, axes, frozen)
    C = dout.shape[1]
    dgamma = xp.einsum("nchw,nchw->c", dout, xhat)                          # (N3): one pass, no temporary
    dbeta = dout.sum(axis=(0, 2, 3))                                        # (N3)
    dx = xp.multiply(dout, gamma.reshape(1, C, 1, 1))                       # dxhat (N2); becomes dx in place
    if frozen:                                                              # inference: statistics are constants
        dx *= inv_std
        return dx, dgamma, dbeta
    m = dout.size // (C if len(axes) == 3 else dout.shape[0] * C)
    sums = "nchw,nchw->c" if len(axes) == 3 else "nchw,nchw->nc"
    mean_dxhat_xhat = (xp.einsum(sums, dx, xhat) / m).reshape(inv_std.shape).astype(dx.dtype, copy=False)
    dx -= dx.mean(axis=axes, keepdims=True)                                 # (N2): dxhat - mean(dxhat)
    dx -= xhat * mean_dxhat_xhat                                            #       - xhat mean(dxhat xhat)
    dx *= inv_std                                                           #       times 1/sqrt(var + eps)
    return dx, dgamma, dbeta


def norm_naive(x, gamma, beta, kind="instance", eps=1e-5):
    """Loop-based twin of :func:`norm_forward` (training statistics)."""
    xp = get_xp(x)
    N, C, H, W = x.shape
    out = xp.zeros_like(x)
    groups = [(slice(None), c) for c in range(C)] if kind == "batch" else [(n, c) for n in range(N) for c in range(C)]
    for n, c in groups:
        vals = x[n, c]
        mu = vals.sum() / vals.size
        var = ((vals - mu) ** 2).sum() / vals.size
        out[n, c] = gamma[c] * (vals - mu) / (var + eps) ** 0.5 + beta[c]
    return out
