r"""Johnson et al.'s image transformation networks: parameters, forward with caches, backward.

The style network of the paper's supplementary material (and, with another
layer list, the super-resolution network): reflection-padded convolutions,
normalisation + ReLU after every non-residual convolution except the last,
residual blocks, stride-2 convolutions down and stride-1/2 (transposed)
convolutions up -- or, with ``upsample='nearest'``, nearest-neighbour
up-sampling (U1) followed by a stride-1 convolution, which has no period-2
checkerboard (the fast path computes it as four 2x2 convolutions of the small
image, :mod:`numstyle.fast.upsample`) -- and a scaled tanh output:

.. math::  \hat y = 127.5\, (\tanh(z) + 1) \in [0, 255]                        \tag{J1}

A residual block adds its input to two convolutions (no ReLU after the sum):

.. math::  r(x) = x
           + \mathrm{norm}(\mathrm{conv}(\mathrm{relu}(\mathrm{norm}(\mathrm{conv}(x)))))  \tag{J2}

so its backward sends the upstream gradient both straight through and down
the two convolutions, and adds the two:  :math:`dx = dr + J_{\mathrm{branch}}^\top dr`.

The network's input is the RGB photo scaled to [-1, 1]; its output is RGB in
0..255 (J1), fully convolutional: any size in, the same size out.

A network is described by a *spec*, a list of tuples, one per block, each
``(kind, name, *args)``:

- ``("conv", name, cin, cout, k, stride)``: reflection pad, convolution, norm, ReLU;
- ``("res", name, c)``: a residual block (J2) of two 3x3 convolutions on ``c`` channels;
- ``("up", name, cin, cout)``: a 3x3 transposed convolution of stride 2 (T1), norm, ReLU;
- ``("resize", name, cin, cout)``: nearest up-sampling x2 and a 3x3 convolution (U1), norm, ReLU;
- ``("out", name, cin, cout, k)``: reflection pad, convolution with a bias, scaled tanh (J1).
"""
import numpy as np

from . import engine
from .backend import get_xp
from .layers import Conv2d, ReLU, Residual, Sequential
from .transformer_layers import (ConditionalNorm, ConvTranspose2d, Crop, Norm, ReflectionPad2d,
                                 ScaledTanh, UpsampleConv)

UPSAMPLING = {
    "transposed": "up",
    "nearest": "resize"
}  # --upsample -> the layer kind of each x2 step


def style_spec(width=(32, 64, 128), n_res=5, upsample="transposed"):
    """Layer list of the style transfer network (Johnson et al., supplementary Table 1).

    ``upsample``: 'transposed' (the paper's stride-1/2 convolutions, (T1)) or
    'nearest' (up-sampling (U1), then a 3x3 stride-1 convolution).
    """
    a, b, c = width
    up = UPSAMPLING[upsample]
    return ([("conv", "c1", 3, a, 9, 1), ("conv", "c2", a, b, 3, 2), ("conv", "c3", b, c, 3, 2)]
            + [("res", f"r{i + 1}", c) for i in range(n_res)]
            + [(up, "u1", c, b), (up, "u2", b, a), ("out", "c4", a, 3, 9)])


def sr_spec(scale=4, width=64, n_res=4, upsample="transposed"):
    """Layer list of the super-resolution network: log2(scale) upsampling layers."""
    n_up = int(np.log2(scale))
    if 2 ** n_up != scale:
        raise ValueError(f"scale must be a power of two, got {scale}")
    up = UPSAMPLING[upsample]
    return ([("conv", "c1", 3, width, 9, 1)] + [("res", f"r{i + 1}", width) for i in range(n_res)]
            + [(up, f"u{i + 1}", width, width) for i in range(n_up)] + [("out", "c2", width, 3, 9)])


