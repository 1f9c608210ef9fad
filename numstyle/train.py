r"""Training Johnson et al.'s networks: the perceptual loss, the Adam loop, checkpoints.

One iteration: a batch of photos :math:`y_1 \dots y_N` goes through the transformer
:math:`\hat y_n = f_W(y_n)`, then through VGG16; the loss, a mean over the batch,

.. math::  \frac1N \sum_n \Big[\lambda_c\, \ell_{\mathrm{feat}}(\hat y_n, y_n)
           + \lambda_s \sum_j \ell_{\mathrm{style}}^{(j)}(\hat y_n, y_s)
           + \lambda_{TV}\, \ell_{TV}(\hat y_n)\Big]
           + \lambda_P\, L_{\mathrm{phase}}(\hat y)                                   \tag{J6}

is pushed back through VGG to :math:`\hat y` (V1), then through the
transformer to every parameter (J1, J2), and Adam (A1)-(A4) takes a step.
"""
import math
import time

import numpy as np

from . import engine
from .backend import get_xp, to_device, to_floats, to_host
from .config import TRAIN
from .errors import NonFiniteLossError
from .image import rgb_to_vgg, vgg_grad_to_rgb
from .interrupt import StopOnSignal
from .optim import adam
from .transformer import to_input, transformer_backward, transformer_forward
from .vgg import VGG, check_unique


class PerceptualLoss:
    r"""(J6) for a batch: ``loss(y_hat, y_content) -> (parts, d_y_hat)``, both in RGB 0..255.

    Parameters
    ----------
    vgg_params : dict
        VGG16 weights.
    style_rgb : ndarray (1, 3, Hs, Ws), list of them, or None
        The style image (RGB 0..255), or one per style of a conditional network; None for a
        content-only loss (super-resolution).
    style_weight : float, or a sequence of one per style image
    phase_weight, phase_period : float, int
        :math:`\lambda_P` and :math:`p` of the phase penalty (PH1): the network's period, 4 for
        a style network (two ×2 down-samplings), the scale for super-resolution.
    phase_of_error : bool
        Penalise the phase pattern of the error :math:`\hat y - y_c` (PH3) instead of
        :math:`\hat y`'s own: for super-resolution, whose content target is the photo itself, so
        that the penalty asks for the photo's phase pattern, not for none.

    Called with the styles' weights ``mix`` (S,) -- one-hot in training -- the style target of
    each layer is the mix of the styles' Gram matrices and its weight the mix of theirs.
    """

    def __init__(self, vgg_params, style_rgb=None, content_layer=TRAIN.content_layer,
                 style_layers=TRAIN.style_layers, content_weight=TRAIN.content_weight,
                 style_weight=TRAIN.style_weight, tv_weight=TRAIN.tv_weight, model="vgg16",
                 pool="max", phase_weight=TRAIN.phase_weight, phase_period=4,
                 phase_of_error=False):
        self.content_layer = content_layer
        styles = [] if style_rgb is None else (
            list(style_rgb) if isinstance(style_rgb, (list, tuple)) else [style_rgb])
        self.style_layers = list(style_layers) if styles else []
        check_unique(self.style_layers)
        self.vgg = VGG(vgg_params, model, pool,
                       [content_layer] + self.style_layers)  # classification VGG: max pool
        self.losses = engine.losses(get_xp(vgg_params["conv1_1"][0]))
        self.style_weights = np.broadcast_to(np.asarray(style_weight, np.float64),
                                             (max(len(styles), 1),)).copy()
        self.weights = (content_weight, float(self.style_weights[0]), tv_weight)
        self.phase_weight, self.phase_period = phase_weight, phase_period
        self.phase_of_error = phase_of_error
        self.style_grams = []  # one {layer: Gram matrix} per style image
        for rgb in styles:
            feats, _ = self.vgg.forward(rgb_to_vgg(rgb), self.style_layers, keep_cache=False)
            self.style_grams.append({
                name: self.losses.gram_normalized(feats[name])[0]
                for name in self.style_layers
            })  # (J4)

    def targets(self, mix=None):
        """``({layer: Gram target}, style weight)`` for the styles' weights ``mix`` (S,) (host
        numbers); None, or a loss of one style image (a style added to a conditional network,
        whose ``mix`` picks its row): the one style."""
        if mix is None or len(self.style_grams) == 1:
            if len(self.style_grams) > 1:
                raise ValueError("a loss of several styles needs the styles' weights (mix)")
            return (self.style_grams[0] if self.style_grams else {}), self.weights[1]
        pairs = [(float(w), grams) for w, grams in zip(mix, self.style_grams) if w]
        target = {name: sum(w * grams[name] for w, grams in pairs) for name in self.style_layers}
        return target, float(np.dot(mix, self.style_weights))

    def __call__(self, y_hat, y_content, mix=None):
        wc, _, wt = self.weights
        grams, ws = self.targets(mix)
        L, N = self.losses, y_hat.shape[0]
        target, _ = self.vgg.forward(rgb_to_vgg(y_content), [self.content_layer], keep_cache=False)
        layers = [self.content_layer] + [n for n in self.style_layers if n != self.content_layer]
        feats, cache = self.vgg.forward(rgb_to_vgg(y_hat), layers)
        parts, dfeats = {}, {}
        parts["content"], dfeats[self.content_layer] = L.feature_loss(
            feats[self.content_layer], target[self.content_layer], wc)              # (J3)
        parts["style"] = 0.0
        for name in self.style_layers:
            loss, dF = L.style_loss_johnson(feats[name], grams[name], ws)  # (J5)
            parts["style"] += loss
            dfeats[name] = dfeats[name] + dF if name in dfeats else dF  # a shared tap: (V1)
        del feats, target                       # copies the backward does not need: free them first
        dy = vgg_grad_to_rgb(self.vgg.backward(dfeats, cache))  # (V1), (I1)
        parts["tv"] = 0.0
        if wt:
            loss, dtv = L.tv_loss(y_hat)  # (TV1)
            parts["tv"] = wt * loss / N
            dy = dy + (wt / N) * dtv  # (TV2)
        parts["phase"] = 0.0
        if self.phase_weight:
            pattern = y_hat - y_content if self.phase_of_error else y_hat  # (PH3) or (PH1)
            loss, dphase = L.phase_loss(pattern, self.phase_period)  # a mean over the batch
            parts["phase"] = self.phase_weight * loss
            dy = dy + self.phase_weight * dphase  # (PH2)
        parts["total"] = parts["content"] + parts["style"] + parts["tv"] + parts["phase"]  # (J6)
        return parts, dy


