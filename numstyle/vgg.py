r"""VGG16 and VGG19 convolution stacks from one layer table.

Layer names follow VGG: ``conv{b}_{i}`` is the convolution's output before
its ReLU, ``relu{b}_{i}`` after it, ``pool{b}`` after the block's 2x2 pooling.
(Caffe runs ReLU in place, so what the Gatys paper calls "conv4_2" is our
``relu4_2``.)

Notes
-----
The forward pass stops at the deepest layer any loss needs. The backward pass
only computes :math:`\partial L / \partial x` (CV2 or CV5, W6, R1, P1/P2): VGG's weights
are constants, so no weight gradient is ever formed. Gradients from several
tapped layers are summed on the way down:

.. math::  \frac{\partial L}{\partial a_l} = \frac{\partial L_l}{\partial a_l}
           + \Big(\frac{\partial a_{l+1}}{\partial a_l}\Big)^{\!\top} \frac{\partial L}{\partial a_{l+1}}   \tag{V1}
"""
import time

import numpy as np

from .backend import get_xp
from .errors import LayerError
from .ops.activations import relu_backward, relu_forward
from .ops.conv import conv2d_backward, conv2d_forward
from .ops.pool import avg_pool_backward, avg_pool_forward, max_pool_backward, max_pool_forward
from .ops.winograd import transform_kernel, winograd_conv3x3_backward, winograd_conv3x3_forward
from .ops.winograd_kernels import available

BLOCKS = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}   # convolutions per block
CHANNELS = (64, 128, 256, 512, 512)                              # output channels per block
POOLS = {"avg": (avg_pool_forward, avg_pool_backward), "max": (max_pool_forward, max_pool_backward)}
# Winograd F(2x2, 3x3) pays where the GEMMs dominate its transforms: layers with
# at least this many input channels (measured: docs/benchmarks.md). On NumPy only:
# on a GPU every step of its transforms is a kernel launch (about 200 per
# convolution, against 3 for im2col + one cuBLAS GEMM), see docs/gpu.md.
WINOGRAD_MIN_CHANNELS = 64


def conv_names(model):
    """Convolution names in order: ['conv1_1', 'conv1_2', 'conv2_1', ...]."""
    return [f"conv{b + 1}_{i + 1}" for b, n in enumerate(_blocks(model)) for i in range(n)]


def layer_names(model):
    """Every tappable layer in forward order: conv, relu, ..., pool, per block."""
    names = []
    for b, n in enumerate(_blocks(model)):
        for i in range(n):
            names += [f"conv{b + 1}_{i + 1}", f"relu{b + 1}_{i + 1}"]
        names.append(f"pool{b + 1}")
    return names


def conv_shapes(model, width=None, in_channels=3):
    """``{conv name: (F, C, 3, 3)}``; ``width`` overrides CHANNELS (tiny test nets)."""
    width = CHANNELS if width is None else width
    shapes, c = {}, in_channels
    for b, n in enumerate(_blocks(model)):
        for i in range(n):
            shapes[f"conv{b + 1}_{i + 1}"] = (width[b], c, 3, 3)
            c = width[b]
    return shapes


def random_params(model, width=None, seed=0, dtype=np.float32):
    """He-initialised weights with VGG's layer table, for tests and timing."""
    rng = np.random.default_rng(seed)
    params = {}
    for name, (F, C, kh, kw) in conv_shapes(model, width).items():
        w = rng.standard_normal((F, C, kh, kw)) * np.sqrt(2.0 / (C * kh * kw))
        params[name] = (w.astype(dtype), (0.01 * rng.standard_normal(F)).astype(dtype))
    return params


def check_layers(model, layers):
    """Raise LayerError with one line if any name is not a layer of ``model``."""
    known = layer_names(model)
    for name in layers:
        if name not in known:
            raise LayerError(f"unknown layer {name!r} for {model}: use names like conv4_2, relu4_2, pool3 "
                             f"(blocks 1-5; {model} has {'/'.join(map(str, _blocks(model)))} convs per block)")


def pools_before(name):
    """How many 2x2 poolings come before layer ``name`` (conv4_2 -> 3, pool4 -> 4)."""
    block = int(name[4])
    return block if name.startswith("pool") else block - 1


def min_input_size(model, layers):
    """Smallest image side for which every layer in ``layers`` has at least 1x1 pixels."""
    check_layers(model, layers)
    return 2 ** max(pools_before(name) for name in layers)


def prepare(params):
    """Add the Winograd-transformed kernel (W2) to each conv that will use it.

    For constant weights (Gatys): computed once here instead of on every
    evaluation. Returns ``{name: (w, b, w_hat or None)}``.
    """
    return {name: (w, b, transform_kernel(w) if uses_winograd(w) else None)
            for name, (w, b, *_) in params.items()}


