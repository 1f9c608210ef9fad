r"""Gatys et al. style transfer: optimise an image's pixels.

``make_objective`` builds ``f(x) -> (loss, grad)`` from VGG weights, a content
image and style images; ``optimize`` drives it with SciPy's L-BFGS-B (or our
projected L-BFGS, or Adam) within the pixel bounds.

Notes
-----
.. math::  L_{\mathrm{total}}(x) = \alpha\, L_{\mathrm{content}}(x) + \beta \sum_l w_l E_l(x)
           + \lambda\, L_{\mathrm{TV}}(x)                                         \tag{G1}

Its gradient is the sum of each term's gradient at its layer (C2, S5), pushed
down to the pixels by one backward pass through VGG (V1), plus (TV2).
Content reconstruction is :math:`\beta = 0`; texture synthesis :math:`\alpha = 0`.
"""
import time

import numpy as np

from . import engine, lbfgs
from .backend import get_xp, to_device, to_floats, to_host
from .config import GATYS
from .errors import NonFiniteLossError, NumstyleError
from .image import pixel_bounds
from .optim import adam
from .vgg import VGG, check_layers, check_unique, min_input_size, pools_before


class Objective:
    r"""The Gatys loss (G1) as a callable ``f(x) -> (loss, grad)``; built by :func:`make_objective`.

    Attributes
    ----------
    shape : tuple (1, 3, H, W)
        Shape of the image being optimised.
    last : dict
        Weighted terms of the latest call: ``total``, ``content``, ``style``, ``tv``.
    evaluations : int
        Number of calls so far.
    """

    def __init__(self, net, shape, content_layer, style_layers, style_layer_weights, content_weight,
                 style_weight, tv_weight, content_target, style_targets, losses):
        self.net, self.shape, self.losses = net, tuple(shape), losses
        self.content_layer, self.style_layers = content_layer, list(style_layers)
        self.style_layer_weights = list(style_layer_weights)
        self.content_weight, self.style_weight = content_weight, style_weight
        self.tv_weight = tv_weight
        self.content_target, self.style_targets = content_target, style_targets
        self.xp = get_xp(*[t for t in [content_target, *style_targets.values()] if t is not None])
        self.layers = ([content_layer] if content_target is not None else []) + \
                      (self.style_layers if style_targets else [])
        self.last, self.evaluations = {}, 0

    def __call__(self, x):
        """Loss (G1) and its gradient with respect to ``x`` (1, 3, H, W)."""
        L = self.losses  # numstyle.losses, or a fast drop-in
        feats, cache = self.net.forward(x, self.layers)                # VGG up to the deepest layer
        parts, dfeats = {"content": 0.0, "style": 0.0, "tv": 0.0}, {}
        if self.content_target is not None:
            loss, dF = L.content_loss(feats[self.content_layer], self.content_target,
                                      self.content_weight)             # alpha (C1), (C2)
            parts["content"] = loss
            dfeats[self.content_layer] = dF
        for name, w_l in zip(self.style_layers, self.style_layer_weights):
            if not self.style_targets:
                break
            loss, dF = L.style_layer_loss(feats.pop(name), self.style_targets[name],
                                          self.style_weight * w_l)     # beta w_l (S3), (S5)
            parts["style"] += loss                                     # (S6)
            dfeats[name] = dfeats[name] + dF if name in dfeats else dF
        feats.clear()  # drop our references before the backward (copied conv taps go)
        grad = self.net.backward(dfeats, cache)                        # (V1)
        return self.finish(x, grad, parts)

    def finish(self, x, grad, parts):
        """Add total variation (TV1)-(TV2), check the loss is finite, keep the terms."""
        if self.tv_weight:
            loss, dx = self.losses.tv_loss(x)
            parts["tv"] = self.tv_weight * loss
            grad += self.tv_weight * dx                                  # lambda (TV2)
        parts["total"] = parts["content"] + parts["style"] + parts["tv"]       # (G1)
        parts = to_floats(parts)  # the one read (GPU: one copy)
        self.evaluations += 1
        if not np.isfinite(parts["total"]):
            raise NonFiniteLossError(
                f"the loss became {parts['total']} at evaluation {self.evaluations} "
                f"(content {parts['content']:.3g}, style {parts['style']:.3g}): "
                "check the weight file and the loss weights")
        self.last = parts
        return parts["total"], grad

    def scipy_fun(self, x_flat):
        """For SciPy's ``jac=True``: float64 host vector in, ``(float, float64 vector)`` out."""
        x = self.xp.asarray(x_flat.reshape(self.shape), dtype=np.float32)  # (3HW,) -> (1, 3, H, W)
        f, g = self(x)                                                   # g: (1, 3, H, W)
        return float(f), to_host(g).astype(np.float64).ravel()          # (3HW,) float64