def init_params(spec, seed=0, dtype=np.float32, styles=0):
    """He-initialised parameters in one flat dict: ``'c1.w', 'c1.gamma', 'c1.beta', 'r1.1.w', ...,
    'c4.b'``.

    ``styles``: 0 for a network of one style, each ``gamma``, ``beta`` of shape (C,); S >= 1 for
    a conditional network (:class:`~numstyle.transformer_layers.ConditionalNorm`), (S, C).
    """
    rng = np.random.default_rng(seed)
    params = {}
    norm_shape = (lambda c: (styles, c)) if styles else (lambda c: (c,))

    def conv(name, cin, cout, k, transposed=False, norm=True):
        # a transposed convolution is laid out as the convolution it is the adjoint of
        shape = (cin, cout, k, k) if transposed else (cout, cin, k, k)
        he = np.sqrt(2.0 / (cin * k * k))
        params[f"{name}.w"] = (rng.standard_normal(shape) * he).astype(dtype)
        # a bias before a normalisation is cancelled by its mean: only the last conv has one
        if not norm:
            params[f"{name}.b"] = np.zeros(cout, dtype)
        else:
            params[f"{name}.gamma"] = np.ones(norm_shape(cout), dtype)
            params[f"{name}.beta"] = np.zeros(norm_shape(cout), dtype)

    for kind, name, *args in spec:        # the spec's formats: the module docstring
        if kind == "conv":
            cin, cout, k, _ = args
            conv(name, cin, cout, k)
        elif kind == "res":
            c, = args
            conv(f"{name}.1", c, c, 3)
            conv(f"{name}.2", c, c, 3)
        elif kind == "up":
            cin, cout = args
            conv(name, cin, cout, 3, transposed=True)
        elif kind == "resize":
            cin, cout = args
            conv(name, cin, cout, 3)
        else:
            cin, cout, k = args
            conv(name, cin, cout, k, norm=False)
            params[f"{name}.w"] *= 0.1  # start near mid-grey output
    return params


def init_state(params, norm):
    """Batch norm running statistics ``{'c1': {'mean': (C,), 'var': (C,)}, ...}``, one entry per
    normalised layer; empty for instance norm."""
    if norm != "batch":
        return {}
    state = {}
    for key, gamma in params.items():
        if key.endswith(".gamma"):
            base = key[:-len(".gamma")]
            state[base] = {"mean": np.zeros_like(gamma), "var": np.ones_like(gamma)}
    return state


def to_input(rgb):
    """Photos (N, 3, H, W) RGB 0..255 -> the network's input scale [-1, 1]."""
    return rgb * (1.0 / 127.5) - 1.0


