"""Stylising with a trained network: one image in, one forward pass, one image out."""
import numpy as np

from .backend import to_device, to_host
from .models import spec_from_config
from .transformer import to_input, transformer_forward


def stylize_array(params, config, state, rgb, device="cpu", progress=False):
    """One image (H, W, 3) RGB 0..255 -> stylised (H', W', 3) float, one forward pass (inference).

    ``params, config, state`` as :func:`numstyle.models.load_model` returns them; ``progress``: a
    bar over the layers once the pass has taken a second.
    """
    x = to_device(rgb.transpose(2, 0, 1)[None].astype(np.float32), device)           # (1, 3, H, W)
    y, _ = transformer_forward(params, to_input(x), spec_from_config(config), config["norm"],
                               train=False, state=state, keep_caches=False, progress=progress)
    return to_host(y)[0].transpose(1, 2, 0)                                           # (H', W', 3)


def apply_strength(styled, photo, strength):
    """``--strength``: a linear mix in pixel space, ``strength * styled + (1 - strength) * photo``.

    Both (H, W, 3) RGB 0..255, the same size; ``styled`` after any colour handling
    (``--preserve-colors``). 0 gives the photo, 1 the stylised image unchanged.
    """
    if strength == 1:
        return styled
    return strength * styled + (1.0 - strength) * np.asarray(photo, np.float32)