def make_objective(params, model=GATYS.model, content=None, styles=(), style_blend=None,
                   pool=GATYS.pool, content_layer=GATYS.content_layer,
                   style_layers=GATYS.style_layers, style_layer_weights=None,
                   content_weight=GATYS.content_weight, style_weight=GATYS.style_weight,
                   tv_weight=GATYS.tv_weight, shape=None):
    r"""Build the Gatys objective (G1) with its targets precomputed.

    Parameters
    ----------
    params : dict
        VGG weights ``{conv name: (w, b)}`` (NumPy or CuPy arrays).
    model : {'vgg16', 'vgg19'}
    content : ndarray (1, 3, H, W) or None
        Preprocessed content image; None for texture synthesis.
    styles : list of ndarray (1, 3, Hs, Ws)
        Preprocessed style images (any sizes); empty for content reconstruction.
    style_blend : list of float, optional
        Blend weights of the style images' Gram targets (S7); normalised to sum 1.
    pool : {'avg', 'max'}
        VGG's pooling (the paper prefers average).
    content_layer : str
        The layer whose features (C1) compares, e.g. ``'relu4_2'`` (``'conv4_2'``: before its
        ReLU); content reconstruction from lower layers keeps more of the photo.
    style_layers : sequence of str
        The layers whose Gram matrices (S3) compares, ``relu1_1`` ... ``relu5_1`` by default;
        texture synthesis from fewer, lower layers keeps smaller structures.
    style_layer_weights : list of float, optional
        ``w_l`` per style layer; default ``1 / len(style_layers)`` each.
    content_weight, style_weight, tv_weight : float
        :math:`\alpha`, :math:`\beta`, :math:`\lambda` of (G1).
    shape : tuple, optional
        Shape of the generated image; default the content image's (or the
        first style image's for texture synthesis).

    Returns
    -------
    Objective
    """
    spec = check_inputs(model, content, styles, style_blend, content_layer, style_layers,
                        style_layer_weights, shape)
    taps = ([content_layer] if content is not None else []) + (list(style_layers) if styles else [])
    net = VGG(params, model, pool, taps)
    L = engine.losses(get_xp(params["conv1_1"][0]))
    content_target = None
    if content is not None:
        feats, _ = net.forward(content, [content_layer], keep_cache=False)
        content_target = feats[content_layer].copy()                              # P^l
    grams = []
    for style in styles:
        feats, _ = net.forward(style, style_layers, keep_cache=False)
        grams.append({name: L.gram_forward(feats[name])[0] for name in style_layers})   # (S1)
    style_targets = blend_targets(grams, [s.shape for s in styles], spec["shape"], style_layers,
                                  spec["style_blend"], L)
    return Objective(net, spec["shape"], content_layer, style_layers, spec["style_layer_weights"],
                     content_weight, style_weight, tv_weight, content_target, style_targets, L)


def check_inputs(model, content, styles, style_blend, content_layer, style_layers,
                 style_layer_weights, shape):
    """Check the arguments of :func:`make_objective`; fill in the defaults that depend on them."""
    style_layers = list(style_layers)
    if content is None and not styles:
        raise NumstyleError("nothing to optimise for: give a content image, a style image, or both")
    layers = ([content_layer] if content is not None else []) + (style_layers if styles else [])
    check_layers(model, layers)
    check_unique(style_layers)
    if not styles and (style_blend is not None or style_layer_weights is not None):
        raise NumstyleError(f"--style-{'blend' if style_blend is not None else 'layer-weights'} "
                            "needs --style (there is no style image to weight)")
    if style_layer_weights is None:
        style_layer_weights = [1.0 / len(style_layers)] * len(style_layers)
    if len(style_layer_weights) != len(style_layers):
        raise NumstyleError(f"{len(style_layer_weights)} style layer weights given for "
                            f"{len(style_layers)} style layers")
    if min(style_layer_weights, default=0) < 0:
        raise NumstyleError(f"--style-layer-weights {','.join(map(str, style_layer_weights))}: "
                            "a negative weight rewards the style's opposite (give weights >= 0)")
    if style_blend is None:
        style_blend = [1.0] * len(styles)
    if styles and (len(style_blend) != len(styles) or sum(style_blend) <= 0
                   or min(style_blend) < 0):
        raise NumstyleError(
            f"--style-blend {' '.join(f'{w:g}' for w in style_blend)}: needs one non-negative "
            f"weight per style image ({len(styles)}), not all zero")
    shape = tuple(shape or (content if content is not None else styles[0]).shape)
    need = min_input_size(model, layers)
    for what, s in [("output image", shape)] + [("style image", st.shape) for st in styles]:
        if min(s[2:]) < need:
            raise NumstyleError(f"{what} is {s[3]}x{s[2]} px, too small for the chosen layers: "
                                f"they need at least {need} px on the shorter side")
    return {"shape": shape, "style_blend": style_blend, "style_layer_weights": style_layer_weights}


def blend_targets(grams, style_shapes, shape, style_layers, style_blend, losses):
    """``{layer: A}``: each style image's Gram matrices rescaled to ``shape`` and blended (S7)."""
    targets, total = {}, float(sum(style_blend))
    M = layer_sizes(shape, style_layers)
    for G, style_shape, b in zip(grams, style_shapes, style_blend):
        M_s = layer_sizes(style_shape, style_layers)
        for name in style_layers:
            A = (b / total) * losses.style_target(G[name], M_s[name], M[name])     # (S7)
            targets[name] = A if name not in targets else targets[name] + A
    return targets


