r"""Johnson et al.'s image transformation networks: parameters, forward with caches, backward.

The style network of the paper's supplementary material (and, with another
layer list, the super-resolution network): reflection-padded convolutions,
normalisation + ReLU after every non-residual convolution except the last,
residual blocks, stride-2 convolutions down and stride-1/2 (transposed)
convolutions up -- or, with ``upsample='nearest'``, nearest-neighbour
up-sampling (U1) followed by a stride-1 convolution, which has no period-2
checkerboard, computed as four 2x2 convolutions of the small image
(:mod:`numstyle.ops.upsample`) -- and a scaled tanh output:

.. math::  \hat y = 127.5\, (\tanh(z) + 1) \in [0, 255]                        \tag{J1}

A residual block adds its input to two convolutions (no ReLU after the sum):

.. math::  r(x) = x + \mathrm{norm}(\mathrm{conv}(\mathrm{relu}(\mathrm{norm}(\mathrm{conv}(x)))))   \tag{J2}

so its backward sends the upstream gradient both straight through and down
the two convolutions, and adds the two:  :math:`dx = dr + J_{\mathrm{branch}}^\top dr`.

The network's input is the RGB photo scaled to [-1, 1]; its output is RGB in
0..255 (J1), fully convolutional: any size in, the same size out.
"""
import numpy as np

from .backend import get_xp
from .ops.activations import relu_backward, relu_forward, tanh_backward, tanh_forward
from .ops.conv import conv2d_backward, conv2d_forward, conv_transpose2d_backward, conv_transpose2d_forward
from .ops.norm import norm_backward, norm_forward, norm_inference
from .ops.pad import reflect_pad_backward, reflect_pad_forward
from .ops.upsample import resize_conv_backward, resize_conv_forward
from .ops.winograd import transform_kernel, winograd_conv3x3_valid
from .ops.winograd_kernels import available


UPSAMPLING = {"transposed": "up", "nearest": "resize"}    # --upsample -> the layer kind of each x2 step


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


def init_params(spec, seed=0, dtype=np.float32):
    """He-initialised parameters in one flat dict: ``'c1.w', 'c1.gamma', 'c1.beta', 'r1.1.w', ..., 'c4.b'``."""
    rng = np.random.default_rng(seed)
    params = {}

    def conv(name, cin, cout, k, transposed=False, norm=True):
        shape = (cin, cout, k, k) if transposed else (cout, cin, k, k)   # transposed: laid out as the conv it inverts
        params[f"{name}.w"] = (rng.standard_normal(shape) * np.sqrt(2.0 / (cin * k * k))).astype(dtype)
        if not norm:                  # a bias before a normalisation is cancelled by its mean: only the last conv has one
            params[f"{name}.b"] = np.zeros(cout, dtype)
        else:
            params[f"{name}.gamma"] = np.ones(cout, dtype)
            params[f"{name}.beta"] = np.zeros(cout, dtype)

    for layer in spec:
        kind, name = layer[:2]
        if kind == "conv":
            conv(name, *layer[2:5])
        elif kind == "res":
            conv(f"{name}.1", layer[2], layer[2], 3)
            conv(f"{name}.2", layer[2], layer[2], 3)
        elif kind == "up":
            conv(name, layer[2], layer[3], 3, transposed=True)
        elif kind == "resize":
            conv(name, layer[2], layer[3], 3)
        else:
            conv(name, *layer[2:5], norm=False)
            params[f"{name}.w"] *= 0.1                                     # start near mid-grey output
    return params


def init_state(params, norm):
    """Batch norm running statistics ``{'c1.mean': (C,), 'c1.var': (C,), ...}``; empty for instance norm."""
    if norm != "batch":
        return {}
    state = {}
    for key, gamma in params.items():
        if key.endswith(".gamma"):
            base = key[:-len(".gamma")]
            state[base] = {"mean": np.zeros_like(gamma), "var": np.ones_like(gamma)}
    return state


