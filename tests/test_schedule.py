"""Coarse-to-fine schedules (numstyle/schedule.py) and how ``numstyle gatys``
uses them (issue 22)."""
import json

import numpy as np
import pytest
from PIL import Image

from numstyle import gatys, schedule
from numstyle.commands import gatys as gatys_cli
from numstyle.cli import main
from numstyle.config import GATYS
from numstyle.image import deprocess, load_image, preprocess


@pytest.mark.parametrize("steps", [schedule.DEFAULT_STEPS, schedule.HALF_TIME_STEPS,
                                   ((1 / 3, 100), (1 / 2, 100), (3 / 4, 75), (1.0, 60))])
@pytest.mark.parametrize("size", [64, 100, 256, 384, 512, 1000, 4096])
def test_schedules_are_coarse_to_fine_and_end_at_the_size(size, steps):
    sizes, iters = schedule.default_schedule(size, steps)
    assert sizes[-1] == size and len(sizes) == len(iters) >= 1
    assert all(a < b for a, b in zip(sizes, sizes[1:])), sizes
    assert all(s >= schedule.MIN_SIZE for s in sizes[:-1]) and all(n >= 1 for n in iters)


def test_default_schedule_values_and_small_outputs():
    # measured: one scale stays (docs/benchmarks.md)
    assert schedule.default_schedule(384) == ([384], [300])
    assert schedule.default_schedule(384, schedule.HALF_TIME_STEPS) == ([288, 384], [40, 105])
    assert schedule.default_schedule(512, schedule.HALF_TIME_STEPS) == ([384, 512], [40, 105])
    four = ((1 / 3, 100), (1 / 2, 100), (3 / 4, 75), (1.0, 60))
    assert schedule.default_schedule(384, four) == ([128, 192, 288, 384], [100, 100, 75, 60])
    # 53 px: left out
    assert schedule.default_schedule(160, four) == ([80, 120, 160], [100, 75, 60])
    assert schedule.default_schedule(32, schedule.HALF_TIME_STEPS) == \
        ([32], [schedule.ONE_SCALE_ITERS])
    with pytest.raises(ValueError):
        schedule.default_schedule(0)
    with pytest.raises(ValueError, match="last step"):
        schedule.default_schedule(384, ((0.5, 10),))


def test_content_balance_is_the_pixel_ratio():
    assert schedule.content_balance((288, 384), (216, 288)) == \
        pytest.approx(384 * 288 / (288 * 216))
    assert schedule.content_balance((30, 40), (30, 40)) == 1.0


def test_resample_keeps_floats_bounds_and_constants(rng):
    flat = np.full((5, 7, 3), 100.25, np.float32)  # a fraction an 8-bit round trip would lose
    big = schedule.resample(flat, (10, 14))
    assert big.shape == (10, 14, 3) and big.dtype == np.float32
    np.testing.assert_allclose(big, 100.25, atol=1e-3)
    edges = np.zeros((8, 8, 3), np.float32)
    edges[:, 4:] = 255.0  # Lanczos overshoots at a step: clipped
    up = schedule.resample(edges, (16, 16))
    assert up.min() >= 0 and up.max() <= 255 and up[:, :6].max() < 60 and up[:, 10:].min() > 200
    with pytest.raises(ValueError):
        schedule.resample(flat, (4, 4), "nearest-ish")


def test_start_of_scale_adds_the_content_detail_the_coarse_scale_lost(rng):
    content = rng.uniform(0, 255, (24, 32, 3)).astype(np.float32)
    coarse = schedule.resample(content, (12, 16))  # a perfect coarse result: the content, small
    plain = schedule.start_of_scale(coarse, (24, 32), content, detail=0)
    # (CF1) with d = 1: back to the content
    full = schedule.start_of_scale(coarse, (24, 32), content)
    err = lambda x: np.abs(x - content).mean()                       # noqa: E731
    assert err(full) < 0.01 * err(plain), (err(full), err(plain))
    # texture synthesis: no detail
    assert np.array_equal(schedule.start_of_scale(coarse, (24, 32), None), plain)


@pytest.fixture
def pair(tmp_path):
    yy, xx = np.mgrid[0:48, 0:64]
    photo = np.stack([xx * 4, yy * 5, (xx + yy) * 2], -1).clip(0, 255).astype(np.uint8)
    Image.fromarray(photo).save(tmp_path / "photo.png")
    style = np.random.default_rng(5).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    Image.fromarray(style).save(tmp_path / "style.png")
    return str(tmp_path / "photo.png"), str(tmp_path / "style.png")


def gatys_argv(weights, pair, out, *extra):
    return ["gatys", "--weights", weights, "--content", pair[0], "--style", pair[1],
            "--no-progress", "--out", out, "--style-layers", "relu1_1,relu2_1,relu3_1",
            "--content-layer", "relu3_2"] + list(extra)