def network_step(params, spec, norm, state, batch_rgb, loss, input_rgb=None, mix=None,
                 frozen_convs=False):
    """One forward/backward through transformer + loss: ``(parts, grads)``.

    ``batch_rgb`` is the content target; ``input_rgb`` the network input (the
    same photos for style transfer, their low-resolution versions for SR).
    ``mix`` (S,): a conditional network's style weights for this batch (one-hot), for the
    network (N4) and the loss's targets; ``frozen_convs``: gradients of the norms' pairs only.
    """
    x = to_input(batch_rgb if input_rgb is None else input_rgb)
    mix = None if mix is None else to_host(mix)
    y, caches = transformer_forward(params, x, spec, norm, train=True, state=state, mix=mix,
                                    frozen_convs=frozen_convs)
    parts, dy = loss(y, batch_rgb) if mix is None else loss(y, batch_rgb, mix)
    grads, _ = transformer_backward(dy, caches, input_grad=False)
    return parts, grads


def fit(params, step, batches, iters, lr=TRAIN.lr, start=0, adam_state=None, checkpoint=None,
        checkpoint_every=0, progress=True, desc="train", device="cpu"):
    r"""The training loop: ``step(params, batch) -> (parts, grads)``, Adam on every parameter
    ``grads`` holds (the others stay as they are: a style added to a trained network).

    Ctrl-C or SIGTERM asks the loop to stop after the iteration in progress: a
    checkpoint is written and :class:`numstyle.interrupt.Interrupted` (a
    KeyboardInterrupt) raised, so an interrupted run resumes exactly. A second
    signal stops at once (:class:`numstyle.interrupt.StopOnSignal`).

    Parameters
    ----------
    checkpoint : callable, optional
        ``checkpoint(iteration, params, adam_state)``, called every
        ``checkpoint_every`` iterations and when interrupted.

    Returns
    -------
    params, adam_state, history (list of loss dicts, each with its ``iteration`` and ``time``,
    seconds since the call)
    """
    from tqdm import tqdm

    adam_state = adam_state if adam_state is not None else {}
    history, running, t0 = [], None, time.perf_counter()
    bar = tqdm(total=iters, initial=start, desc=desc, disable=not progress, dynamic_ncols=True)
    stop = StopOnSignal()
    try:
        with stop, np.errstate(over="ignore",
                               invalid="ignore"):  # an overflow is caught below, as a NaN loss
            for it in range(start, iters):
                batch = _to_device(batches[it], device)
                parts, grads = step(params, batch)
                parts = to_floats(parts)  # the step's one read
                if not math.isfinite(parts["total"]):
                    raise NonFiniteLossError(
                        f"the loss became {parts['total']} at iteration {it + 1}: "
                        "lower --lr or the loss weights")
                for key in grads:                                                # (A1)-(A4)
                    params[key], adam_state[key] = adam(params[key], grads[key],
                                                        adam_state.get(key, {}), lr=lr)
                history.append(dict(parts, iteration=it + 1, time=time.perf_counter() - t0))
                running = parts if running is None else {
                    k: 0.9 * running[k] + 0.1 * parts[k]
                    for k in parts
                }
                terms = "".join(f" {k} {running[k]:.3g}" for k in ("content", "style", "tv")
                                if parts.get(k))   # the terms in use (a pixel loss: none)
                bar.set_postfix_str(f"loss {running['total']:.4g}{terms}", refresh=False)
                bar.update(1)
                if checkpoint and (stop.requested or (checkpoint_every and
                                                      (it + 1) % checkpoint_every == 0)):
                    checkpoint(it + 1, params, adam_state)
                if stop.requested:
                    stop.stop()
    finally:
        bar.close()
        if hasattr(batches, "close"):
            batches.close()
    return params, adam_state, history


