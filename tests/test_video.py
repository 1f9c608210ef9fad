"""Videos and frame folders through ``numstyle stylize``, and flicker reduction (VD1)-(VD2)."""
import os

import numpy as np
import pytest
from PIL import Image

from numstyle.commands import media
from numstyle.cli import main


def test_video_round_trip_keeps_frame_count_and_size(tmp_path, style_model, rng, capsys):
    pytest.importorskip("imageio")
    src = str(tmp_path / "clip.mp4")
    media.write_video(src, [rng.integers(0, 256, (24, 40, 3), dtype=np.uint8) for _ in range(3)],
                      fps=5)
    assert main(["stylize", "--model", style_model, src, "--out", str(tmp_path / "out"),
                 "--no-progress"]) == 0
    frames, fps = media.read_video(str(tmp_path / "out" / "clip_m_stylized.mp4"))
    assert len(frames) == 3 and frames[0].shape == (24, 40, 3) and fps == pytest.approx(5)


def test_frame_folder_round_trip(tmp_path, style_model, rng, capsys):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (18, 22, 3), dtype=np.uint8)).save(
            folder / f"f{i:03d}.png")
    assert main(["stylize", "--model", style_model, str(folder), "--out", str(tmp_path / "out"),
                 "--no-progress"]) == 0
    out = tmp_path / "out" / "frames_m_stylized"
    assert sorted(os.listdir(out)) == ["f000.png", "f001.png", "f002.png"]
    with Image.open(out / "f001.png") as im:
        assert im.size == (22, 18)
    assert "flicker" in capsys.readouterr().out


@pytest.mark.parametrize("deflicker", ["0", "0.8"])
def test_a_frame_folder_of_mixed_sizes_is_stylised_frame_by_frame(deflicker, tmp_path,
                                                                  style_model, rng, capsys):
    # a cut to another size: no (VD1) blend and no (VD2) comparison across it (a traceback once)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, hw in enumerate([(18, 22), (18, 22), (12, 16)]):
        Image.fromarray(rng.integers(0, 256, hw + (3,), dtype=np.uint8)).save(
            folder / f"f{i:03d}.png")
    assert main(["stylize", "--model", style_model, str(folder), "--out", str(tmp_path / "out"),
                 "--deflicker", deflicker, "--no-progress"]) == 0
    with Image.open(tmp_path / "out" / "frames_m_stylized" / "f002.png") as im:
        assert im.size == (16, 12)
    assert "flicker" in capsys.readouterr().out


def test_deflicker_reduces_flicker_on_a_static_scene(rng):
    scene = rng.uniform(0, 255, (16, 16, 3))
    # a static scene, sensor noise
    inputs = [scene + rng.normal(0, 2, scene.shape) for _ in range(6)]
    # a network that flickers badly
    outputs = [rng.uniform(0, 255, scene.shape) for _ in range(6)]
    smoothed = [outputs[0]]
    for t in range(1, 6):
        smoothed.append(media.deflicker(inputs[t - 1], smoothed[-1], inputs[t], outputs[t], 0.8))
    assert media.flicker(smoothed) < 0.5 * media.flicker(outputs)
    moving = [scene, 255 - scene]  # where the input changes: no blending
    changed = np.abs(moving[1] - moving[0]).mean(axis=2) > 3 * 12  # > 3 tau: weight < 0.8 e^-9
    blended = media.deflicker(moving[0], outputs[0], moving[1], outputs[1], 0.8)
    assert changed.sum() > 50
    np.testing.assert_allclose(blended[changed], outputs[1][changed], atol=0.1)


def test_bad_video_out_names(tmp_path, style_model, rng, capsys):
    pytest.importorskip("imageio")
    src = str(tmp_path / "clip.mp4")
    media.write_video(src, [rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(2)],
                      fps=5)
    assert main(["stylize", "--model", style_model, src, "--out", str(tmp_path / "x.png")]) == 1
    assert "needs a video file name" in capsys.readouterr().err


