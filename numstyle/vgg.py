r"""VGG16 and VGG19 as a list of layers, from one table.

Layer names follow VGG: ``conv{b}_{i}`` is a convolution's output before its
ReLU, ``relu{b}_{i}`` after it, ``pool{b}`` after the block's 2x2 pooling.
(Caffe runs ReLU in place, so what the Gatys paper calls "conv4_2" is our
``relu4_2``.)

Notes
-----
The forward pass stops at the deepest layer a loss needs ("taps" it). The
backward pass computes only :math:`\partial L / \partial x`: VGG's weights are
constants (``trainable`` False), so no weight gradient is ever formed.
Gradients from several tapped layers are summed on the way down:

.. math::  \frac{\partial L}{\partial a_l} = \frac{\partial L_l}{\partial a_l}
           + \Big(\frac{\partial a_{l+1}}{\partial a_l}\Big)^{\!\top}
             \frac{\partial L}{\partial a_{l+1}}                                        \tag{V1}
"""
import numpy as np

from . import engine
from .backend import get_xp
from .errors import LayerError
from .layers import AvgPool2d, Conv2d, MaxPool2d, ReLU

BLOCKS = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}   # convolutions per block
CHANNELS = (64, 128, 256, 512, 512)                              # output channels per block
POOLS = {"avg": AvgPool2d, "max": MaxPool2d}


class VGG:
    """VGG's convolution stack up to the deepest layer that will be tapped.

    Parameters
    ----------
    params : dict
        ``{conv name: (w (F, C, 3, 3), b (F,))}`` (:mod:`numstyle.weights`), NumPy or CuPy.
    model : {'vgg16', 'vgg19'}
    pool : {'avg', 'max'}
    taps : iterable of str
        Every layer any later call will ask for, e.g. ``['relu4_2', 'relu1_1']``.
    """

    def __init__(self, params, model="vgg16", pool="avg", taps=()):
        check_layers(model, taps)
        order = layer_names(model)
        self.model, self.names = model, order[:order.index(deepest(model, taps)) + 1]
        self.layers = []
        for name in self.names:
            if name.startswith("conv"):
                layer = Conv2d(*params[name][:2], stride=1, pad=1)         # (CV1)
                layer.trainable = False  # constants: no (CV3), (CV4)
            elif name.startswith("relu"):
                layer = ReLU()
                layer.inplace = True     # its input is VGG's alone: forward copies conv taps
            else:
                layer = POOLS[pool](2)
            layer.name = name
            self.layers.append(engine.select(layer, get_xp(
                params["conv1_1"][0])))  # a fast path may stand in
        engine.rectify_in_place(self.layers, taps)  # fast: a convolution may do its ReLU too

    def forward(self, x, taps, keep_cache=True):
        r"""Run the layers up to the deepest of ``taps``; return their activations.

        Parameters
        ----------
        x : ndarray, shape (N, 3, H, W)
            Preprocessed image(s): BGR, Caffe mean subtracted (:mod:`numstyle.image`).
        taps : iterable of str
        keep_cache : bool
            False when no backward follows (the targets): each layer's
            input is then freed as soon as the next has read it.

        Returns
        -------
        feats : dict ``{name: ndarray (N, C_l, H_l, W_l)}``, shared with the cache: read-only.
        cache : list, for :meth:`backward` (empty when ``keep_cache`` is False)
        """
        taps, (H, W) = set(taps), x.shape[2:]
        feats, cache = {}, []
        for name, layer in zip(self.names, self.layers):
            if not taps - feats.keys():
                break
            if keep_cache:
                x, c = layer.forward(x)
                cache.append((layer, c))
            else:
                x = layer(x)                                                # inference
            if name in taps:     # the next layer may overwrite its input (a ReLU; inference): copy
                last = not taps - feats.keys() - {name}
                mine = last or (keep_cache and not name.startswith("conv"))
                feats[name] = x if mine else x.copy()
            if min(x.shape[2:]) < 1:
                raise LayerError(
                    f"image too small: {W}x{H} px leaves no pixels at {name}; use an image "
                    f"at least {min_input_size(self.model, taps)} px on its shorter side")
        return feats, cache

    def backward(self, dfeats, cache):
        r"""(V1): the gradient with respect to the input image.

        Parameters
        ----------
        dfeats : dict ``{name: dL/d(activation)}`` for the tapped layers (missing: zero); consumed:
            its arrays may be overwritten.
        cache : list from :meth:`forward`, consumed (each layer's entry is freed once used).

        Returns
        -------
        dx : ndarray, shape (N, 3, H, W)
        """
        dx = None
        while cache:
            layer, c = cache.pop()                                          # deepest layer first
            if layer.name in dfeats:                                # (V1): its own loss term
                if dx is None:
                    dx = dfeats[layer.name]
                else:
                    dx += dfeats[layer.name]                        # dx is ours: add in place
            if dx is not None:                                      # (else nothing above needs one)
                dx, _ = layer.backward(dx, c)
        return dx


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


