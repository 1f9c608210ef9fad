r"""Images larger than memory: overlapping tiles, memory budgets, receptive fields.

A convolutional network's output at a pixel depends only on the input within
its *receptive radius* :math:`R` of that pixel. So a tile of the image grown
by a margin :math:`\ge R` on every side gives, in its core, exactly what the
whole image would -- provided the tile is cut where the network's strided
steps (poolings, stride-2 convolutions) line up with the whole image's, i.e.
at multiples of their product (the *alignment*). Walking the layers from the
input, with :math:`j` the input pixels per step at the current depth:

.. math::  R \mathrel{+}= \lfloor k/2 \rfloor\, j
           \ \text{(a } k\times k \text{ convolution)}, \qquad
           j \mathrel{*}= s \ \text{(stride } s\text{, or } 1/2 \text{ up-sampling)}       \tag{TL1}

(a 3x3 stride-1/2 convolution reaches one pixel of its *output*: :math:`j/2`).

Feed-forward networks (``stylize``) run tile by tile and the tiles are
blended where they meet: along each axis a tile's weight ramps linearly from
0 to 1 across a band of width :math:`B` centred on its core's edge, and its
neighbour's ramps down across the same band, so the weights sum to one:

.. math::  w_{\uparrow}(y) = \mathrm{clip}\Big(\frac{y + \tfrac12 - (a - B/2)}{B}, 0, 1\Big), \qquad
           w_{\uparrow}(y) + w_{\downarrow}(y) = 1                                         \tag{TL2}

With a margin of :math:`R + B/2` every tile is exact wherever its weight is
non-zero, so the blend changes nothing for a fixed network; it hides what
does differ between tiles -- instance normalisation statistics, when they are
estimated from a reduced copy of an image too large to hold (see
:func:`stylize_tiled`). The Gatys objective over tiles is in
:mod:`numstyle.gatys_tiled`.
"""
import math
import os
import re
import resource

import numpy as np

from . import settings
from .errors import NumstyleError
from .image import resize
from .models import spec_from_config
from .transformer import init_state

_UNITS = {
    "": 1,
    "b": 1,
    "k": 2**10,
    "kb": 2**10,
    "m": 2**20,
    "mb": 2**20,
    "g": 2**30,
    "gb": 2**30,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30
}