def prepare_inference(params, spec):
    """Parameters for stylising/upscaling only: each residual block's 3x3 kernels get their Winograd transform.

    Returns a new dict with ``'<name>.w_hat'`` (W2) beside ``'<name>.w'``; the
    inference forward then runs those convolutions by Winograd F(2x2, 3x3)
    on the reflection-padded input (:func:`~numstyle.ops.winograd.winograd_conv3x3_valid`).
    Made once per model: the weights must not change afterwards (training
    uses the plain dict). On a GPU only with the fused kernels (without them
    the transforms' many small steps cost more launches than the GEMMs save).
    """
    prepared = dict(params)
    if not available(get_xp(*params.values())):
        return prepared
    for layer in spec:                           # (resize layers run 2x2 convolutions (U4): no Winograd)
        if layer[0] == "res":
            for conv in (f"{layer[1]}.1", f"{layer[1]}.2"):
                prepared[f"{conv}.w_hat"] = transform_kernel(params[f"{conv}.w"])    # (alpha^2, F, C)   (W2)
    return prepared


def to_input(rgb):
    """Photos (N, 3, H, W) RGB 0..255 -> the network's input scale [-1, 1]."""
    return rgb * (1.0 / 127.5) - 1.0


def transformer_forward(params, x, spec, norm="instance", train=True, state=None, keep_caches=True):
    r"""Run the network.

    Parameters
    ----------
    params : dict of ndarray
    x : ndarray, shape (N, 3, H, W)
        Input in [-1, 1] (:func:`to_input`).
    spec : list
        From :func:`style_spec` or :func:`sr_spec`.
    norm : {'instance', 'batch'}
    train : bool
        Batch norm: batch statistics (and update ``state``) or running averages.
    state : dict, optional
        Batch norm running statistics from :func:`init_state`. With instance
        norm, when given, it receives each layer's statistics of this (single)
        image: tiled stylising (:mod:`numstyle.tiles`) reuses them on every tile.
    keep_caches : bool
        False for inference: nothing is kept for a backward pass, so each
        layer's intermediates are freed as soon as the next layer has run.

    Returns
    -------
    y : ndarray, shape (N, 3, H', W')
        RGB in 0..255 (J1); ``H' = H`` for the style network, ``scale * H`` for SR.
    caches : list (empty when ``keep_caches`` is False)
    """
    caches = [] if keep_caches else _Discard()
    h = x
    H, W = x.shape[2:]
    for layer in spec:
        kind, name = layer[:2]
        if kind == "conv":
            h = _conv_block(params, name, h, layer[4], layer[5], norm, train, state, caches)
        elif kind == "res":
            h0 = h
            h = _conv_block(params, f"{name}.1", h, 3, 1, norm, train, state, caches)
            h = _conv_block(params, f"{name}.2", h, 3, 1, norm, train, state, caches, relu=False)
            h = h0 + h                                                      # (J2)
            caches.append(("res", name, None))
        elif kind == "up":
            h, cache = conv_transpose2d_forward(h, params[f"{name}.w"], None, 2, 1, 1)   # (T1)
            caches.append(("upconv", name, cache))
            h = _norm_relu(params, name, h, norm, train, state, caches)
        elif kind == "resize":                                              # (U1), (RP1), (CV1) as four
            h, cache = resize_conv_forward(h, params[f"{name}.w"])         # 2x2 convolutions: (U3), (U4)
            caches.append(("resize", name, cache))
            h = _norm_relu(params, name, h, norm, train, state, caches)
        else:
            h = _conv_block(params, name, h, layer[4], 1, None, train, state, caches, relu=False)
            h, cache = tanh_forward(h)                                      # (J1)
            caches.append(("tanh", name, cache))
            h = 127.5 * (h + 1.0)                                           # (J1)
    out_h, out_w = _out_size(spec, H, W)
    if h.shape[2:] != (out_h, out_w):                                       # sizes not a multiple of 4: up-sampling overshoots
        caches.append(("crop", "out", h.shape))
        h = h[:, :, :out_h, :out_w]
    return h, (caches if keep_caches else [])


class _Discard(list):
    """A cache list that keeps nothing (inference)."""

    def append(self, item):
        pass