def deepest(model, layers):
    """The deepest of ``layers`` in forward order: what ``upto`` below and in
    :func:`numstyle.weights.load_vgg` takes, so that no convolution past it is built or read
    (LayerError for a name that is not a layer of ``model``)."""
    check_layers(model, layers)
    return max(layers, key=layer_names(model).index)


def conv_shapes(model, width=None, in_channels=3, upto=None):
    """``{conv name: (F, C, 3, 3)}``; ``width`` overrides CHANNELS (tiny test nets); ``upto``: only
    the convolutions up to that layer (the deepest a run taps, e.g. ``'relu5_1'``)."""
    width = CHANNELS if width is None else width
    shapes, c = {}, in_channels
    for b, n in enumerate(_blocks(model)):
        for i in range(n):
            shapes[f"conv{b + 1}_{i + 1}"] = (width[b], c, 3, 3)
            c = width[b]
    if upto is not None:
        check_layers(model, [upto])
        order = layer_names(model)
        shapes = {name: s for name, s in shapes.items() if order.index(name) <= order.index(upto)}
    return shapes


def random_params(model, width=None, seed=0, dtype=np.float32, upto=None):
    """He-initialised weights with VGG's layer table, for tests and timing (``upto``: as
    :func:`conv_shapes`; the layers kept are the same arrays either way)."""
    rng = np.random.default_rng(seed)
    params = {}
    for name, (F, C, kh, kw) in conv_shapes(model, width, upto=upto).items():
        w = rng.standard_normal((F, C, kh, kw)) * np.sqrt(2.0 / (C * kh * kw))
        params[name] = (w.astype(dtype), (0.01 * rng.standard_normal(F)).astype(dtype))
    return params


# Peak bytes per input pixel of a forward pass without caches (a style image's Gram matrices,
# before any optimisation): the widest activations -- 64 channels at full size -- and their
# copies. Measured with tracemalloc at 256^2 and 512^2 (the slope), VGG16 and VGG19 alike.
FORWARD_BYTES_PER_PIXEL = 1100


def check_layers(model, layers):
    """Raise LayerError with one line if any name is not a layer of ``model``."""
    known = layer_names(model)
    for name in layers:
        if name not in known:
            raise LayerError(
                f"unknown layer {name!r} for {model}: use names like conv4_2, relu4_2, pool3 "
                f"(blocks 1-5; {model} has {'/'.join(map(str, _blocks(model)))} convs per block)")


def check_unique(layers, flag="--style-layers"):
    """Raise LayerError with one line if a layer is named twice (say how to weight it instead)."""
    seen = set()
    for name in layers:
        if name in seen:
            raise LayerError(f"{flag} names {name} twice: name each layer once (weight one "
                             "more with --style-layer-weights)")
        seen.add(name)


def pools_before(name):
    """How many 2x2 poolings come before layer ``name`` (conv4_2 -> 3, pool4 -> 4)."""
    block = int(name[4])
    return block if name.startswith("pool") else block - 1


def min_input_size(model, layers):
    """Smallest image side for which every layer in ``layers`` has at least 1x1 pixels."""
    check_layers(model, layers)
    return 2 ** max(pools_before(name) for name in layers)


def _blocks(model):
    if model not in BLOCKS:
        raise LayerError(f"unknown model {model!r}: use vgg16 or vgg19")
    return BLOCKS[model]
