r"""The Gatys objective of an image too large to hold VGG's activations, computed tile by tile.

Exact, not an approximation: the loss and gradient are those of the whole
image (the tests compare them with :class:`numstyle.gatys.Objective`).

Notes
-----
A Gram matrix is a sum over pixels, so it is a sum over any partition of the
pixels -- the tiles' cores :math:`T`:

.. math::  G^l = \sum_{T} F^l_T\, F^{l\top}_T                                           \tag{TL3}

Each core's features are exact when its tile carries a margin of VGG's
receptive radius (TL1). So one evaluation is two passes over the tiles:

1. forward only: sum (TL3), then the style loss (S3) and ``dG`` (S4) of the whole image;
2. forward again, and backward from each core's share of the gradient --
   ``(dG + dG^T) F_T`` (S2) and the content term (C2) on the core, zero on the
   margin -- adding each tile's input gradient into the image's (a pixel in
   several tiles' margins sums its shares, as (V1) sums paths):

.. math::  \frac{\partial L}{\partial x} = \sum_T \Big(\frac{\partial F_T}{\partial x}\Big)^{\!\top}
           \frac{\partial L}{\partial F_T}                                               \tag{TL4}

The cost is one extra forward pass per evaluation plus the margins; the
memory is one tile's activations.
"""
from . import engine, gatys, settings, tiles
from .backend import get_xp
from .config import GATYS
from .errors import NumstyleError
from .gatys import Objective, blend_targets, check_inputs
from .tiles import tile_grid
from .vgg import VGG, layer_names, pools_before


def vgg_radius(model, layers):
    """Receptive radius (TL1) of VGG up to the deepest of ``layers``, and its alignment
    ``2**pools``."""
    order = layer_names(model)
    deepest = max(order.index(name) for name in layers)
    r, j = 0, 1
    for name in order[:deepest + 1]:
        if name.startswith("conv"):
            r += j                                   # 3x3 convolution, (TL1)
        elif name.startswith("pool"):
            r += j                                   # 2x2 window: one more pixel of this layer ...
            j *= 2                                   # ... and half the resolution
    return r, 2 ** pools_before(order[deepest])


def vgg_grid(shape, model, layers, core):
    """Tiles for an image of ``shape`` (1, 3, H, W): cores of about ``core`` px, exact margins."""
    radius, align = vgg_radius(model, layers)
    return tile_grid(shape[2], shape[3], core, radius, align)


def tiled_gram(net, x, layers, grid, losses):
    """Whole-image Gram matrices ``{layer: (1, N_l, N_l)}`` summed over the cores (TL3)."""
    G = {}
    for t in grid:
        ys, xs = t.input_slices()
        feats, _ = net.forward(x[:, :, ys, xs], layers, keep_cache=False)
        for name in layers:
            cy, cx = t.core_in_layer(2 ** pools_before(name))
            g, _ = losses.gram_forward(feats[name][:, :, cy, cx])  # (1, N, N)   (S1) of one core
            G[name] = g if name not in G else G[name] + g                 # (TL3)
    return G


