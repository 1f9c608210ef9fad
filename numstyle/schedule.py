r"""Coarse-to-fine schedules for Gatys: which sizes, how many iterations, how each scale starts.

A coarse-to-fine run optimises at a small size, enlarges the result, and goes
on at the next size:

.. math::  x^{(0)}_{k+1} = \mathrm{up}\big(x_k\big)
           + d\,\big(c_{k+1} - \mathrm{up}(\mathrm{down}(c_{k+1}))\big)             \tag{CF1}

where :math:`x_k` is the result at size :math:`s_k`, ``up``/``down`` are
Lanczos resamplings of the float image (no rounding to 8 bits), and the second
term puts back the content photo's detail that the coarser size could not hold
(:math:`d = 1`; zero without a content image). Each size has its own targets
(the content features and the style Grams at that size). The L-BFGS-B history
cannot carry over: the vectors change length, and SciPy's L-BFGS-B has no warm
start; each size starts a fresh optimiser, which costs a few evaluations.

Gatys' style loss (S3) is normalised by the layer's size but the content loss
(C1) is a sum over positions, so at a size with :math:`1/r` of the output's
pixels the content term weighs :math:`r` times less against the style than it
does in G1 at the output. A coarse scale therefore multiplies the content
weight by

.. math::  r_k = \frac{H_{\mathrm{out}} W_{\mathrm{out}}}{H_k W_k}                  \tag{CF2}

so that every scale minimises the same balance of (G1) as the output size.

Measured (docs/benchmarks.md, "Gatys coarse to fine", issue 22): under G1 at
the output size, work at coarse sizes buys little -- the loss at the output
size is dominated by the fine-scale content and style terms, which a coarse
scale cannot fit and which the enlargement undoes. No schedule reached the
one-scale run's final loss in half its time, so :func:`default_schedule` stays
one scale; (CF1) and (CF2) are what made coarse to fine (``--scales``) better.
"""
import numpy as np
from PIL import Image

# the default: (fraction of the output's longer side, iterations) per scale. One scale of 300:
# no coarse-to-fine schedule measured reached its final G1 in half its time (docs/benchmarks.md,
# issue 22).
DEFAULT_STEPS = ((1.0, 300),)
# the best coarse-to-fine schedule measured, at about half the time
# (+6-15 % final G1 on three pairs)
HALF_TIME_STEPS = ((3 / 4, 40), (1.0, 105))
MIN_SIZE = 64                      # no coarse scale below this longer side (px)
# an output too small for any coarse scale: one scale of this many
ONE_SCALE_ITERS = 300
DETAIL = 1.0                       # d of (CF1)
_FILTERS = {"lanczos": Image.LANCZOS, "bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR}


def default_schedule(size, steps=DEFAULT_STEPS, min_size=MIN_SIZE):
    """The default schedule for an output whose longer side is ``size`` px.

    Parameters
    ----------
    size : int
        Longer side of the output, px.
    steps : sequence of (float, int)
        ``(fraction of size, iterations)`` per scale, coarse to fine, the last fraction 1.
    min_size : int
        A coarse scale smaller than this is left out; an output with no coarse
        scale left is one scale of ``ONE_SCALE_ITERS`` iterations.

    Returns
    -------
    sizes : list of int
        Longer side of each scale, strictly increasing, the last one ``size``.
    iters : list of int
        L-BFGS-B iterations at each scale (same length as ``sizes``).

    Examples
    --------
    >>> default_schedule(384)
    ([384], [300])
    >>> default_schedule(384, HALF_TIME_STEPS)
    ([288, 384], [40, 105])
    >>> default_schedule(64, HALF_TIME_STEPS)
    ([64], [300])
    """
    size = int(size)
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    if not steps or steps[-1][0] != 1.0:
        raise ValueError(f"the last step must be the output size (fraction 1.0), got {steps}")
    sizes, iters = [], []
    for ratio, n in steps:
        s = size if ratio == 1.0 else int(round(size * ratio))
        if (ratio == 1.0 or s >= min_size) and (not sizes or s > sizes[-1]) and s <= size:
            sizes.append(s)
            iters.append(int(n))
    if len(sizes) == 1 and len(steps) > 1:
        iters = [ONE_SCALE_ITERS]
    return sizes, iters


def content_balance(out_hw, hw):
    """(CF2): the content weight's factor at scale ``hw`` = (H, W) for an output of ``out_hw``."""
    return (out_hw[0] * out_hw[1]) / (hw[0] * hw[1])                    # (CF2)


def resample(rgb, shape, method="lanczos"):
    """Resize a float image ``(H, W, C)`` in 0..255 to ``shape`` = (H', W'), not rounded to 8 bits.

    Parameters
    ----------
    rgb : ndarray (H, W, C)
        Float image, 0..255 (e.g. RGB).
    shape : tuple (H', W')
    method : {'lanczos', 'bicubic', 'bilinear'}
        Pillow's filter, applied to each channel as a 32-bit float image.

    Returns
    -------
    ndarray (H', W', C), float32, clipped to 0..255 (Lanczos overshoots at edges).
    """
    if method not in _FILTERS:
        raise ValueError(f"unknown resampling {method!r}: use one of {', '.join(_FILTERS)}")
    H, W = int(shape[0]), int(shape[1])
    rgb = np.asarray(rgb, dtype=np.float32)
    if rgb.shape[:2] == (H, W):
        return rgb.copy()
    planes = (Image.fromarray(np.ascontiguousarray(rgb[:, :, c])) for c in range(rgb.shape[2]))
    channels = [np.asarray(p.resize((W, H), _FILTERS[method]), dtype=np.float32) for p in planes]
    return np.clip(np.stack(channels, axis=2), 0, 255)


def start_of_scale(prev, shape, content=None, detail=DETAIL, method="lanczos"):
    """The next scale's starting image (CF1): ``prev`` enlarged, plus the content's missing detail.

    Parameters
    ----------
    prev : ndarray (h, w, 3)
        The previous scale's result, float RGB 0..255 (not rounded to 8 bits).
    shape : tuple (H, W)
        The new size.
    content : ndarray (H, W, 3), optional
        The content image at the new size (None: texture synthesis, no detail to add).
    detail : float
        ``d`` of (CF1); 0: the enlargement alone.
    method : str
        :func:`resample`'s filter.

    Returns
    -------
    ndarray (H, W, 3), float32, 0..255
    """
    x0 = resample(prev, shape, method)
    if detail and content is not None:
        content = np.asarray(content, dtype=np.float32)
        low = resample(resample(content, prev.shape[:2], method), shape, method)
        x0 = np.clip(x0 + np.float32(detail) * (content - low), 0, 255)     # (CF1)
    return x0.astype(np.float32)
