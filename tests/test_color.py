"""Colour control and coarse-to-fine: on tiny images."""
import numpy as np
import pytest
from PIL import Image

from numstyle import color
from numstyle.cli import main


def test_yiq_round_trip_and_luminance(rng):
    rgb = rng.uniform(0, 255, (5, 6, 3))
    np.testing.assert_allclose(color.yiq_to_rgb(color.rgb_to_yiq(rgb)), rgb, atol=1e-9)
    grey = color.luminance_image(rgb)
    assert np.allclose(grey[..., 0], grey[..., 1]) and np.allclose(grey[..., 1], grey[..., 2])


def test_restore_chroma_keeps_the_photos_chroma(rng):
    photo = rng.uniform(30, 220, (8, 8, 3))
    stylised = rng.uniform(0, 255, (8, 8, 3))
    out = color.restore_chroma(stylised, photo)
    yiq_out, yiq_photo = color.rgb_to_yiq(out), color.rgb_to_yiq(photo)
    # chroma (I, Q) is the photo's, up to clipping into 0..255 (none here: mid-range photo)
    inside = (out > 0.5).all(-1) & (out < 254.5).all(-1)
    np.testing.assert_allclose(yiq_out[inside][:, 1:], yiq_photo[inside][:, 1:], atol=0.5)
    np.testing.assert_allclose(yiq_out[inside][:, 0], color.rgb_to_yiq(stylised)[inside][:, 0],
                               atol=0.5)


def test_match_color_gives_the_targets_mean_and_covariance(rng):
    src = rng.uniform(0, 80, (40, 40, 3)) @ np.array([[1, 0.3, 0], [0, 1, 0.2], [0.1, 0, 1]])
    tgt = rng.normal([150, 90, 60], [20, 15, 10], (30, 30, 3))
    out = color.match_color(src, tgt).reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(out.mean(0), tgt.reshape(-1, 3).mean(0), atol=1.0)
    np.testing.assert_allclose(np.cov(out, rowvar=False), np.cov(tgt.reshape(-1, 3), rowvar=False),
                               rtol=0.1, atol=5)


@pytest.fixture
def two_images(tmp_path, rng):
    yy, xx = np.mgrid[0:32, 0:40]
    photo = np.stack([xx * 6, yy * 7, np.full_like(xx, 90)], -1).clip(0, 255).astype(np.uint8)
    Image.fromarray(photo).save(tmp_path / "photo.png")
    Image.fromarray(rng.integers(0, 256, (36, 36, 3), dtype=np.uint8)).save(tmp_path / "style.png")
    return str(tmp_path / "photo.png"), str(tmp_path / "style.png")


def test_gatys_luminance_keeps_chroma_and_scales_run(two_images, synthetic_vgg, tmp_path, capsys):
    photo, style = two_images
    path, _ = synthetic_vgg("vgg16")
    out = str(tmp_path / "lum.png")
    assert main(["gatys", "--content", photo, "--style", style, "--weights", path, "--iters", "3",
                 "--no-progress", "--preserve-colors", "luminance", "--scales", "20,40",
                 "--style-scale", "0.8", "--out", out]) == 0
    printed = capsys.readouterr().out
    assert "scale 1/2: 20x16" in printed and "scale 2/2: 40x32" in printed
    result = np.asarray(Image.open(out), dtype=np.float64)
    src = np.asarray(Image.open(photo), dtype=np.float64)
    assert result.shape == src.shape
    inside = (result > 2).all(-1) & (result < 253).all(-1)
    chroma_err = np.abs(color.rgb_to_yiq(result)[..., 1:] - color.rgb_to_yiq(src)[..., 1:])[inside]
    assert chroma_err.mean() < 1.5, chroma_err.mean()    # 8-bit rounding only
    assert main(["gatys", "--content", photo, "--style", style, "--weights", path, "--iters", "2",
                 "--no-progress", "--preserve-colors", "histogram", "--size", "32",
                 "--out", str(tmp_path / "hist.png")]) == 0