def parse_memory(text):
    """``'2GB'``, ``'1.5g'``, ``'800MB'`` -> bytes (binary units: 1 GB = 2**30 bytes)."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(text))
    if not m or m.group(2).lower() not in _UNITS or float(m.group(1)) <= 0:
        raise NumstyleError(
            f"cannot read the memory size {text!r}: write it like 2GB, 1.5GB or 800MB")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def format_bytes(n):
    """``1536`` -> ``'1.5 KB'``; binary units as :func:`parse_memory` reads them (at most GB)."""
    n = float(n)
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            break
        n /= 1024
    if unit == "bytes":
        return f"{n:.0f} bytes"
    return f"{n:.1f} {unit}".replace(".0 ", " ") if n < 10 else f"{n:.0f} {unit}"


def memory_limit():
    """Bytes this process may use at most: the machine's memory, or less under a limit.

    The smallest of physical memory, the address-space limit (``ulimit -v``) and the cgroup's
    memory limit (containers, batch schedulers); None where none can be read.
    """
    limits = []
    try:
        pages, page = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        if pages > 0 and page > 0:
            limits.append(pages * page)
    except (AttributeError, OSError, ValueError):
        pass
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY and soft > 0:
            limits.append(soft)
    except (AttributeError, OSError, ValueError):
        pass
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                text = f.read().strip()
        except OSError:
            continue
        if text.isdigit() and 0 < int(text) < 1 << 60:  # v1 says "no limit" with a huge number
            limits.append(int(text))
    return min(limits) if limits else None


def largest_fitting(need, limit, side):
    """The largest longer side up to ``side`` whose ``need(side)`` bytes fit ``limit``, for the
    "what would fit" of a refusal; 0 when not even 16 px would."""
    lo, hi = 0, side
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if need(mid) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return lo if lo >= 16 else 0


def current_rss():
    """Resident memory of this process now, bytes (Linux; 0 where /proc is missing)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class Tile:
    """One tile: its core (the pixels it owns) and its input box (the core grown by the margin).

    Boxes are ``(y0, y1, x0, x1)`` in input pixels, half-open.
    """
    def __init__(self, core, box):
        self.core, self.box = core, box

    def input_slices(self):
        y0, y1, x0, x1 = self.box
        return slice(y0, y1), slice(x0, x1)

    def core_in_layer(self, step):
        """The core as slices of this tile's activation at a layer ``step`` input pixels per pixel.

        Both the core and the box start at multiples of the alignment, so the
        division is exact at every layer; ends are floored like the layers' sizes.
        """
        (cy0, cy1, cx0, cx1), (by0, _, bx0, _) = self.core, self.box
        return (slice(cy0 // step - by0 // step, cy1 // step - by0 // step),
                slice(cx0 // step - bx0 // step, cx1 // step - bx0 // step))

    def core_in_image(self, step):
        """The core as slices of the *whole image's* activation.

        ``step``: the input pixels per pixel of that activation."""
        y0, y1, x0, x1 = self.core
        return slice(y0 // step, y1 // step), slice(x0 // step, x1 // step)

    def __repr__(self):
        return f"Tile(core={self.core}, box={self.box})"


def tile_grid(height, width, core, margin, align=1):
    """Cut an image into tiles whose cores partition it.

    Parameters
    ----------
    height, width : int
        Image size, px.
    core : int
        Core side, px; rounded down to a multiple of ``align`` (at least ``align``).
    margin : int
        Pixels added around each core (clipped at the image's edges); rounded
        up to a multiple of ``align``.
    align : int
        Cores and boxes start at multiples of this (the network's total stride).

    Returns
    -------
    list of Tile, row by row
    """
    core = max(align, core // align * align)
    margin = -(-margin // align) * align
    tiles = []
    for y0 in range(0, height, core):
        for x0 in range(0, width, core):
            y1, x1 = min(y0 + core, height), min(x0 + core, width)
            box = (max(0, y0 - margin), min(height,
                                            y1 + margin), max(0,
                                                              x0 - margin), min(width, x1 + margin))
            tiles.append(Tile((y0, y1, x0, x1), box))
    return tiles


def transformer_radius(spec):
    """Receptive radius (TL1) and alignment of a transformer network, in input pixels.

    Returns
    -------
    radius : int
    align : int
        Product of the down-sampling strides (4 for the style network, 1 for SR).
    """
    r, j, align = 0.0, 1.0, 1
    for layer in spec:
        kind = layer[0]
        if kind == "conv":
            k, stride = layer[4], layer[5]
            r += (k // 2) * j                                           # (TL1)
            j *= stride
            align *= stride
        elif kind == "res":
            r += 2 * j                                                  # two 3x3 convolutions
        elif kind == "up":
            r += j / 2  # a 3x3 stride-1/2 convolution reaches
            j /= 2  # one output pixel = half an input one
        elif kind == "resize":  # (U1) then a 3x3 convolution: output
            r += j  # 2a +- 1 reads input a - 1 .. a + 1
            j /= 2
        else:
            r += (layer[4] // 2) * j
    return int(math.ceil(r)), align


def blend_weights(n, lo, hi, size, band):
    """Weights (TL2) along one axis for a core ``[lo, hi)`` of an axis of ``size`` pixels.

    Returns the first pixel and the weights of the span ``[lo - band/2, hi + band/2)``
    (clipped to the axis); no ramp at the image's own edges. ``n`` scales
    everything (the output is ``n`` times the input for super-resolution).
    """
    half = band / 2.0
    start, stop = max(0, int(math.floor((lo - half) * n))), min(size * n,
                                                                int(math.ceil((hi + half) * n)))
    y = (np.arange(start, stop) + 0.5) / n  # pixel centres, in input pixels
    w = np.ones(stop - start, np.float32)
    if lo > 0:
        w = np.minimum(w, np.clip((y - (lo - half)) / band, 0,
                                  1))  # (TL2): ramp up across the top edge
    if hi < size:
        w = np.minimum(w, np.clip(((hi + half) - y) / band, 0,
                                  1))  # ... and down across the bottom one
    return start, w.astype(np.float32)


def apply_tiled(fn, rgb, core, margin, align=1, scale=1, band=32, progress=False):
    """Apply an image-to-image network tile by tile and blend the tiles (TL2).

    Parameters
    ----------
    fn : callable
        ``fn(rgb_tile (h, w, 3)) -> (scale h, scale w, 3)``.
    rgb : ndarray (H, W, 3)
    core, margin, align : int
        As in :func:`tile_grid`; ``margin`` should be at least the network's
        receptive radius plus ``band / 2`` for exact tiles.
    scale : int
        Output pixels per input pixel.
    band : int
        Blend band width, input pixels (at most ``2 * margin`` and the core).

    Returns
    -------
    out : ndarray (scale H, scale W, 3), float32
    """
    from tqdm import tqdm

    H, W = rgb.shape[:2]
    tiles = tile_grid(H, W, core, margin, align)
    band = max(1, min(band, 2 * margin,
                      max(align, core // align * align)))  # ramps of one tile never overlap
    out = np.zeros((H * scale, W * scale, 3), np.float32)
    for t in tqdm(tiles, desc="tiles", unit="tile", leave=False, disable=not progress
                  or len(tiles) == 1):
        ys, xs = t.input_slices()
        y = fn(rgb[ys, xs])  # (scale h, scale w, 3)
        cy0, cy1, cx0, cx1 = t.core
        r0, wy = blend_weights(scale, cy0, cy1, H, band)
        c0, wx = blend_weights(scale, cx0, cx1, W, band)
        oy, ox = r0 - ys.start * scale, c0 - xs.start * scale  # the span inside this tile
        span = y[oy:oy + len(wy), ox:ox + len(wx)]  # (len wy, len wx, 3)
        out[r0:r0 + len(wy),
            c0:c0 + len(wx)] += span * (wy[:, None, None] * wx[None, :, None])  # (TL2)
    return out


# Peak bytes per input pixel of the network's inference pass without caches,
# per float of its widest activation: the activation, its normalised copy and
# temporaries (measured with tracemalloc: 610-770 B/px for the style network,
# whose widest activation is 32 floats per pixel; 5 copies x 4 bytes x 32 = 640).
COPIES_PER_ACTIVATION = 5
FIXED_BYTES = 48 << 20           # im2col bands, kernels, interpreter: not proportional to the tile
SAFETY = 1.25                    # what the allocator and BLAS add on top of what NumPy asks for


def transformer_bytes_per_pixel(spec):
    """Estimated peak bytes per *input* pixel of an inference pass (see COPIES_PER_ACTIVATION).

    Under the reference engine, plus its largest column buffer: its convolutions build the whole
    image's im2col (K1), (C k^2, pixels), or the adjoint's (CV2) -- the fast engine's bands never
    hold more than a few MB. With the last 9x9 convolution's 16-32 input channels that is
    1,296-2,592 floats a pixel, far more than the activations.
    """
    widest, columns, density = 3.0, 0.0, 1.0   # floats per input pixel; the layer's pixels per one
    for layer in spec:
        kind = layer[0]
        if kind == "conv":                                  # ("conv", name, cin, cout, k, stride)
            density /= layer[5] ** 2
            widest = max(widest, layer[3] * density)
            columns = max(columns, layer[2] * layer[4] ** 2 * density)
        elif kind == "res":                                 # ("res", name, c): two 3x3
            columns = max(columns, layer[2] * 9 * density)
        elif kind == "up":                                  # ("up", name, cin, cout): (CV2)'s
            columns = max(columns, layer[3] * 9 * density)  # columns are the small image's
            density *= 4
            widest = max(widest, layer[3] * density)
        elif kind == "resize":  # no up-sampled copy ((U4) works on the small image); the
            density *= 4        # reference's 3x3 runs at the up-sampled size
            widest = max(widest, layer[3] * density)
            columns = max(columns, layer[2] * 9 * density)
        elif kind == "out":                                 # ("out", name, cin, 3, k)
            columns = max(columns, layer[2] * layer[4] ** 2 * density)
    return COPIES_PER_ACTIVATION * 4 * widest + (4 * columns if settings.get().reference else 0)


def network_bytes(height, width, spec, scale=1):
    """Estimated peak bytes of a whole-image inference pass, this process's memory included."""
    return (_fixed_bytes(height, width, scale)
            + transformer_bytes_per_pixel(spec) * SAFETY * height * width)


def _fixed_bytes(height, width, scale):
    """What does not shrink with the tile: the process, the image (uint8) and the output
    (float32 and uint8, ``scale`` times larger on each side)."""
    return (current_rss() + FIXED_BYTES + height * width * 3
            + (scale * scale) * height * width * (12 + 3))


def tile_floor(margin, align):
    """The smallest core ``--tile`` may ask for: the margin (rounded up to the alignment).

    Below it each tile computes mostly margin -- (core + 2 margin)^2 pixels for core^2 kept: at
    ``--tile 3`` an 80x60 x4 upscale took 37 s instead of 0.14 s. At the floor at most 9 times
    the pixels kept, and the budget's own tiles (``--max-memory``) are not bounded by it.
    """
    return -(-margin // align) * align


def plan_network_tiles(budget, height, width, spec, scale=1, tile=None, band=32):
    """Tile core, margin and statistics-preview size of an image-to-image network under a budget.

    Parameters
    ----------
    budget : int or None
        Bytes for the whole process (``--max-memory``); None: no limit.
    height, width : int
        Input image size.
    tile : int, optional
        Core side asked for (``--tile``), raised to :func:`tile_floor`; the budget may make it
        smaller.

    Returns
    -------
    plan : dict or None
        None when the whole image fits at once; else ``core``, ``margin``,
        ``align``, ``band`` and ``preview`` (longest side of the copy whose
        instance-norm statistics the tiles use; ``None`` for the image itself).
    """
    radius, align = transformer_radius(spec)
    margin = radius + band // 2
    per_px = transformer_bytes_per_pixel(spec) * SAFETY
    fixed = _fixed_bytes(height, width, scale)
    if budget is None:
        avail = None
    else:
        avail = budget - fixed
        if avail < per_px * (2 * margin + 4 * align) ** 2:
            need = fixed + per_px * (2 * margin + 4 * align) ** 2
            raise NumstyleError(
                f"--max-memory {format_bytes(budget)} is too small for a {width}x{height} image: "
                f"the image, its output and one tile need about {format_bytes(need)}")
        if tile is None and per_px * height * width <= avail:
            return None  # fits whole: no tiles
    core = max(tile, tile_floor(margin, align)) if tile else max(height, width)
    if avail is not None:
        side = int((avail / per_px)**0.5)  # largest square tile that fits
        core = min(core, side - 2 * margin)
    if core >= max(height, width):
        return None
    preview = None
    if avail is not None and per_px * height * width > avail:  # statistics from a reduced copy
        preview = int((avail / per_px * max(height, width) / min(height, width)) ** 0.5)
    return {
        "core": max(align, core // align * align),
        "margin": margin,
        "align": align,
        "band": band,
        "preview": preview
    }


def tiled_transform(transform, plan_args):
    """Wrap ``transform(params, config, state, rgb, device, progress)`` (stylise, upscale) to run
    in tiles (``progress``: a bar over the tiles, or the layers of a pass over the whole image).

    Instance normalisation normalises each channel by the statistics of the
    whole image, which no tile sees: they are recorded first in one pass over
    the image (or, when even that does not fit, over a copy reduced to
    ``plan['preview']`` px -- an estimate), then every tile is normalised with
    them, like batch normalisation at inference. The network is then one fixed
    function and the tiles agree wherever they overlap (TL2).

    ``plan_args`` = ``(budget, tile)``; the plan is made per image.
    """
    budget, tile = plan_args

    def wrapped(params, config, state, rgb, device, progress=False):
        spec, scale = spec_from_config(config), config.get("scale", 1)
        plan = plan_network_tiles(budget, rgb.shape[0], rgb.shape[1], spec, scale, tile)
        if plan is None:
            return transform(params, config, state, rgb, device, progress)   # fits whole
        if config["norm"] == "instance":
            stats = init_state(params, "batch")  # {layer: {'mean', 'var'}}
            preview = rgb if plan["preview"] is None else resize(rgb, longer_side=plan["preview"])
            transform(params, config, stats, preview, device, progress)  # records them (N1)
            config, state = dict(config, norm="batch"), stats  # ... used as constants
        return apply_tiled(lambda t: transform(params, config, state, t, device), rgb, plan["core"],
                           plan["margin"], plan["align"], scale, plan["band"], progress)
    return wrapped