class StyleCycle:
    """The batches of a conditional network of ``n`` styles: iteration ``it`` gives
    ``(batch, mix)``, the one-hot weights (S,) of style ``it mod n`` (or always of ``only``).

    Each batch is one style's, in turn: every style gets the same share of the steps, the
    loss needs one style's Gram targets per batch, and the choice is a function of the
    iteration, so a resumed training makes the same choices.
    """

    def __init__(self, batches, n, only=None):
        self.batches, self.n, self.only = batches, n, only
        self.paths = getattr(batches, "paths", None)

    def __getitem__(self, it):
        mix = np.zeros(self.n, np.float32)
        mix[self.only if self.only is not None else it % self.n] = 1
        return self.batches[it], mix

    def close(self):
        if hasattr(self.batches, "close"):
            self.batches.close()


def _to_device(batch, device):
    return tuple(to_device(b, device)
                 for b in batch) if isinstance(batch, tuple) else to_device(batch, device)


def params_to(params, device):
    """``{name: array}`` as float32 on ``device`` ('cpu' or 'gpu'): a model file's parameters to
    where the training runs."""
    return {k: to_device(np.asarray(to_host(v), dtype=np.float32), device)
            for k, v in params.items()}


def adam_to(adam_state, device):
    """Adam's state ``{name: {'t': int, 'm': array, 'v': array}}`` with its moment arrays
    moved to ``device`` (a checkpoint's state to where the training resumes)."""
    moved = {}
    for k, st in adam_state.items():
        moved[k] = dict(st)
        moved[k].update({m: to_device(st[m], device) for m in ("m", "v") if m in st})
    return moved