def build(params, spec, norm="instance", train=True, state=None, trainable=True, size=None,
          mix=None, frozen_convs=False):
    """The network of ``spec`` as one :class:`~numstyle.layers.Sequential`, over ``params``' arrays.

    Parameters
    ----------
    params : dict of ndarray
        ``'c1.w', 'c1.gamma', ...`` from :func:`init_params` (or a model file).
    norm : {'instance', 'batch'}
    train : bool
        Batch norm: the batch's statistics (and update ``state``), or the running ones.
    state : dict, optional
        Batch norm's running statistics (:func:`init_state`); with instance norm, when
        given, it receives each layer's statistics of this (single) image (tiled stylising).
    trainable : bool
        False for inference: no parameter gradients, so the fast paths may
        precompute from the weights (Winograd's kernels for the residual blocks).
    size : (H, W), optional
        The input's size: adds a crop when the up-sampling overshoots it (sizes not a
        multiple of 4).
    mix : ndarray, shape (S,), optional
        A conditional network's (``gamma`` (S, C)) style weights (N4): one-hot for one style.
        Training builds :class:`~numstyle.transformer_layers.ConditionalNorm` layers;
        inference plain :class:`~numstyle.transformer_layers.Norm` layers of the mixed pairs.
    frozen_convs : bool
        Training only the norms' ``gamma``, ``beta`` (a style added to a trained network): the
        convolutions' weights are constants, with no gradient.

    Built anew for each step of a training (Adam replaces the arrays); each
    layer may be replaced by a registered fast path (:func:`numstyle.engine.select`).
    """
    xp = get_xp(*params.values())
    if mix is not None:
        mix = xp.asarray(mix, dtype=params["c1.w"].dtype)

    def conv(name, k, stride=1, bias=False):
        layer = Conv2d(params[f"{name}.w"], params[f"{name}.b"] if bias else None, stride, 0)
        return [ReflectionPad2d(k // 2), named(layer, name, conv=True)]            # (RP1), (CV1)

    def norm_relu(name, relu=True):
        running = state.get(name) if state is not None else None
        gamma, beta = params[f"{name}.gamma"], params[f"{name}.beta"]
        if gamma.ndim == 1:
            layer = Norm(gamma, beta, norm, running, train)                         # (N1)
        elif trainable:
            layer = ConditionalNorm(gamma, beta, mix, norm, running, train)         # (N4), (N1)
        else:  # inference: the mixed pair is a constant: (S,) @ (S, C) -> (C,)     (N4)
            layer = Norm(mix @ gamma, mix @ beta, norm, running, train)
        layer = named(layer, name)
        return [layer, ReLU()] if relu else [layer]                                 # (N1), (R1)

    def named(layer, name, conv=False):
        layer.name, layer.trainable = name, trainable and not (conv and frozen_convs)
        return layer

    layers = []
    for kind, name, *args in spec:        # the spec's formats: the module docstring
        if kind == "conv":
            _, _, k, stride = args
            layers += conv(name, k, stride) + norm_relu(name)
        elif kind == "res":                                                         # (J2)
            a, b = f"{name}.1", f"{name}.2"
            branch = conv(a, 3) + norm_relu(a) + conv(b, 3) + norm_relu(b, relu=False)
            layers.append(Residual(Sequential(branch)))
        elif kind == "up":
            up = ConvTranspose2d(params[f"{name}.w"], 2, 1, 1)                        # (T1)
            layers += [named(up, name, conv=True)] + norm_relu(name)
        elif kind == "resize":
            up = UpsampleConv(params[f"{name}.w"])                       # (U1), (RP1), (CV1)
            layers += [named(up, name, conv=True)] + norm_relu(name)
        else:
            _, _, k = args
            layers += conv(name, k, bias=True) + [ScaledTanh()]                       # (J1)
    if size is not None and _out_size(spec, *size) != _grown_size(spec, *size):
        layers.append(Crop(*_out_size(spec, *size)))  # up-sampling overshot
    return engine.select(Sequential(layers), xp)  # fast paths may stand in for each layer


def transformer_forward(params, x, spec, norm="instance", train=True, state=None, keep_caches=True,
                        mix=None, frozen_convs=False, progress=False):
    r"""Build the network (:func:`build`) and run it on ``x``.

    Parameters
    ----------
    x : ndarray, shape (N, 3, H, W)
        Input in [-1, 1] (:func:`to_input`).
    keep_caches : bool
        False for inference: nothing is kept for a backward pass (and no
        parameter gradient will be asked for), so each layer's intermediates
        are freed as soon as the next layer has run.
    mix, frozen_convs : as :func:`build`'s.
    progress : bool
        Inference only: a bar over the layers, shown once a pass has taken a second (a large
        image's pass takes minutes).

    Returns
    -------
    y : ndarray, shape (N, 3, H', W')
        RGB in 0..255 (J1); ``H' = H`` for the style network, ``scale * H`` for SR.
    cache : ``(network, its cache)`` for :func:`transformer_backward`
        ``[]`` when not ``keep_caches``.
    """
    net = build(params, spec, norm, train, state, trainable=keep_caches, size=x.shape[2:], mix=mix,
                frozen_convs=frozen_convs)
    if not keep_caches:
        from tqdm import tqdm

        for layer in tqdm(net.layers, desc="layers", unit="layer", leave=False, delay=1,
                          disable=not progress):
            x = layer(x)                        # net(x), one layer at a time
        return x, []
    y, cache = net.forward(x)
    return y, (net, cache)


def transformer_backward(dy, cache, input_grad=True):
    r"""Gradients of every parameter, given ``dL/dy`` of the network's output.

    Parameters
    ----------
    cache : from :func:`transformer_forward`, consumed.
    input_grad : bool
        Also return the gradient with respect to the input image (training
        does not need it: the first convolution then skips its input gradient).

    Returns
    -------
    grads : dict, the keys of ``params``
    dx : ndarray or None, gradient with respect to the network's input
    """
    net, caches = cache
    net.layers[1].input_grad = input_grad            # the first convolution, after its padding
    dx, grads = net.backward(dy, caches)
    return grads, dx


def _out_size(spec, H, W):
    """Output size: the input's, times ``2 ** (ups - downs)`` -- what each layer's arithmetic gives
    only when H and W are multiples of ``2 ** downs``."""
    downs = sum(1 for layer in spec if layer[0] == "conv" and layer[5] == 2)
    ups = sum(1 for layer in spec if layer[0] in UPSAMPLING.values())
    return H * 2 ** (ups - downs), W * 2 ** (ups - downs)


def _grown_size(spec, H, W):
    """What the layers give: each stride-2 convolution (k 3, pad 1) rounds up, each up-sampling
    doubles."""
    for layer in spec:
        if layer[0] == "conv" and layer[5] == 2:
            H, W = (H + 1) // 2, (W + 1) // 2
        elif layer[0] in UPSAMPLING.values():
            H, W = 2 * H, 2 * W
    return H, W


def smallest_input(spec):
    """The least side, px, an input needs for every reflection padding of ``spec`` to have more
    pixels than it pads (RP1): the first 9x9 convolution's 4 at full size, the residual blocks'
    1 at a quarter."""
    def fits(side):
        for kind, _, *args in spec:
            if kind in ("conv", "out"):
                k, stride = args[2], (args[3] if kind == "conv" else 1)
                if side <= k // 2:
                    return False
                side = (side + 2 * (k // 2) - k) // stride + 1
            elif kind == "res" and side <= 1:
                return False
            elif kind in UPSAMPLING.values():
                side *= 2
        return True

    side = 1
    while not fits(side):
        side += 1
    return side
