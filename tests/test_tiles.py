"""Tiles: the grid, receptive radii, exact tiled Gatys, blended tiled stylising, memory plans."""
import numpy as np
import pytest

from numstyle import gatys
from numstyle import gatys_tiled
from numstyle.config import GATYS
from numstyle.errors import NumstyleError
from numstyle.stylize import stylize_array
from numstyle.models import spec_from_config
from numstyle.tiles import (apply_tiled, blend_weights, parse_memory, plan_network_tiles, tile_grid,
                            tiled_transform, transformer_radius)
from numstyle.transformer import init_params, init_state, to_input, transformer_forward
from numstyle.vgg import VGG, layer_names, pools_before, random_params

TINY_VGG = (4, 6, 8, 8, 8)                 # channels per block: VGG's depth, not its width
STYLE_CONFIG = {"kind": "style", "width": [8, 8, 8], "n_res": 2, "norm": "instance"}


@pytest.mark.parametrize("seed", range(6))
def test_grid_cores_partition_the_image(seed):
    rng = np.random.default_rng(seed)
    H, W, align = int(rng.integers(1, 300)), int(rng.integers(1, 300)), int(rng.choice([1, 4, 16]))
    core, margin = int(rng.integers(1, 120)), int(rng.integers(0, 60))
    count = np.zeros((H, W), int)
    for t in tile_grid(H, W, core, margin, align):
        y0, y1, x0, x1 = t.core
        by0, by1, bx0, bx1 = t.box
        count[y0:y1, x0:x1] += 1
        assert by0 <= y0 and bx0 <= x0 and y1 <= by1 and x1 <= bx1, \
            f"box {t.box} does not hold core {t.core}"
        assert y0 % align == 0 and x0 % align == 0 and by0 % align == 0 and bx0 % align == 0, \
            f"tile {t} not aligned to {align}"
    assert (count == 1).all(), \
        f"cores of a {H}x{W} grid (core {core}, align {align}) cover pixels " \
        f"{count.min()}..{count.max()} times, not once"


@pytest.mark.parametrize("size,core,band", [(100, 30, 16), (64, 64, 8), (257, 40, 32), (90, 17, 5)])
def test_blend_weights_sum_to_one(size, core, band):
    total = np.zeros(size, np.float64)
    for lo in range(0, size, core):
        start, w = blend_weights(1, lo, min(lo + core, size), size, band)
        total[start:start + len(w)] += w
    np.testing.assert_allclose(total, 1.0, atol=1e-6,
                               err_msg="the blend weights (TL2) must sum to one")


@pytest.mark.parametrize("upsample", ["transposed", "nearest"])
def test_transformer_radius_is_the_reach_of_one_pixel(upsample):
    """(TL1): changing one input pixel changes outputs within the radius, and some at its edge."""
    # fixed statistics: a local function
    config = dict(STYLE_CONFIG, norm="batch", upsample=upsample)
    spec = spec_from_config(config)
    params = init_params(spec, seed=3)
    state = init_state(params, "batch")
    radius, _ = transformer_radius(spec)
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, 160, 160)).astype(np.float32)
    y0, _ = transformer_forward(params, x, spec, "batch", train=False, state=state,
                                keep_caches=False)
    x[0, :, 80, 80] += 1.0
    y1, _ = transformer_forward(params, x, spec, "batch", train=False, state=state,
                                keep_caches=False)
    rows, cols = np.nonzero(np.abs(y1 - y0)[0].max(0) > 0)
    reach = max(np.abs(rows - 80).max(), np.abs(cols - 80).max())
    # dead ReLUs can stop a change short of the radius, never carry it beyond
    assert radius - 4 <= reach <= radius, \
        f"one pixel reaches {reach} px; the radius (TL1) says {radius}"


