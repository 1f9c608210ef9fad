"""``numstyle gatys`` as a user runs it: good runs, and one-line errors for bad input."""
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
from PIL import Image

from numstyle import image, vgg, weights
from numstyle.cli import main


@pytest.fixture
def imgs(tmp_path, rng):
    """Small test images in the modes users hand us."""
    rgb = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    paths = {"rgb": tmp_path / "rgb.jpg", "grey": tmp_path / "grey.png", "rgba": tmp_path / "rgba.png",
             "palette": tmp_path / "palette.gif", "grey16": tmp_path / "grey16.png"}
    Image.fromarray(rgb).save(paths["rgb"])
    Image.fromarray(rgb[:, :, 0]).save(paths["grey"])
    Image.fromarray(np.dstack([rgb, rgb[:, :, :1]])).save(paths["rgba"])
    Image.fromarray(rgb).convert("P").save(paths["palette"])
    Image.fromarray((rgb[:, :, 0].astype(np.uint16) * 257)).save(paths["grey16"])
    (tmp_path / "notes.jpg").write_text("this is not an image")
    paths["text"] = tmp_path / "notes.jpg"
    return {k: str(v) for k, v in paths.items()}


def run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def gatys_args(weights_path, tmp_path, *extra, content=None, style=None):
    args = ["gatys", "--weights", weights_path, "--size", "32", "--iters", "2", "--no-progress",
            "--out", str(tmp_path / "out.png")]
    if content:
        args += ["--content", content]
    if style:
        args += ["--style", style]
    return args + list(extra)


def assert_one_line_error(code, err, *needles):
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected a one-line error, got:\n{err}"
    assert "error" in lines[0] and "Traceback" not in err
    for n in needles:
        assert n in lines[0], f"{n!r} not in {lines[0]!r}"


@pytest.mark.parametrize("mode", ["grey", "rgba", "palette", "grey16"])
def test_odd_image_modes_are_converted_not_rejected(mode, imgs, synthetic_vgg, tmp_path, capsys):
    path, _ = synthetic_vgg("vgg16")
    code, out, err = run(gatys_args(path, tmp_path, content=imgs[mode], style=imgs["rgb"]), capsys)
    assert code == 0, err
    assert "final loss: total" in out and "wrote" in out
    with Image.open(tmp_path / "out.png") as im:
        assert im.mode == "RGB" and max(im.size) == 32


def test_sixteen_bit_is_scaled_not_clipped(imgs):
    a = image.load_image(imgs["grey16"])
    b = image.load_image(imgs["grey"])
    np.testing.assert_allclose(a, b, atol=0.51)   # 16-bit v*257 maps back to v


def test_content_reconstruction_texture_synthesis_and_options(imgs, synthetic_vgg, tmp_path, capsys):
    path, _ = synthetic_vgg("vgg16")
    for argv in (gatys_args(path, tmp_path, "--init", "noise", "--seed", "3", content=imgs["rgb"]),
                 gatys_args(path, tmp_path, "--pool", "max", "--optimizer", "adam", style=imgs["rgb"]),
                 gatys_args(path, tmp_path, "--style", imgs["rgba"], imgs["grey"], "--style-blend", "1", "3",
                            "--init", "style", "--style-layers", "relu1_1,conv3_1",
                            "--style-layer-weights", "1,2", "--save-every", "1", "--print-every", "1",
                            content=imgs["rgb"])):
        code, out, err = run(argv, capsys)
        assert code == 0, err
    assert os.path.exists(tmp_path / "out_0002.png") and "iter 2:" in out


@pytest.mark.parametrize("case,needles", [
    ("missing", ["content image not found"]),
    ("text", ["not a readable image", "notes.jpg"]),
    ("layer", ["unknown layer 'relu9_1'"]),
    ("small", ["too small"]),
    ("nothing", ["give --content, --style, or both"]),
    ("blend", ["--style-blend"]),
    ("gpu", ["--device gpu"]),
])
def test_bad_input_gives_one_line_error(case, needles, imgs, synthetic_vgg, tmp_path, capsys):
    path, _ = synthetic_vgg("vgg16")
    argv = {
        "missing": gatys_args(path, tmp_path, content=str(tmp_path / "nope.jpg"), style=imgs["rgb"]),
        "text": gatys_args(path, tmp_path, content=imgs["rgb"], style=imgs["text"]),
        "layer": gatys_args(path, tmp_path, "--content-layer", "relu9_1", content=imgs["rgb"]),
        "small": gatys_args(path, tmp_path, "--size", "8", content=imgs["rgb"], style=imgs["rgb"]),
        "nothing": gatys_args(path, tmp_path),
        "blend": gatys_args(path, tmp_path, "--style-blend", "1", "2", content=imgs["rgb"], style=imgs["rgb"]),
        "gpu": gatys_args(path, tmp_path, "--device", "gpu", content=imgs["rgb"]),
    }[case]
    if case == "gpu":
        from numstyle.backend import gpu_available
        if gpu_available():
            pytest.skip("a GPU is present")
    code, out, err = run(argv, capsys)
    assert_one_line_error(code, err, *needles)
    assert not os.path.exists(tmp_path / "out.png")


