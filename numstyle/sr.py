r"""Single-image super-resolution with Johnson et al.'s network (x2, x4, x8).

Training pairs are made on the fly from photos: a crop ``y`` (a multiple of
the scale), Gaussian blur, bicubic downsampling by the factor:

.. math::  x = \mathrm{bicubic}_{\downarrow f}(G_\sigma * y)                          \tag{SR1}

The network of the paper's supplementary material (9x9 conv to 64 channels,
residual blocks at the input resolution, log2(f) stride-1/2 convolutions, a
9x9 conv to 3) predicts, here, the *difference* from the bicubic enlargement:

.. math::  \hat y = \mathrm{bicubic}_{\uparrow f}(x) + 127.5 \tanh(z)                  \tag{SR2}

(a deviation from the paper, whose output is the image itself: starting from
bicubic quality lets a short CPU training beat bicubic; ``--no-skip`` gives
the paper's form, 127.5 (tanh(z) + 1)). Two objectives: per-pixel

.. math::  \ell_{\mathrm{pixel}} = \frac{1}{N C H W} \|\hat y - y\|_2^2                \tag{SR3}

and feature reconstruction at relu2_2 of VGG16 (J3) plus a little total
variation, the phase penalty of the error (PH3) and the block means (LR1)
at the scale: what the low-resolution input fixes of the output,

.. math::  \ell_{\mathrm{feat}} + \lambda_{TV} \ell_{TV} + \lambda_P L_{\mathrm{phase}}(\hat y - y)
           + \lambda_B L_{\mathrm{block}}(\hat y, y)
           + \lambda_X \ell_{\mathrm{pixel}}                                           \tag{SR4}

(:math:`\lambda_X`, ``--pixel-weight``, 0 unless given).

Bicubic resampling happens outside the network (no gradient flows into the
input), so the skip adds nothing to the backward pass.
"""
import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

from . import engine
from .backend import get_xp, to_device, to_host
from .dataset import random_crop
from .errors import ImageError
from .models import spec_from_config
from .transformer import to_input, transformer_backward, transformer_forward


def bicubic(rgb, shape):
    """Resize (H, W, 3) float RGB to ``shape`` (h, w) with Pillow's bicubic filter (no rounding to
    uint8)."""
    channels = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(rgb[:, :, c], dtype=np.float32), mode="F").resize(
                (shape[1], shape[0]), Image.BICUBIC)) for c in range(3)
    ]
    return np.stack(channels, axis=-1)