def transformer_backward(dy, caches, input_grad=True):
    r"""Gradients of every parameter, given ``dL/dy`` of the network's output.

    Parameters
    ----------
    input_grad : bool
        Also return the gradient with respect to the input image (training
        does not need it: the first convolution then skips its input gradient).

    Returns
    -------
    grads : dict, the keys of ``params``
    dx : ndarray or None, gradient with respect to the network's input
    """
    grads = {}
    dh = dy
    res_stack = []                                                          # upstream gradients at residual sums
    for kind, name, cache in reversed(caches):
        if kind == "crop":
            full = get_xp(dh).zeros(cache, dtype=dh.dtype)                  # the cropped pixels had no effect
            full[:, :, :dh.shape[2], :dh.shape[3]] = dh
            dh = full
        elif kind == "tanh":
            dh = tanh_backward(127.5 * dh, cache)                           # (J1), (R2)
        elif kind == "res":
            res_stack.append(dh)                                            # (J2): the skip path keeps dh
        elif kind in ("conv", "conv+b"):
            skip = not input_grad and cache is caches[1][2]                 # the first conv: no input gradient needed
            dh, grads[f"{name}.w"], db = conv2d_backward(dh, cache, input_grad=not skip)    # (CV2)-(CV4)
            if kind == "conv+b":
                grads[f"{name}.b"] = db
        elif kind == "upconv":
            dh, grads[f"{name}.w"], _ = conv_transpose2d_backward(dh, cache)    # (T2)
        elif kind == "resize":
            dh, grads[f"{name}.w"] = resize_conv_backward(dh, cache)        # (U5)
        elif kind == "pad":
            if dh is None:                                                  # before the first conv: nothing to do
                continue
            dh = reflect_pad_backward(dh, cache)                            # (RP2)
            if name.endswith(".1") and res_stack:                          # first conv of a residual block:
                dh = dh + res_stack.pop()                                   # (J2) branch + skip
        elif kind == "norm":
            dh, grads[f"{name}.gamma"], grads[f"{name}.beta"] = norm_backward(dh, cache)   # (N2), (N3)
        elif kind == "relu":
            dh = relu_backward(dh, cache)                                   # (R1)
    return grads, dh


def _conv_block(params, name, h, k, stride, norm, train, state, caches, relu=True):
    """Reflection pad -> conv -> (norm -> relu)."""
    h, cache = reflect_pad_forward(h, k // 2)                               # (RP1)
    caches.append(("pad", name, cache))
    b = params.get(f"{name}.b")
    w_hat = params.get(f"{name}.w_hat")                                     # prepare_inference's, residual blocks
    if w_hat is not None and isinstance(caches, _Discard):
        h = winograd_conv3x3_valid(h, w_hat, b)                             # (W3)-(W5): inference only
    else:
        h, cache = conv2d_forward(h, params[f"{name}.w"], b, stride, 0)    # (CV1)
        caches.append(("conv" if b is None else "conv+b", name, cache))
    if norm is None:
        return h
    return _norm_relu(params, name, h, norm, train, state, caches, relu)


def _norm_relu(params, name, h, norm, train, state, caches, relu=True):
    running = state.get(name) if state is not None else None
    if isinstance(caches, _Discard) and not train:                          # inference: fused, in place
        return norm_inference(h, params[f"{name}.gamma"], params[f"{name}.beta"], norm, running=running, relu=relu)
    h, cache = norm_forward(h, params[f"{name}.gamma"], params[f"{name}.beta"], norm, running=running, train=train)
    caches.append(("norm", name, cache))                                    # (N1)
    if relu:
        h, cache = relu_forward(h)                                          # (R1)
        caches.append(("relu", name, cache))
    return h


def _out_size(spec, H, W):
    """Output size: the input's, times 2 per up-sampling layer beyond the down-sampling ones."""
    downs = sum(1 for layer in spec if layer[0] == "conv" and layer[5] == 2)
    ups = sum(1 for layer in spec if layer[0] in UPSAMPLING.values())
    return H * 2 ** (ups - downs), W * 2 ** (ups - downs)


def param_count(params):
    return int(sum(v.size for v in params.values()))


def cast_params(params, dtype=np.float32, device_array=None):
    xp = get_xp(device_array) if device_array is not None else np
    return {k: xp.asarray(v, dtype=dtype) for k, v in params.items()}