def tiled_features(net, x, layer, grid):
    """The whole image's activation at ``layer`` (1, C, H_l, W_l), assembled from the cores."""
    xp = get_xp(x)
    step = 2 ** pools_before(layer)
    out = None
    for t in grid:
        ys, xs = t.input_slices()
        feats, _ = net.forward(x[:, :, ys, xs], [layer], keep_cache=False)
        F = feats[layer]
        if out is None:
            out = xp.zeros((1, F.shape[1], x.shape[2] // step, x.shape[3] // step), F.dtype)
        cy, cx = t.core_in_layer(step)
        gy, gx = t.core_in_image(step)
        out[:, :, gy, gx] = F[:, :, cy, cx]
    return out


def make_objective(params, model=GATYS.model, content=None, styles=(), style_blend=None,
                   pool=GATYS.pool, content_layer=GATYS.content_layer,
                   style_layers=GATYS.style_layers, style_layer_weights=None,
                   content_weight=GATYS.content_weight, style_weight=GATYS.style_weight,
                   tv_weight=GATYS.tv_weight, shape=None, tile=None):
    """:func:`numstyle.gatys.make_objective` computed in tiles with cores of about ``tile`` pixels:
    the same loss and gradient in the memory of one tile's activations (``tile`` None: the
    whole image at once, :func:`numstyle.gatys.make_objective` itself)."""
    if tile is None:
        return gatys.make_objective(params, model, content, styles, style_blend, pool,
                                    content_layer, style_layers, style_layer_weights,
                                    content_weight, style_weight, tv_weight, shape)
    spec = check_inputs(model, content, styles, style_blend, content_layer, style_layers,
                        style_layer_weights, shape)
    taps = ([content_layer] if content is not None else []) + (list(style_layers) if styles else [])
    net = VGG(params, model, pool, taps)
    L = engine.losses(get_xp(params["conv1_1"][0]))
    grid = lambda s: vgg_grid(s, model, taps, tile)                                 # noqa: E731
    content_target = None
    if content is not None:
        content_target = tiled_features(net, content, content_layer, grid(content.shape))
    grams = [tiled_gram(net, style, style_layers, grid(style.shape), L)
             for style in styles]  # (TL3)
    style_targets = blend_targets(grams, [s.shape for s in styles], spec["shape"], style_layers,
                                  spec["style_blend"], L)
    tiles = grid(spec["shape"])
    args = (net, spec["shape"], content_layer, style_layers, spec["style_layer_weights"],
            content_weight, style_weight, tv_weight, content_target, style_targets, L)
    return TiledObjective(*args, grid=tiles) if len(tiles) > 1 else Objective(*args)


class TiledObjective(Objective):
    r"""The Gatys loss (G1) and its gradient, two passes over tiles (TL3), (TL4).

    Same constructor as :class:`numstyle.gatys.Objective` plus ``grid``
    (from :func:`vgg_grid`); the targets are the whole image's.
    """

    def __init__(self, *args, grid):
        super().__init__(*args)
        self.grid = grid
        H, W = self.shape[2:]
        self.M = {
            name: (H >> pools_before(name)) * (W >> pools_before(name))
            for name in self.style_layers
        }

    def __call__(self, x):
        xp, L = get_xp(x), self.losses
        parts, dG = {"content": 0.0, "style": 0.0, "tv": 0.0}, {}
        if self.style_targets:                                                       # pass 1
            G = tiled_gram(self.net, x, self.style_layers, self.grid, L)             # (TL3)
            for name, w_l in zip(self.style_layers, self.style_layer_weights):
                loss, dG[name] = L.style_loss_from_gram(G[name], self.style_targets[name],
                                                        self.M[name],
                                                        self.style_weight * w_l)  # (S3), (S4)
                parts["style"] += loss                                                # (S6)
        grad = xp.zeros_like(x)
        for t in self.grid:                                                           # pass 2
            ys, xs = t.input_slices()
            feats, cache = self.net.forward(x[:, :, ys, xs], self.layers)
            dfeats = {}
            if self.content_target is not None:
                name = self.content_layer
                cy, cx = t.core_in_layer(2 ** pools_before(name))
                gy, gx = t.core_in_image(2 ** pools_before(name))
                loss, dcore = L.content_loss(feats[name][:, :, cy, cx], self.content_target[:, :,
                                                                                            gy, gx],
                                             self.content_weight)  # (C1), (C2) on the core
                parts["content"] += loss
                dfeats[name] = _on_core(feats[name], cy, cx, dcore)
            for name in dG:
                cy, cx = t.core_in_layer(2 ** pools_before(name))
                core = feats[name][:, :, cy, cx]                                      # (1, N, h, w)
                dcore = L.gram_backward(dG[name], core.reshape(1, core.shape[1],
                                                               -1))  # (1, N, h w)  (S2)
                d = _on_core(feats[name], cy, cx, dcore.reshape(core.shape))
                dfeats[name] = dfeats[name] + d if name in dfeats else d
            feats = core = None  # free the copies first
            grad[:, :, ys, xs] += self.net.backward(dfeats, cache)                    # (V1), (TL4)
        return self.finish(x, grad, parts)


def _on_core(F, cy, cx, dcore):
    """A gradient shaped like the tile's activation ``F``: ``dcore`` on the core, zero on the
    margin."""
    d = get_xp(F).zeros_like(F)
    d[:, :, cy, cx] = dcore
    return d


# Peak bytes per pixel of one tile's evaluation (forward with caches, then the
# input-gradient backward), measured with tracemalloc at 128² and 256² (the
# slope between them; docs/large-images.md): 2340 B/px for VGG16, 2430 for VGG19 (1830 and 1940
# on 2026-12-07: the estimate stays on the safe side). The reference engine's whole-image im2col
# (conv1_2's: 64 x 9 floats a pixel) makes it 3610 for both (2026-12-07).
TILE_BYTES_PER_PIXEL = {"vgg16": 2400, "vgg19": 2500}
REFERENCE_TILE_BYTES_PER_PIXEL = {"vgg16": 3700, "vgg19": 3700}


def tile_bytes_per_pixel(model):
    """:data:`TILE_BYTES_PER_PIXEL`, or the reference engine's under ``NUMSTYLE_REFERENCE``."""
    return (REFERENCE_TILE_BYTES_PER_PIXEL if settings.get().reference
            else TILE_BYTES_PER_PIXEL)[model]
SAFETY = 1.25                       # allocator and BLAS overhead above what NumPy asks for
FIXED_BYTES = 64 << 20              # bands, Winograd scratch, Gram matrices


def optimizer_bytes(n, optimizer, maxcor=10):
    """Memory of the optimiser for ``n`` pixel values: L-BFGS's history and copies, or Adam's
    moments."""
    if optimizer == "lbfgs":
        return 8 * n * (2 * maxcor + 12
                        )  # s, y pairs (2m n), its 5 n work vectors, x, g, bounds, float64 copies
    if optimizer == "lbfgs-device":
        return 4 * n * (2 * maxcor + 10
                        )  # float32 s, y pairs; x, g, d, the trial x and g, bounds, work copies
    return 4 * n * 8                        # x, g, m, v, bounds and the clipped copy, float32


def _fixed_bytes(shape, content_layer, weight_bytes):
    """What does not shrink with the tile: the process, the weights, the image's copies."""
    H, W = shape[2], shape[3]
    image = 4 * 3 * H * W * 8  # content, style, x, grad, TV terms, RGB copies
    if content_layer is not None:
        step = 2 ** pools_before(content_layer)
        image += 4 * 512 * (H // step) * (W // step)  # the content target P^l (<= 512 channels)
    return tiles.current_rss() + 2 * weight_bytes + FIXED_BYTES + image  # Winograd: 2x weights


def whole_bytes(shape, model, content_layer=None, optimizer="lbfgs", weight_bytes=0):
    """Estimated peak bytes of a Gatys run on the whole image at once (no tiles), this process's
    memory included: what :func:`plan_gatys` compares with a budget."""
    n = 3 * shape[2] * shape[3]
    return (_fixed_bytes(shape, content_layer, weight_bytes) + optimizer_bytes(n, optimizer)
            + tile_bytes_per_pixel(model) * SAFETY * shape[2] * shape[3])


def plan_gatys(budget, shape, model, layers, content_layer=None, optimizer="lbfgs", tile=None,
               weight_bytes=0):
    """Tile core (and L-BFGS-B's history length) so that one Gatys run fits ``budget`` bytes.

    ``tile`` (``--tile``) is raised to the margin (:func:`numstyle.tiles.tile_floor`): smaller
    cores would compute mostly margin.

    Returns
    -------
    core : int or None
        Core side for :func:`vgg_grid`; None when the image fits whole.
    maxcor : int
        L-BFGS's number of kept correction pairs (10 unless memory is short; at least 3).
    """
    H, W = shape[2], shape[3]
    n = 3 * H * W
    radius, align = vgg_radius(model, layers)
    margin = -(-radius // align) * align
    if tile is not None:
        tile = max(tile, tiles.tile_floor(margin, align))
    per_px = tile_bytes_per_pixel(model) * SAFETY
    fixed = _fixed_bytes(shape, content_layer, weight_bytes)
    if budget is None:
        return tile, 10
    smallest = per_px * (2 * margin + 4 * align) ** 2                  # a tile with a 4-step core
    best = None
    for maxcor in ((10, 7, 5, 3) if optimizer.startswith("lbfgs") else
                   (10, )):  # a shorter history before smaller tiles
        avail = budget - fixed - optimizer_bytes(n, optimizer, maxcor)
        if avail < smallest:
            continue
        if tile is None and per_px * H * W <= avail:
            return None, maxcor                                        # fits whole
        core = int((avail / per_px)**0.5) - 2 * margin  # the largest square tile that fits
        if best is None or core > best[0]:
            best = (core, maxcor)
        if core >= 4 * margin:  # margins under ~half the work: good enough
            break
    if best is None:
        need = fixed + optimizer_bytes(n, optimizer, 3) + smallest
        adam = fixed + optimizer_bytes(n, "adam") + smallest
        fits = optimizer.startswith("lbfgs") and adam <= budget
        hint = f"; --optimizer adam needs about {tiles.format_bytes(adam)}" if fits else ""
        raise NumstyleError(
            f"--max-memory {tiles.format_bytes(budget)} is too small for a {W}x{H} Gatys run "
            f"with {model}: the image, the optimiser and one tile need about "
            f"{tiles.format_bytes(need)}{hint}")
    core, maxcor = best
    if tile is not None:
        core = min(core, tile)
    return max(align, core // align * align), maxcor