def degrade(hr, scale, sigma=1.0):
    """(SR1): HR (H, W, 3) RGB 0..255 -> LR (H/scale, W/scale, 3).

    H and W must be multiples of ``scale``."""
    H, W = hr.shape[:2]
    if H % scale or W % scale:
        raise ImageError(
            f"image {W}x{H} is not a multiple of the scale {scale}: crop it first (modcrop)")
    blurred = gaussian_filter(hr, sigma=(sigma, sigma,
                                         0), mode="reflect") if sigma > 0 else hr  # G_sigma * y
    return np.clip(bicubic(blurred, (H // scale, W // scale)), 0, 255)  # (SR1)


def modcrop(rgb, scale):
    """Crop (H, W, 3) so both sides are multiples of ``scale`` (the evaluation convention)."""
    H, W = rgb.shape[:2]
    return rgb[:H - H % scale, :W - W % scale]


def training_pair(scale, size, sigma):
    """A Batches transform: random ``size`` crop -> (HR, LR, bicubic-up LR), all RGB 0..255."""
    size -= size % scale

    def transform(rgb, rng):
        hr = random_crop(rgb, size, rng)
        lr = degrade(hr, scale, sigma)
        return hr, lr, bicubic(lr, hr.shape[:2])
    return transform


class PixelLoss:
    """(SR3): mean squared error in RGB 0..255 -- Johnson's feature loss (J3) taken of the pixels
    instead of VGG's features -- with the ``(parts, dy)`` interface of PerceptualLoss."""
    def __call__(self, y_hat, y):
        loss, dy = engine.losses(get_xp(y_hat)).feature_loss(y_hat, y)      # (SR3) = (J3) of pixels
        return {"total": loss, "content": loss, "style": 0.0, "tv": 0.0}, dy


class AddedTerm:
    """(SR4), one term at a time: a loss ``(parts, dy)`` of the output and the photo, plus
    ``weight`` times :meth:`term`, reported as ``parts[name]`` (0 and not computed at weight 0)."""

    name = None

    def __init__(self, loss, weight):
        self.loss, self.weight = loss, weight

    def term(self, y_hat, y):
        """``(value, d value / d y_hat)`` of the added term."""
        raise NotImplementedError

    def __call__(self, y_hat, y):
        parts, dy = self.loss(y_hat, y)
        parts[self.name] = 0.0
        if self.weight:
            value, grad = self.term(y_hat, y)
            parts[self.name] = self.weight * value
            parts["total"] = parts["total"] + parts[self.name]                       # (SR4)
            dy = dy + self.weight * grad                                                 # (SR4)
        return parts, dy


class PlusPixels(AddedTerm):
    r"""(SR4)'s :math:`\lambda_X` term: the per-pixel loss (SR3)."""

    name = "pixel"

    def term(self, y_hat, y):
        parts, grad = PixelLoss()(y_hat, y)                                          # (SR3)
        return parts["total"], grad


class BlockMeans(AddedTerm):
    r"""(SR4)'s :math:`\lambda_B` term: the squared difference of the ``scale`` x ``scale`` block
    means (LR1), gradient (LR2)."""

    name = "block"

    def __init__(self, loss, weight, scale):
        super().__init__(loss, weight)
        self.scale = scale

    def term(self, y_hat, y):
        return engine.losses(get_xp(y_hat)).block_mean_loss(y_hat, y, self.scale)  # (LR1), (LR2)


def sr_forward(params, spec, config, lr_rgb, up_rgb=None, train=False, state=None,
               keep_caches=True, progress=False):
    """(SR2): the network on LR (N, 3, h, w) RGB 0..255; ``up_rgb`` its bicubic enlargement."""
    y, caches = transformer_forward(params, to_input(lr_rgb), spec, config["norm"], train=train,
                                    state=state, keep_caches=keep_caches, progress=progress)
    if config.get("skip", True):
        y = y - 127.5 + up_rgb                                                          # (SR2)
    return y, caches


def upscale_array(params, config, state, rgb, device="cpu", progress=False):
    """One image (h, w, 3) RGB 0..255 -> (scale h, scale w, 3), one forward pass (``progress``:
    a bar over the layers once it has taken a second)."""
    s = config["scale"]
    lr = to_device(rgb.transpose(2, 0, 1)[None].astype(np.float32), device)          # (1, 3, h, w)
    up = bicubic(rgb, (rgb.shape[0] * s, rgb.shape[1] * s))                  # (s h, s w, 3)
    up = to_device(up.transpose(2, 0, 1)[None].copy(), device)               # (1, 3, s h, s w)
    y, _ = sr_forward(params, spec_from_config(config), config, lr, up, train=False, state=state,
                      keep_caches=False, progress=progress)
    return np.clip(to_host(y)[0].transpose(1, 2, 0), 0, 255)                 # (s h, s w, 3)


def match_histograms(out_rgb, ref_rgb):
    """The paper's post-processing for the feature network, by matching CDFs.

    Each channel of ``out`` takes the value distribution of the same channel of ``ref`` (the
    low-resolution input)."""
    result = np.empty_like(out_rgb, dtype=np.float64)
    for c in range(3):
        src = out_rgb[..., c].ravel()
        order = np.argsort(src, kind="stable")
        quantiles = (np.arange(src.size) + 0.5) / src.size
        ref_sorted = np.sort(ref_rgb[..., c].ravel())
        ref_q = (np.arange(ref_sorted.size) + 0.5) / ref_sorted.size
        matched = np.empty(src.size)
        matched[order] = np.interp(quantiles, ref_q, ref_sorted)
        result[..., c] = matched.reshape(out_rgb.shape[:2])                  # (H W,) -> (H, W)
    return result


def sr_step(params, spec, config, state, batch, loss):
    """One training forward/backward: ``batch = (hr, lr, up)`` -> ``(parts, grads)``."""
    hr, lr, up = batch
    y, caches = sr_forward(params, spec, config, lr, up, train=True, state=state)
    parts, dy = loss(y, hr)
    grads, _ = transformer_backward(dy, caches, input_grad=False)
    return parts, grads