def layer_sizes(shape, layers):
    """``{layer: M_l = H_l W_l}`` for input ``shape``: each 2x2 pooling floors H and W by 2."""
    H, W = shape[2], shape[3]
    return {name: (H >> pools_before(name)) * (W >> pools_before(name)) for name in layers}


def optimize(objective, x0, iters=GATYS.iters, optimizer=None, lr=GATYS.lr, callback=None,
             progress=True, maxcor=GATYS.maxcor):
    r"""Minimise the objective over the pixels, within the pixel bounds.

    Parameters
    ----------
    objective : Objective
    x0 : ndarray (1, 3, H, W)
        Starting image (preprocessed).
    iters : int
        L-BFGS-B iterations (each may take more than one evaluation) or Adam steps.
    optimizer : {'lbfgs', 'lbfgs-device', 'adam'}, optional
        SciPy's L-BFGS-B (float64, on the host), numstyle's projected L-BFGS
        (:mod:`numstyle.lbfgs`, on ``x0``'s device) or Adam. Default:
        'lbfgs' for NumPy arrays, 'lbfgs-device' for CuPy arrays.
    lr : float
        Adam's step size in pixel units (0..255 scale).
    callback : callable, optional
        ``callback(iteration, x, parts)`` after each iteration.
    progress : bool
        Show a progress bar with the losses.
    maxcor : int
        L-BFGS's number of kept correction pairs (its memory: ``2 maxcor`` copies of the image).

    Returns
    -------
    x : ndarray (1, 3, H, W), the result (same device as ``x0``)
    history : list of dict
        The loss terms after each iteration, plus ``time`` (seconds since start).
    """
    from tqdm import tqdm

    xp = get_xp(x0)
    if optimizer is None:
        optimizer = "lbfgs" if xp is np else "lbfgs-device"
    lo, hi = pixel_bounds(objective.shape)
    history, start = [], time.perf_counter()
    bar = tqdm(total=iters, desc=f"gatys {optimizer}", disable=not progress, dynamic_ncols=True)

    def after_iteration(get_x):
        """One iteration done: record and show the losses; ``get_x()`` only when a callback wants
        the image."""
        parts = dict(objective.last, time=time.perf_counter() - start)
        history.append(parts)
        bar.set_postfix_str(f"total {parts['total']:.4g} content {parts['content']:.3g} "
                            f"style {parts['style']:.3g} tv {parts['tv']:.3g}", refresh=False)
        bar.update(1)
        if callback is not None:
            callback(len(history), get_x(), parts)

    if optimizer != "lbfgs":  # the bounds where the pixels are
        lo_d, hi_d = xp.asarray(lo, dtype=np.float32), xp.asarray(hi, dtype=np.float32)
    try:
        if optimizer == "lbfgs":
            x = scipy_lbfgs(objective, x0, iters, lo, hi, after_iteration, maxcor)
        elif optimizer == "lbfgs-device":
            x = lbfgs.minimize(objective, x0.astype(np.float32), iters, lo_d, hi_d, maxcor,
                               callback=lambda x: after_iteration(lambda: x))          # (L1)-(L5)
        elif optimizer == "adam":
            x, state = x0.astype(np.float32), {}                                       # a copy
            for _ in range(iters):
                _, g = objective(x)
                x, state = adam(x, g, state, lr=lr)                                    # (A1)-(A4)
                x = xp.clip(x, lo_d, hi_d)  # keep pixels in 0..255
                after_iteration(lambda: x)
        else:
            raise NumstyleError(f"unknown optimizer {optimizer!r}: use lbfgs, lbfgs-device or adam")
    finally:
        bar.close()
    return x, history


def scipy_lbfgs(objective, x0, iters, lo, hi, after_iteration, maxcor=GATYS.maxcor):
    """L-BFGS-B from SciPy on a float64 host copy of the pixels."""
    from scipy.optimize import Bounds, minimize

    device = "cpu" if get_xp(x0) is np else "gpu"
    shape = objective.shape

    def cb(xk):  # xk (3HW,): host -> device (1, 3, H, W) only if a callback asks
        after_iteration(lambda: to_device(xk.reshape(shape).astype(np.float32), device))

    x0_flat = to_host(x0).astype(np.float64).ravel()                # (1, 3, H, W) -> (3HW,)
    bounds = Bounds(lo.ravel(), hi.ravel())                         # (3HW,) each, (I1)
    options = {"maxiter": iters, "maxfun": 2 * iters + 20, "ftol": 0.0, "gtol": 0.0,
               "maxcor": maxcor}   # run the iterations asked for: no early stop
    res = minimize(objective.scipy_fun, x0_flat, jac=True, method="L-BFGS-B", bounds=bounds,
                   callback=cb, options=options)
    return to_device(res.x.reshape(shape).astype(np.float32), device)  # (3HW,) -> (1, 3, H, W)