def uses_winograd(w):
    """Whether a (F, C, 3, 3) kernel runs through Winograd F(2x2, 3x3) rather than im2col
    (NumPy, or a GPU with the fused kernels: ``winograd_kernels.available``)."""
    return w.shape[1] >= WINOGRAD_MIN_CHANNELS and w.shape[2:] == (3, 3) and available(get_xp(w))


def features_forward(params, x, layers, model="vgg16", pool="avg", timings=None, keep_caches=True):
    r"""Run VGG up to the deepest of ``layers``; return their activations.

    Parameters
    ----------
    params : dict
        ``{conv name: (w (F, C, 3, 3), b (F,))}`` from :mod:`numstyle.weights`,
        or the ``(w, b, w_hat)`` entries of :func:`prepare`.
    x : ndarray, shape (N, 3, H, W)
        Preprocessed image(s): BGR, Caffe mean subtracted (:mod:`numstyle.image`).
    layers : iterable of str
        Names to return, e.g. ``['relu4_2', 'relu1_1']``.
    pool : {'avg', 'max'}
    timings : dict, optional
        When given, seconds spent in each layer are added to ``timings[(name, 'forward')]``
        (for ``numstyle bench gatys --layers``).
    keep_caches : bool
        False when no backward follows (content and style targets): each
        activation is then freed as soon as the next layer has read it.

    Returns
    -------
    feats : dict
        ``{name: ndarray (N, C_l, H_l, W_l)}``. Treat as read-only: they are
        shared with the caches.
    caches : list
        ``(kind, name, cache)`` in forward order, for :func:`features_backward`
        (empty with ``keep_caches=False``).
    """
    layers = list(layers)
    check_layers(model, layers)
    order = layer_names(model)
    last = max(order.index(name) for name in layers)
    pool_forward = POOLS[pool][0]
    feats, caches, h = {}, [], x
    for name in order[:last + 1]:
        kind, t0 = name[:4], time.perf_counter()
        if kind == "conv":
            w, b, *w_hat = params[name]
            if uses_winograd(w):
                h, cache = winograd_conv3x3_forward(h, w, b, *w_hat)        # (W1)-(W5)
                kind = "wino"
            else:
                h, cache = conv2d_forward(h, w, b, stride=1, pad=1)         # (CV1)
            if name in layers:
                feats[name] = h.copy()   # the ReLU below overwrites h in place
        elif kind == "relu":
            h, cache = relu_forward(h, inplace=True)
        else:
            h, cache = pool_forward(h)
        if keep_caches:
            caches.append((kind, name, cache))
        if name in layers and kind not in ("conv", "wino"):
            feats[name] = h
        if timings is not None:
            _add_time(timings, (name, "forward"), t0, h)
        if min(h.shape[2:]) < 1:
            raise LayerError(f"image too small: {x.shape[3]}x{x.shape[2]} px leaves no pixels at {name}; "
                             f"use an image at least {min_input_size(model, layers)} px on its shorter side")
    return feats, caches


def features_backward(dfeats, caches, pool="avg", timings=None):
    r"""Gradient of the loss with respect to the input image (V1).

    Parameters
    ----------
    dfeats : dict
        ``{name: dL/d(activation)}`` for every tapped layer (missing = zero).
        Consumed: the dict is emptied and the arrays may be overwritten.
    caches : list from :func:`features_forward`
        Consumed: emptied from the end, so that each layer's activations are
        freed as soon as its backward has run (the peak memory is that of
        the forward, not forward plus backward).
    timings : dict, optional
        As in :func:`features_forward`, keyed ``(name, 'backward')``.

    Returns
    -------
    dx : ndarray, shape (N, 3, H, W)
    """
    pool_backward = POOLS[pool][1]
    dh = None
    while caches:
        kind, name, cache = caches.pop()                              # deepest layer first
        if name in dfeats:                                            # (V1): add this layer's own loss gradient
            dfeat = dfeats.pop(name)
            dh = dfeat if dh is None else _add(dh, dfeat)
        if dh is None:                                                # nothing above this layer needs a gradient
            continue
        t0 = time.perf_counter()
        if kind == "conv":
            dh, _, _ = conv2d_backward(dh, cache, weight_grad=False)  # (CV2) only
        elif kind == "wino":
            dh, _, _ = winograd_conv3x3_backward(dh, cache, weight_grad=False)   # (W6) only
        elif kind == "relu":
            dh = relu_backward(dh, cache, inplace=True)               # (R1)
        else:
            dh = pool_backward(dh, cache)                             # (P1) / (P2)
        if timings is not None:
            _add_time(timings, (name, "backward"), t0, dh)
    return dh


def _add(dh, g):
    dh += g
    return dh


def _add_time(timings, key, t0, result):
    """Accumulate wall time of one layer; on a GPU, wait for its kernels first."""
    from .backend import synchronize

    synchronize(result)
    timings[key] = timings.get(key, 0.0) + time.perf_counter() - t0


def _blocks(model):
    if model not in BLOCKS:
        raise LayerError(f"unknown model {model!r}: use vgg16 or vgg19")
    return BLOCKS[model]