def test_json_is_the_only_thing_on_stdout(pair, synthetic_vgg, tmp_path, capsys):
    path, _ = synthetic_vgg("vgg16")
    out = str(tmp_path / "out.png")
    code = main(gatys_argv(path, pair, out, "--scales", "32,48", "--iters", "3,2",
                           "--print-every", "1", "--json"))
    printed, err = capsys.readouterr()
    assert code == 0, err
    lines = printed.strip().splitlines()
    assert len(lines) == 2, printed  # the record and the summary; scale and iteration lines: stderr
    record, summary = map(json.loads, lines)
    assert record["type"] == "output" and summary["type"] == "summary" and summary["outputs"] == 1
    for key in ("total", "content", "style", "tv", "iterations", "seconds", "out"):
        assert key in record, key
    assert record["out"] == out and record["iterations"] == 5 and record["scales"] == [32, 48]
    assert record["total"] == pytest.approx(record["content"] + record["style"] + record["tv"])
    assert record["seconds"] > 0 and "scale 2/2" in err and "iter 1:" in err
    with Image.open(out) as im:
        assert im.size == (48, 36)


def test_without_json_the_summary_is_on_stdout(pair, synthetic_vgg, tmp_path, capsys):
    path, _ = synthetic_vgg("vgg16")
    assert main(gatys_argv(path, pair, str(tmp_path / "o.png"),
                           "--size", "32", "--iters", "2")) == 0
    printed = capsys.readouterr().out
    assert "final loss: total" in printed and "{" not in printed


def test_plan_scales():
    assert gatys_cli.plan_scales(384, None, None) == schedule.default_schedule(384) == \
        ([384], [300])
    # --iters alone: one scale, as before
    assert gatys_cli.plan_scales(384, None, [300]) == ([384], [300])
    assert gatys_cli.plan_scales(384, [384], [300]) == ([384], [300])
    assert gatys_cli.plan_scales(384, [192, 384], None) == ([192, 384], [300, 300])
    assert gatys_cli.plan_scales(384, [192, 384], [7]) == ([192, 384], [7, 7])
    from numstyle.errors import NumstyleError
    with pytest.raises(NumstyleError, match="one per scale"):
        gatys_cli.plan_scales(384, [192, 384], [1, 2, 3])
    with pytest.raises(NumstyleError, match="coarse to fine"):
        gatys_cli.plan_scales(384, [384, 192], None)
    with pytest.raises(NumstyleError, match="each larger"):   # a scale twice: no enlargement
        gatys_cli.plan_scales(384, [192, 192, 384], None)


@pytest.mark.parametrize("flags",
                         [["--scales", "40", "--iters", "4"], ["--size", "40", "--iters", "4"]])
def test_one_scale_runs_as_before(flags, pair, synthetic_vgg, tmp_path, capsys):
    """``--scales N --iters K`` (or ``--iters K`` alone) is the one-scale run of before issue 22: K
    L-BFGS-B iterations from the content, the same image as the API gives, pixel for pixel."""
    path, params = synthetic_vgg("vgg16")
    out = str(tmp_path / "one.png")
    assert main(gatys_argv(path, pair, out, *flags)) == 0
    assert "scale 1/" not in capsys.readouterr().out
    content = preprocess(load_image(pair[0], 40))
    style = preprocess(load_image(pair[1], 40))
    objective = gatys.make_objective(params, "vgg16", content=content, styles=[style],
                                     style_layers=["relu1_1", "relu2_1", "relu3_1"],
                                     content_layer="relu3_2", tv_weight=GATYS.tv_weight)
    x, history = gatys.optimize(objective, content.copy(), 4, "lbfgs", progress=False)
    assert len(history) == 4
    assert np.array_equal(np.asarray(Image.open(out)), deprocess(x))


def test_the_default_is_the_schedule_with_balanced_content(pair, synthetic_vgg, tmp_path, capsys,
                                                           monkeypatch):
    """No --scales, no --iters: default_schedule's scales; the coarse scale's content weight is
    scaled by (CF2) and it starts from (CF1)."""
    path, _ = synthetic_vgg("vgg16")
    monkeypatch.setattr(gatys_cli, "default_schedule", lambda size: ([size // 2, size], [2, 1]))
    calls, real = [], gatys_cli.optimize_one_scale

    def spy(args, params, model, content_rgb, styles_rgb, x0, out, iters, content_weight=None,
            preview=None, final_hw=None):
        calls.append((content_rgb.shape[:2], x0.copy(), iters, content_weight))
        return real(args, params, model, content_rgb, styles_rgb, x0, out, iters, content_weight,
                    preview, final_hw)

    monkeypatch.setattr(gatys_cli, "optimize_one_scale", spy)
    assert main(gatys_argv(path, pair, str(tmp_path / "d.png"),
                           "--size", "48", "--content-weight", "2")) == 0
    assert "scale 2/2: 48x36" in capsys.readouterr().out
    (hw0, _, n0, w0), (hw1, x1, n1, w1) = calls
    assert (hw0, hw1, n0, n1) == ((18, 24), (36, 48), 2, 1)
    assert w0 == pytest.approx(2 * 4.0) and w1 == pytest.approx(2.0)
    # a float start, not 8-bit
    assert x1.dtype == np.float32 and not np.array_equal(x1, np.round(x1))
