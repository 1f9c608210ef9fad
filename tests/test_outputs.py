"""Where results go and what happens before the work: stylize output names, sr-eval test sets,
sr-train flags, and the examples' one-line errors when no data is found."""
import importlib
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from numstyle import models, transformer
from numstyle.commands import media
from numstyle.cli import build_parser, main
from numstyle.errors import NumstyleError

from conftest import assert_one_line_error

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
EXAMPLES = os.path.join(ROOT, "examples")


def save(path, rng, shape=(18, 22, 3)):
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(path)
    return str(path)


@pytest.fixture
def gifs(tmp_path, rng):
    """An animated GIF (3 frames) and a still one."""
    frames = [Image.fromarray(rng.integers(0, 256, (16, 20, 3), dtype=np.uint8)) for _ in range(3)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=80,
                   loop=0)
    frames[0].save(tmp_path / "still.gif")
    return str(tmp_path / "anim.gif"), str(tmp_path / "still.gif")


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if stylize reads (so stylises) any input: its errors must come first."""
    build_parser()  # the commands' modules imported first: none keeps the stand-in after the test

    def read_media(*args, **kwargs):
        raise AssertionError("an input was read before the output names were checked")
    monkeypatch.setattr(media, "read_media", read_media)


# --- stylize: output names (audit7 item 7) ------------------------------------------------------

def test_animated_gif_to_a_png_name_is_refused_up_front(tmp_path, gifs, style_model, no_work,
                                                        capsys):
    out = tmp_path / "a.png"
    assert main(["stylize", "--model", style_model, gifs[0], "--out", str(out),
                 "--no-progress"]) == 1
    assert_one_line_error(1, capsys.readouterr().err, "animated GIF", ".gif")
    assert not out.exists()


def test_still_gif_to_a_png_name_writes_a_png(tmp_path, gifs, style_model, capsys):
    out = tmp_path / "s.png"
    assert main(["stylize", "--model", style_model, gifs[1], "--out", str(out),
                 "--no-progress"]) == 0
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size == (20, 16)


def test_animated_gif_to_a_gif_name_keeps_its_frames(tmp_path, gifs, style_model, capsys):
    out = tmp_path / "a.gif"
    assert main(["stylize", "--model", style_model, gifs[0], "--out", str(out),
                 "--no-progress"]) == 0
    with Image.open(out) as im:
        assert im.format == "GIF" and im.n_frames == 3


def test_frames_folder_to_a_file_name_is_refused_up_front(tmp_path, rng, style_model, no_work,
                                                          capsys):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(2):
        save(folder / f"f{i}.png", rng)
    assert main(["stylize", "--model", style_model, str(folder),
                 "--out", str(tmp_path / "b.png")]) == 1
    assert_one_line_error(1, capsys.readouterr().err, "folder of frames needs a folder")
    assert not (tmp_path / "b.png").exists()


def test_several_inputs_to_one_file_name_are_refused_up_front(tmp_path, rng, style_model, no_work,
                                                              capsys):
    a, b = save(tmp_path / "a.png", rng), save(tmp_path / "b.png", rng)
    assert main(["stylize", "--model", style_model, a, b, "--out", str(tmp_path / "one.png")]) == 1
    assert_one_line_error(1, capsys.readouterr().err, "several inputs need a folder for --out")
    assert not (tmp_path / "one.png").exists()


def test_unknown_extension_error_reads_well(tmp_path, rng, style_model, no_work, capsys):
    a = save(tmp_path / "a.png", rng)
    assert main(["stylize", "--model", style_model, a, "--out", str(tmp_path / "x.xyz")]) == 1
    assert_one_line_error(1, capsys.readouterr().err, "an image input needs an image file name")


def test_inputs_with_the_same_name_get_distinct_outputs(tmp_path, rng):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    srcs = [save(tmp_path / "a" / "x.jpg", rng), save(tmp_path / "b" / "x.jpg", rng),
            save(tmp_path / "x.png", rng)]
    d = str(tmp_path / "d")
    assert media.output_paths(srcs, d, "stylized") == [os.path.join(d, "x_stylized.png"),
                                                        os.path.join(d, "x_stylized_2.png"),
                                                        os.path.join(d, "x_stylized_3.png")]
    assert media.output_paths(srcs[:1], None, "stylized") == [os.path.join("out", "x_stylized.png")]
    with pytest.raises(NumstyleError, match="several inputs"):
        media.output_paths(srcs, str(tmp_path / "one.png"), "stylized")


def test_stylize_does_not_overwrite_a_result_with_another(tmp_path, rng, style_model, capsys):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    srcs = [save(tmp_path / "a" / "x.jpg", rng), save(tmp_path / "b" / "x.jpg", rng)]
    d = tmp_path / "d"
    assert main(["stylize", "--model", style_model, *srcs, "--out", str(d), "--no-progress"]) == 0
    assert sorted(os.listdir(d)) == ["x_m_stylized.png", "x_m_stylized_2.png"]


def test_two_models_on_one_photo_write_two_files(tmp_path, rng, style_model):
    # the default name carries the model's: a second model once replaced the first's result
    other = str(tmp_path / "other.h5")
    shutil.copy(style_model, other)
    src, d = save(tmp_path / "x.jpg", rng), str(tmp_path / "d")
    for model in (style_model, other):
        assert main(["stylize", "--model", model, src, "--out", d, "--no-progress"]) == 0
    assert sorted(os.listdir(d)) == ["x_m_stylized.png", "x_other_stylized.png"]


# --- sr-eval: test sets by name, missing sets, small images (audit7 item 10) ---------------------

@pytest.fixture
def sr_model(tmp_path):
    config = {"kind": "sr", "norm": "batch", "width": 8, "n_res": 1, "scale": 2, "skip": True}
    params = transformer.init_params(models.spec_from_config(config), seed=0)
    path = str(tmp_path / "sr.h5")
    models.save_model(path, params, config, transformer.init_state(params, "batch"))
    return path


def test_sr_eval_finds_a_bare_set_name_under_numstyle_data(tmp_path, rng, sr_model, monkeypatch,
                                                           capsys):
    folder = tmp_path / "data" / "datasets" / "sr" / "Tiny"
    folder.mkdir(parents=True)
    for i in range(2):
        save(folder / f"t{i}.png", rng, (40, 44, 3))
    monkeypatch.setenv("NUMSTYLE_DATA", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)                                   # no ./Tiny here
    assert main(["sr-eval", "--model", sr_model, "--set", "Tiny", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["Tiny"]["images"] == 2


def test_sr_eval_missing_set_says_not_found(tmp_path, sr_model, monkeypatch, capsys):
    monkeypatch.setenv("NUMSTYLE_DATA", str(tmp_path))
    assert main(["sr-eval", "--model", sr_model, "--set", str(tmp_path / "nonexist")]) == 1
    assert_one_line_error(1, capsys.readouterr().err, "not found", "nonexist")
    assert main(["sr-eval", "--model", sr_model, "--set", "Set99"]) == 1
    assert_one_line_error(1, capsys.readouterr().err, "not found", "Set99")


def test_sr_eval_names_the_image_that_is_too_small(tmp_path, rng, sr_model, capsys):
    folder = tmp_path / "set"
    folder.mkdir()
    save(folder / "big.png", rng, (40, 44, 3))
    save(folder / "tiny.png", rng, (5, 7, 3))
    assert main(["sr-eval", "--model", sr_model, "--set", str(folder)]) == 1
    assert_one_line_error(1, capsys.readouterr().err, "tiny.png", "(7x5)", "too small")


# --- sr-train: flags checked up front (audit7 item 5) -------------------------------------------

@pytest.mark.parametrize("flag,value", [("--lr", "0"), ("--lr", "-1"), ("--iters", "0"),
                                        ("--checkpoint-every", "-5"), ("--seed", "-1")])
def test_sr_train_bad_flag_values_are_one_line_errors(flag, value, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["sr-train", "--data", str(tmp_path), "--out", str(tmp_path / "m.h5"), flag, value])
    assert e.value.code == 2
    assert_one_line_error(1, capsys.readouterr().err, flag)


def test_sr_train_size_must_be_a_multiple_of_the_scale(tmp_path, capsys):
    argv = ["sr-train", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "m.h5"),
            "--scale", "4"]
    assert main(argv + ["--size", "30"]) == 1  # before the data folder is even looked at
    assert_one_line_error(1, capsys.readouterr().err, "not a multiple of --scale 4", "28 or 32")
    assert not (tmp_path / "m.h5").exists()
    assert main(argv + ["--phase-weight", "10"]) == 1            # a term of the feature loss only
    assert_one_line_error(1, capsys.readouterr().err, "--phase-weight", "--loss feature")


# --- examples (audit7 items 8 and 10) -----------------------------------------------------------

@pytest.mark.parametrize("name", ["stylize", "super_resolution", "video_flicker", "figure_johnson",
                                  "compare_johnson_gatys", "gatys", "train_johnson"])
def test_examples_without_data_end_in_one_line(name, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "NUMSTYLE_DATA"}
    env.update(HOME=str(tmp_path), XDG_CACHE_HOME=str(tmp_path / "cache"), NUMSTYLE_NO_DOWNLOAD="1",
               PYTHONPATH=ROOT + os.pathsep + env.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, os.path.join(EXAMPLES, f"{name}.py"), "--size", "32"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    assert_one_line_error(1, r.stderr, f"examples/{name}.py: error:", "not found")


@pytest.fixture
def train_johnson(monkeypatch):
    monkeypatch.syspath_prepend(EXAMPLES)
    return importlib.import_module("train_johnson")


def test_train_johnson_model_name_follows_style_size_and_out(tmp_path, rng, train_johnson):
    style = save(tmp_path / "wave.jpg", rng)
    argv, out = train_johnson.defaults(["--style", style, "--data", str(tmp_path), "--size", "64"])
    assert out == os.path.join("out", "wave_64.h5") and argv[argv.index("--out") + 1] == out
    argv, out = train_johnson.defaults([f"--style={style}", "--data", str(tmp_path), "--out=x.h5"])
    assert out == "x.h5" and "--out" not in argv and "--style" not in argv


def test_train_johnson_stylises_with_the_model_it_wrote(tmp_path, rng, synthetic_vgg, train_johnson,
                                                        monkeypatch, capsys):
    weights, _ = synthetic_vgg("vgg16")
    data = tmp_path / "photos"
    data.mkdir()
    for i in range(2):
        save(data / f"p{i}.png", rng, (40, 40, 3))
    (tmp_path / "images" / "content").mkdir(parents=True)
    save(tmp_path / "images" / "content" / "tubingen.jpg", rng, (24, 32, 3))
    monkeypatch.setenv("NUMSTYLE_DATA", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    argv = ["--style", save(tmp_path / "wave.jpg", rng), "--data", str(data), "--size", "32",
            "--iters", "1", "--batch-size", "1", "--weights", weights, "--no-progress",
            "--width", "4,6,8", "--n-res", "1"]
    assert train_johnson.train_then_stylize(argv + ["--out=m.h5"]) == 0
    assert os.path.isfile("m.h5") and os.path.isfile("m_tubingen.png")
    assert train_johnson.train_then_stylize(argv) == 0
    assert os.path.isfile("out/wave_32.h5") and os.path.isfile("out/wave_32_tubingen.png")