def test_vgg_radius_is_the_reach_of_one_pixel():
    model, layers = "vgg16", ["relu3_1"]
    params = random_params(model, TINY_VGG, seed=1)
    radius, align = gatys_tiled.vgg_radius(model, layers)
    x = np.random.default_rng(1).uniform(-50, 50, (1, 3, 96, 96)).astype(np.float32)
    net = VGG(params, model, "avg", layers)
    f0 = net.forward(x, layers)[0]["relu3_1"].copy()
    x[0, :, 48, 48] += 100.0
    f1 = net.forward(x, layers)[0]["relu3_1"]
    rows, cols = np.nonzero(np.abs(f1 - f0)[0].max(0) > 0)
    step = 2 ** pools_before("relu3_1")
    # in input pixels
    reach = max(max(48 - r * step, (r + 1) * step - 1 - 48) for r in np.r_[rows, cols])
    assert reach <= radius, f"one pixel reaches {reach} px at relu3_1, beyond the radius {radius}"


CASES = [("vgg16", ["relu1_1", "relu2_1", "relu3_1"], "relu2_2", (70, 93), 16),
         ("vgg19", list(GATYS.style_layers), "relu4_2", (230, 200), 64)]


@pytest.mark.parametrize("model,style_layers,content_layer,size,tile", CASES)
def test_tiled_objective_equals_whole_image(model, style_layers, content_layer, size, tile):
    """(TL3), (TL4): the same loss and gradient as the untiled objective."""
    params = random_params(model, TINY_VGG, seed=0)
    rng = np.random.default_rng(0)
    content, x = (rng.uniform(-100, 100, (1, 3) + size).astype(np.float32) for _ in range(2))
    style = rng.uniform(-100, 100, (1, 3, 110, 130)).astype(np.float32)
    kw = dict(content=content, styles=[style], content_layer=content_layer,
              style_layers=style_layers, tv_weight=1e-3)
    whole = gatys.make_objective(params, model, **kw)
    tiled = gatys_tiled.make_objective(params, model, tile=tile, **kw)
    assert isinstance(tiled, gatys_tiled.TiledObjective) and len(tiled.grid) > 4
    for name in style_layers:   # float32 sums in another order: ~1e-6 relative
        np.testing.assert_allclose(tiled.style_targets[name], whole.style_targets[name], rtol=1e-4,
                                   atol=1e-3, err_msg=f"tiled Gram target at {name}")
    f_whole, g_whole = whole(x)
    f_tiled, g_tiled = tiled(x)
    assert abs(f_tiled - f_whole) <= 1e-5 * abs(f_whole), f"loss {f_tiled} tiled vs {f_whole} whole"
    err = np.abs(g_tiled - g_whole).max() / np.abs(g_whole).max()
    assert err < 1e-4, \
        f"tiled gradient differs from the whole image's by {err:.2e} (float32 sums: ~1e-6)"