def test_gatys_on_a_frame_folder_starts_each_frame_from_the_last(tmp_path, synthetic_vgg, rng,
                                                                 capsys):
    path, _ = synthetic_vgg("vgg16")
    folder = tmp_path / "frames"
    folder.mkdir()
    base = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
    for i in range(2):
        Image.fromarray(base).save(folder / f"f{i}.png")
    style = str(tmp_path / "style.png")
    Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(style)
    assert main(["gatys", "--content", str(folder), "--style", style, "--weights", path,
                 "--iters", "2", "--no-progress", "--out", str(tmp_path / "out")]) == 0
    out = tmp_path / "out" / "frames_gatys"
    assert sorted(os.listdir(out)) == ["f0.png", "f1.png"]
    assert "frame 2/2" in capsys.readouterr().out


def test_gatys_on_an_animated_gif_gives_every_frame(tmp_path, synthetic_vgg, rng, capsys):
    # an animated GIF is frames, as for stylize: its first frame alone was optimised, silently
    path, _ = synthetic_vgg("vgg16")
    src = str(tmp_path / "anim.gif")
    media.write_gif(src, [rng.integers(0, 256, (20, 24, 3), dtype=np.uint8) for _ in range(3)])
    style = str(tmp_path / "style.png")
    Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(style)
    assert main(["gatys", "--content", src, "--style", style, "--weights", path, "--iters", "2",
                 "--no-progress", "--out", str(tmp_path / "out.gif")]) == 0
    with Image.open(tmp_path / "out.gif") as im:
        assert im.n_frames == 3
    assert "frame 3/3" in capsys.readouterr().out


def test_frame_folders_in_natural_order_without_hidden_files(tmp_path):
    """``9.png`` before ``10.png`` (the chain of (VD1) and of Gatys' frames runs in this order);
    dot-files (macOS's ``._x.png``) are not frames; other files and folders are skipped."""
    for name in ["10.png", "2.png", "1.png", "01.png", ".hidden.png", "._1.png", "notes.txt"]:
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub.png").mkdir()
    assert media.frame_names(str(tmp_path)) == ["01.png", "1.png", "2.png", "10.png"]


def test_frames_of_one_stem_get_distinct_outputs(tmp_path, style_model, rng, capsys):
    # x.jpg, x.png and x.tif all became out/x.png, each over the last, and '3 frame(s)' was said
    assert media.frame_files("o", ["x.jpg", "x.png", "y.tif"]) == [
        os.path.join("o", n) for n in ("x_jpg.png", "x_png.png", "y.png")]
    with pytest.raises(media.NumstyleError, match="both be written as x_png.png"):
        media.frame_files("o", ["x.png", "x.jpg", "x_png.tif"])
    folder = tmp_path / "frames"
    folder.mkdir()
    for ext in ("jpg", "png"):
        Image.fromarray(rng.integers(0, 256, (18, 22, 3), dtype=np.uint8)).save(folder / f"x.{ext}")
    assert main(["stylize", "--model", style_model, str(folder), "--out", str(tmp_path / "out"),
                 "--no-progress"]) == 0
    assert sorted(os.listdir(tmp_path / "out" / "frames_m_stylized")) == ["x_jpg.png", "x_png.png"]


def test_gatys_on_a_frame_folder_of_mixed_sizes_starts_afresh_at_a_cut(tmp_path, synthetic_vgg,
                                                                       rng, capsys):
    # the previous frame's result cannot start a frame of another size (a SciPy traceback once)
    path, _ = synthetic_vgg("vgg16")
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, hw in enumerate([(20, 24), (20, 28)]):
        Image.fromarray(rng.integers(0, 256, hw + (3,), dtype=np.uint8)).save(folder / f"f{i}.png")
    style = str(tmp_path / "style.png")
    Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(style)
    assert main(["gatys", "--content", str(folder), "--style", style, "--weights", path,
                 "--iters", "2", "--size", "28", "--no-progress", "--out",
                 str(tmp_path / "out")]) == 0
    with Image.open(tmp_path / "out" / "frames_gatys" / "f1.png") as im:
        assert im.size == (28, 20)