@pytest.mark.parametrize("flag,value", [("--content-weight", "nan"), ("--size", "0"), ("--tv-weight", "-1"),
                                        ("--pool", "median")])
def test_bad_flag_values_are_one_line_errors(flag, value, capsys):
    with pytest.raises(SystemExit) as e:
        main(["gatys", flag, value])
    assert e.value.code == 2
    assert_one_line_error(1, capsys.readouterr().err, flag.lstrip("-").split("-")[0])


def test_weight_file_problems(imgs, tmp_path, capsys):
    args = lambda w: gatys_args(w, tmp_path, content=imgs["rgb"], style=imgs["rgb"])  # noqa: E731
    code, _, err = run(args(str(tmp_path / "missing.h5")), capsys)
    assert_one_line_error(code, err, "weight file not found")
    code, _, err = run(args(imgs["text"]), capsys)
    assert_one_line_error(code, err, "cannot read weight file")
    wrong = str(tmp_path / "wrong.h5")
    params = vgg.random_params("vgg16")
    params["conv1_2"] = (params["conv1_2"][0][:32], params["conv1_2"][1][:32])
    weights.save_keras_notop(wrong, params, "vgg16")
    code, _, err = run(args(wrong), capsys)
    assert_one_line_error(code, err, "block1_conv2 has kernel")
    layout = str(tmp_path / "layout.h5")
    with h5py.File(layout, "w") as f:
        f.create_dataset("conv1_1", data=np.zeros((64, 3, 3, 3)))
    code, _, err = run(args(layout), capsys)
    assert_one_line_error(code, err, "not a Keras weight file")


def test_nan_in_the_loss_is_a_one_line_error(imgs, tmp_path, capsys):
    params = vgg.random_params("vgg16")
    params["conv3_1"][0][0, 0, 0, 0] = np.nan
    path = str(tmp_path / "nan.h5")
    weights.save_keras_notop(path, params, "vgg16")
    code, _, err = run(gatys_args(path, tmp_path, content=imgs["rgb"], style=imgs["rgb"]), capsys)
    assert_one_line_error(code, err, "loss became nan")
    assert not os.path.exists(tmp_path / "out.png")


def test_output_is_written_atomically(tmp_path, monkeypatch):
    out = tmp_path / "result.png"
    image.save_image(str(out), np.zeros((4, 4, 3), np.uint8))
    before = out.read_bytes()

    def crash(self, fp, *a, **k):
        fp.write(b"half a png")
        raise KeyboardInterrupt   # killed mid-write

    monkeypatch.setattr(Image.Image, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        image.save_image(str(out), np.full((4, 4, 3), 255, np.uint8))
    assert out.read_bytes() == before, "a killed write must leave the previous file intact"
    assert os.listdir(tmp_path) == ["result.png"], "no temporary file may be left behind"


def test_written_files_get_a_normal_mode(tmp_path):
    # the temporary file is 0600 (mkstemp); the finished output follows the umask like any new file
    out = tmp_path / "result.png"
    old = os.umask(0o022)
    try:
        image.save_image(str(out), np.zeros((4, 4, 3), np.uint8))
    finally:
        os.umask(old)
    assert oct(os.stat(out).st_mode & 0o777) == oct(0o644)


def test_console_script_and_help():
    r = subprocess.run([sys.executable, "-m", "numstyle.cli", "gatys", "--help"], capture_output=True, text=True)
    assert r.returncode == 0
    for flag in ["--content", "--style-blend", "--style-layer-weights", "--tv-weight", "--init", "--seed",
                 "--optimizer", "--lr", "--print-every", "--save-every", "--device", "--pool", "--weights"]:
        assert flag in r.stdout
    assert "(default: 300)" in r.stdout


@pytest.mark.parametrize("cupy_tf32,expected", [(None, "off"), ("1", "on")])
def test_bench_asks_pytorch_for_our_arithmetic(monkeypatch, cupy_tf32, expected):
    """The PyTorch reference runs TF32 exactly when numstyle does (CUPY_TF32=1): its own default
    would put cuDNN convolutions on tensor cores against our float32."""
    import argparse
    import json

    from numstyle import bench

    calls = []

    def fake_run(cmd, **kwargs):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, stdout=json.dumps({"median_s": 1.0}) + "\n", stderr="")

    monkeypatch.setattr(bench.subprocess, "run", fake_run)
    monkeypatch.delenv("CUPY_TF32", raising=False)
    if cupy_tf32:
        monkeypatch.setenv("CUPY_TF32", cupy_tf32)
    args = argparse.Namespace(what="stylize", size=64, runs=1, device="gpu", model="vgg16", weights=None,
                              batch_size=1, norm="instance", pool="avg")
    assert bench.torch_reference(args) == {"median_s": 1.0}
    cmd = calls[0]
    assert cmd[cmd.index("--tf32") + 1] == expected and cmd[cmd.index("--device") + 1] == "cuda", cmd