def test_tiles_need_their_margin(monkeypatch):
    """The test above can fail: a third of the receptive radius as margin gives a wrong gradient."""
    model, style_layers, content_layer, size, tile = CASES[1]
    params = random_params(model, TINY_VGG, seed=0)
    rng = np.random.default_rng(0)
    content, x = (rng.uniform(-100, 100, (1, 3) + size).astype(np.float32) for _ in range(2))
    kw = dict(content=content, styles=[content], content_layer=content_layer,
              style_layers=style_layers)
    g_whole = gatys.make_objective(params, model, **kw)(x)[1]
    radius = gatys_tiled.vgg_radius
    monkeypatch.setattr(gatys_tiled, "vgg_radius",
                        lambda m, l: (radius(m, l)[0] // 3, radius(m, l)[1]))
    g_short = gatys_tiled.make_objective(params, model, tile=tile, **kw)(x)[1]
    assert np.abs(g_short - g_whole).max() / np.abs(g_whole).max() > 1e-3


def _style_net(seed=1, config=STYLE_CONFIG):
    spec = spec_from_config(config)
    params = init_params(spec, seed=seed)
    rng = np.random.default_rng(seed)
    for k in params:  # non-trivial norms, so that wrong statistics would show
        if k.endswith(".beta"):
            params[k] += rng.normal(0, 0.5, params[k].shape).astype(np.float32)
    return params


@pytest.mark.parametrize("upsample", ["transposed", "nearest"])
def test_tiled_stylize_equals_untiled(upsample):
    """Statistics of the whole image, tiles with exact margins: equal everywhere,
    blend zones included."""
    config = dict(STYLE_CONFIG, upsample=upsample)
    params = _style_net(config=config)
    rgb = np.random.default_rng(0).uniform(0, 255, (150, 203, 3)).astype(np.float32)   # odd sizes
    whole = stylize_array(params, config, {}, rgb)
    tiled = tiled_transform(stylize_array, (None, 40))(params, config, {}, rgb, "cpu")
    assert tiled.shape == whole.shape
    assert np.abs(tiled - whole).max() < 1e-2, \
        f"max difference {np.abs(tiled - whole).max()} (0..255 scale)"


def test_tiled_stylize_blends_where_tiles_differ():
    """Short margins: tiles differ near their edges; away from the blend zones they
    equal the untiled run."""
    params = _style_net()
    spec = spec_from_config(STYLE_CONFIG)
    rgb = np.random.default_rng(2).uniform(0, 255, (120, 160, 3)).astype(np.float32)
    stats = init_state(params, "batch")
    stylize_array(params, STYLE_CONFIG, stats, rgb)  # records (N1) statistics
    fixed = dict(STYLE_CONFIG, norm="batch")
    whole = stylize_array(params, fixed, stats, rgb)
    radius, align = transformer_radius(spec)
    core, band = 40, 16
    fn = lambda t: stylize_array(params, fixed, stats, t)                             # noqa: E731
    short = apply_tiled(fn, rgb, core, margin=band // 2 + radius // 2, align=align, band=band)
    diff = np.abs(short - whole).max(-1)
    far = np.ones_like(diff, bool)  # farther than the radius' half from any core edge
    for edge in range(core, 160, core):
        far[:, max(0, edge - radius // 2):edge + radius // 2] = False
    for edge in range(core, 120, core):
        far[max(0, edge - radius // 2):edge + radius // 2, :] = False
    assert diff[far].max() < 1e-2, f"tiles differ by {diff[far].max()} away from the blend zones"
    assert diff.max() > 1e-2, "short margins should make the tiles differ near their edges"


def test_tiled_upscale_keeps_scale_times_the_size():
    from numstyle.sr import upscale_array
    from numstyle.transformer import sr_spec

    config = {"kind": "sr", "scale": 4, "width": 8, "n_res": 2, "norm": "batch", "skip": True}
    params = init_params(sr_spec(4, 8, 2), seed=0)
    state = init_state(params, "batch")
    rgb = np.random.default_rng(0).uniform(0, 255, (37, 51, 3)).astype(np.float32)
    whole = upscale_array(params, config, state, rgb)
    # 12: raised to the margin
    tiled = tiled_transform(upscale_array, (None, 12))(params, config, state, rgb, "cpu")
    assert tiled.shape == (148, 204, 3)
    assert np.abs(tiled - whole).max() < 1e-2, f"max difference {np.abs(tiled - whole).max()}"


def test_memory_plans(monkeypatch):
    # the plans count this process's resident memory as taken; pytest's own (hundreds of MB after
    # the other tests, more or less by test order) made this test flaky:
    # plan as from a fresh 200 MB process
    import numstyle.tiles
    monkeypatch.setattr(numstyle.tiles, "current_rss", lambda: 200 << 20)
    spec = spec_from_config(STYLE_CONFIG)
    assert plan_network_tiles(parse_memory("20GB"), 300, 400, spec) is None            # fits whole
    plan = plan_network_tiles(parse_memory("1GB"), 4096, 4096, spec)
    assert (plan["core"] % plan["align"] == 0 and 64 <= plan["core"] < 4096
            and plan["preview"] < 4096)
    with pytest.raises(NumstyleError, match="too small"):
        plan_network_tiles(parse_memory("100MB"), 4096, 4096, spec)
    core, maxcor = gatys_tiled.plan_gatys(parse_memory("1GB"), (1, 3, 1024, 1024), "vgg16",
                                          list(GATYS.style_layers), "relu4_2", "adam")
    assert core is not None and core % 16 == 0
    with pytest.raises(NumstyleError, match="adam needs about 1.3 GB"):
        # L-BFGS ~2.6 GB, Adam ~1.3 GB
        gatys_tiled.plan_gatys(parse_memory("1.5GB"), (1, 3, 2048, 2048), "vgg16", ["relu5_1"],
                               "relu4_2", "lbfgs")
    with pytest.raises(NumstyleError, match=r"need about [\d.]+ GB$"):
        # no hint: Adam would not fit either
        gatys_tiled.plan_gatys(parse_memory("1GB"), (1, 3, 2048, 2048), "vgg16", ["relu5_1"],
                               "relu4_2", "lbfgs")
    assert gatys_tiled.plan_gatys(None, (1, 3, 64, 64), "vgg16", ["relu1_1"], None) == (None, 10)


@pytest.mark.parametrize("text,value", [("2GB", 2 << 30), ("1.5g", 3 << 29), ("800MB", 800 << 20),
                                        ("4096", 4096)])
def test_parse_memory(text, value):
    assert parse_memory(text) == value


@pytest.mark.parametrize("text", ["", "2TB", "-1GB", "GB", "two"])
def test_parse_memory_rejects(text):
    with pytest.raises(NumstyleError, match="memory size"):
        parse_memory(text)


def test_layer_order_has_every_pool():
    assert [n for n in layer_names("vgg19") if n.startswith("pool")] == \
        [f"pool{b}" for b in range(1, 6)]


def test_cli_stylize_with_tiles_matches_untiled(tmp_path, capsys):
    from PIL import Image

    from numstyle import models
    from numstyle.cli import main

    model = str(tmp_path / "m.h5")
    models.save_model(model, _style_net(), STYLE_CONFIG)
    photo = str(tmp_path / "odd.png")
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (97, 131, 3),
                                                      dtype=np.uint8)).save(photo)
    outs = {}
    for name, extra in [("whole", []), ("tiled", ["--tile", "32"])]:
        outs[name] = str(tmp_path / f"{name}.png")
        assert main(["stylize", "--model", model, photo, "--out", outs[name],
                     "--no-progress"] + extra) == 0
    a, b = (np.asarray(Image.open(outs[k]), dtype=int) for k in ("whole", "tiled"))
    assert a.shape == b.shape == (97, 131, 3) and np.abs(a - b).max() <= 1, \
        "rounding is all that may differ"
    with pytest.raises(SystemExit):                                   # argparse's usage error
        main(["stylize", "--model", model, photo, "--out", outs["tiled"], "--max-memory", "lots"])
    assert "memory size" in capsys.readouterr().err


@pytest.mark.parametrize("extra, bars_shown", [([], ["layers"]),
                                               (["--tile", "32"], ["layers", "tiles"])])
def test_cli_stylize_one_image_shows_its_own_bar(extra, bars_shown, tmp_path, monkeypatch):
    """One large image is one long pass: its bar is over the layers (tiled: the pass recording
    the norms' statistics, then the tiles); several inputs and --no-progress show none."""
    import tqdm
    from PIL import Image

    from numstyle import models
    from numstyle.cli import main

    bars, real = [], tqdm.tqdm
    monkeypatch.setattr(tqdm, "tqdm", lambda *a, **k: bars.append(k) or real(*a, **k))
    model = str(tmp_path / "m.h5")
    models.save_model(model, _style_net(), STYLE_CONFIG)
    photos = [str(tmp_path / f"p{i}.png") for i in range(2)]
    for p in photos:
        Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(p)

    def shown(inputs, *more):
        bars.clear()
        assert main(["stylize", "--model", model, *inputs, "--out", str(tmp_path / "o"),
                     "--overwrite", *extra, *more]) == 0
        return [k["desc"] for k in bars if k.get("desc") in ("layers", "tiles")
                and not k.get("disable")]

    assert shown(photos[:1]) == bars_shown
    assert shown(photos) == []
    assert shown(photos[:1], "--no-progress") == []


def test_cli_gatys_with_tiles_and_per_scale_iterations(synthetic_vgg, tmp_path, capsys):
    from PIL import Image

    from numstyle.cli import main

    path, _ = synthetic_vgg("vgg16")
    rgb = np.random.default_rng(0).integers(0, 256, (90, 120, 3), dtype=np.uint8)
    photo = str(tmp_path / "photo.png")
    Image.fromarray(rgb).save(photo)
    base = ["gatys", "--weights", path, "--content", photo, "--style", photo, "--no-progress",
            "--style-layers", "relu1_1,relu2_1", "--content-layer", "relu2_2"]
    out = str(tmp_path / "out.png")
    assert main(base + ["--scales", "48,96", "--iters", "2,1", "--tile", "32", "--out", out]) == 0
    printed = capsys.readouterr().out
    assert "tiles:" in printed and "scale 2/2" in printed
    with Image.open(out) as im:
        assert im.size == (96, 72)
    assert main(base + ["--scales", "48,96", "--iters", "2,1,3", "--out", out]) == 1
    assert "one per scale" in capsys.readouterr().err


@pytest.mark.parametrize("reference", [False, True])
def test_the_memory_estimates_cover_each_engine(reference, monkeypatch):
    # what --max-memory plans with (bytes per pixel x SAFETY) is at least what NumPy allocates at
    # the peak of a pass (tracemalloc), for the fast engine and for the reference engine, whose
    # whole-image im2col is several times larger (the shipped networks' widths, 128 px; the
    # fixed part of each plan covers the bands and kernels)
    import tracemalloc

    from numstyle import settings, tiles, vgg
    from numstyle.transformer import style_spec

    monkeypatch.setenv("NUMSTYLE_REFERENCE", "1" if reference else "0")
    settings.reload()
    try:
        side, rng = 128, np.random.default_rng(0)
        config = {"kind": "style", "norm": "instance", "width": [16, 32, 64], "n_res": 5,
                  "upsample": "nearest"}
        spec = style_spec((16, 32, 64), 5, "nearest")
        params = init_params(spec)
        state = init_state(params, "instance")
        rgb = rng.uniform(0, 255, (side, side, 3)).astype(np.float32)
        stylize_array(params, config, state, rgb)                  # compiled kernels, buffers
        tracemalloc.start()
        stylize_array(params, config, state, rgb)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        planned = tiles.transformer_bytes_per_pixel(spec) * tiles.SAFETY * side ** 2
        assert peak <= planned + tiles.FIXED_BYTES, (peak, planned)  # + bands, kernels
        if reference:                                  # the fast engine's estimate would not do
            fast = tiles.COPIES_PER_ACTIVATION * 4 * 64 / 4 * tiles.SAFETY * side ** 2
            assert peak > fast + tiles.FIXED_BYTES, (peak, fast)

        vgg_params = vgg.random_params("vgg16", upto="relu5_1")
        img = lambda: rng.normal(0, 50, (1, 3, side, side)).astype(np.float32)  # noqa: E731
        obj = gatys.make_objective(vgg_params, "vgg16", content=img(), styles=[img()])
        x = img()
        obj(x)
        tracemalloc.start()
        obj(x)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        planned = gatys_tiled.tile_bytes_per_pixel("vgg16") * gatys_tiled.SAFETY * side ** 2
        assert peak <= planned + gatys_tiled.FIXED_BYTES, (peak, planned)
    finally:
        monkeypatch.delenv("NUMSTYLE_REFERENCE")
        settings.reload()
