"""``numstyle gatys`` as a user runs it: good runs, and one-line errors for bad input."""
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
from PIL import Image

from numstyle import settings
from numstyle import image, vgg, weights
from numstyle.cli import main

from conftest import assert_one_line_error

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def imgs(tmp_path, rng):
    """Small test images in the modes users hand us."""
    rgb = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    paths = {"rgb": tmp_path / "rgb.jpg", "grey": tmp_path / "grey.png",
             "rgba": tmp_path / "rgba.png", "palette": tmp_path / "palette.gif",
             "grey16": tmp_path / "grey16.png"}
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


@pytest.mark.parametrize("mode", ["grey", "rgba", "palette", "grey16"])
def test_odd_image_modes_are_converted_not_rejected(mode, imgs, synthetic_vgg, tmp_path, capsys):
    path, _ = synthetic_vgg("vgg16")
    code, out, err = run(gatys_args(path, tmp_path, content=imgs[mode], style=imgs["rgb"]), capsys)
    assert code == 0, err
    assert "final loss: total" in out and "wrote" in out
    with Image.open(tmp_path / "out.png") as im:
        assert im.mode == "RGB" and max(im.size) == 32


def test_a_large_style_pass_is_announced(imgs, synthetic_vgg, tmp_path, capsys):
    """--style-scale 25 spends minutes on the style targets before the first iteration: a line
    says so (styles at most 4x the output's pixels pass quietly)."""
    path, _ = synthetic_vgg("vgg16")
    said = {}
    for scale in ("2", "3"):
        code, out, err = run(gatys_args(path, tmp_path, "--style-scale", scale, "--overwrite",
                                        content=imgs["rgb"], style=imgs["rgb"]), capsys)
        assert code == 0, err
        said[scale] = [line for line in out.splitlines() if line.startswith("style targets")]
    assert said["2"] == [] and said["3"] == ["style targets at 96x80 px (--style-scale 3): one "
                                             "pass through vgg16"]


def test_sixteen_bit_is_scaled_not_clipped(imgs):
    a = image.load_image(imgs["grey16"])
    b = image.load_image(imgs["grey"])
    np.testing.assert_allclose(a, b, atol=0.51)   # 16-bit v*257 maps back to v


def test_content_reconstruction_texture_synthesis_and_options(imgs, synthetic_vgg, tmp_path,
                                                              capsys):
    path, _ = synthetic_vgg("vgg16")
    for argv in (gatys_args(path, tmp_path, "--init", "noise", "--seed", "3", content=imgs["rgb"]),
                 gatys_args(path, tmp_path, "--pool", "max", "--optimizer", "adam",
                            style=imgs["rgb"]),
                 gatys_args(path, tmp_path, "--style", imgs["rgba"], imgs["grey"],
                            "--style-blend", "1", "3", "--init", "style",
                            "--style-layers", "relu1_1,conv3_1", "--style-layer-weights", "1,2",
                            "--save-every", "1", "--print-every", "1", content=imgs["rgb"])):
        code, out, err = run(argv, capsys)
        assert code == 0, err
    assert os.path.exists(tmp_path / "out_0002.png") and "iter 2:" in out


@pytest.mark.parametrize("case,needles", [
    ("missing", ["content image not found"]),
    ("text", ["not a readable image", "notes.jpg"]),
    ("layer", ["unknown layer 'relu9_1'"]),
    ("small", ["too small"]),
    ("nothing", ["give --content, --style, or both"]),
    ("blend", ["--style-blend 1 2:", "per style image (1)"]),
    ("gpu", ["--device gpu"]),
])
def test_bad_input_gives_one_line_error(case, needles, imgs, synthetic_vgg, tmp_path, capsys):
    path, _ = synthetic_vgg("vgg16")
    argv = {
        "missing": gatys_args(path, tmp_path, content=str(tmp_path / "nope.jpg"),
                              style=imgs["rgb"]),
        "text": gatys_args(path, tmp_path, content=imgs["rgb"], style=imgs["text"]),
        "layer": gatys_args(path, tmp_path, "--content-layer", "relu9_1", content=imgs["rgb"]),
        "small": gatys_args(path, tmp_path, "--size", "8", content=imgs["rgb"], style=imgs["rgb"]),
        "nothing": gatys_args(path, tmp_path),
        "blend": gatys_args(path, tmp_path, "--style-blend", "1", "2", content=imgs["rgb"],
                            style=imgs["rgb"]),
        "gpu": gatys_args(path, tmp_path, "--device", "gpu", content=imgs["rgb"]),
    }[case]
    if case == "gpu":
        from numstyle.backend import gpu_available
        if gpu_available():
            pytest.skip("a GPU is present")
    code, out, err = run(argv, capsys)
    assert_one_line_error(code, err, *needles)
    assert not os.path.exists(tmp_path / "out.png")


@pytest.mark.parametrize("flag,value", [("--content-weight", "nan"), ("--size", "0"),
                                        ("--tv-weight", "-1"), ("--pool", "median"),
                                        ("--seed", "-1"), ("--style-layers", ""), ("--lr", "0"),
                                        ("--print-every", "-1"), ("--scales", ",")])
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
    r = subprocess.run([sys.executable, "-m", "numstyle.cli", "gatys", "--help"],
                       capture_output=True, text=True)
    assert r.returncode == 0
    for flag in ["--content", "--style-blend", "--style-layer-weights", "--tv-weight", "--init",
                 "--seed", "--optimizer", "--lr", "--print-every", "--save-every", "--device",
                 "--pool", "--weights", "--json", "--reference"]:
        assert flag in r.stdout
    # --scales', --iters' defaults
    assert "default_schedule" in r.stdout and "300 per scale" in r.stdout


@pytest.mark.parametrize("cupy_tf32,expected", [(None, "off"), ("1", "on")])
def test_bench_asks_pytorch_for_our_arithmetic(monkeypatch, cupy_tf32, expected):
    """The PyTorch reference runs TF32 exactly when numstyle does (CUPY_TF32=1): its own default
    would put cuDNN convolutions on tensor cores against our float32."""
    import argparse
    import json

    from numstyle.commands import bench

    calls = []

    def fake_run(cmd, **kwargs):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, stdout=json.dumps({"median_s": 1.0}) + "\n",
                                           stderr="")

    monkeypatch.setattr(bench.subprocess, "run", fake_run)
    monkeypatch.delenv("CUPY_TF32", raising=False)
    if cupy_tf32:
        monkeypatch.setenv("CUPY_TF32", cupy_tf32)
    args = argparse.Namespace(what="stylize", size=64, runs=1, device="gpu", model="vgg16",
                              weights=None, batch_size=1, norm="instance", pool="avg",
                              upsample="nearest", layers=False, width=[16, 32, 64])
    assert bench.torch_reference(args) == {"median_s": 1.0}
    cmd = calls[0]
    assert cmd[cmd.index("--tf32") + 1] == expected and cmd[cmd.index("--device") + 1] == "cuda", \
        cmd
    assert cmd[cmd.index("--upsample") + 1] == "nearest", "the same network as ours"
    assert cmd[cmd.index("--width") + 1] == "16,32,64", "the same width as ours"


@pytest.mark.parametrize("command,flag,value", [("train", "--width", "8,16"),
                                                ("train", "--width", "0,1,2"),
                                                ("train", "--lr", "-1"),
                                                ("train", "--checkpoint-every", "-5"),
                                                ("stylize", "--deflicker", "2")])
def test_bad_training_and_stylize_flags_are_one_line_errors(command, flag, value, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, flag, value])
    assert e.value.code == 2
    assert_one_line_error(1, capsys.readouterr().err, flag)


def test_unwritable_outputs_fail_before_the_work(imgs, synthetic_vgg, tmp_path, capsys,
                                                 monkeypatch):
    """A file where a folder should be, an unknown extension, --scales fine to coarse, an --init
    typo: one line at the start, never after the optimisation."""
    from numstyle import gatys

    monkeypatch.setattr(gatys, "optimize",
                        lambda *a, **k: pytest.fail("optimised before checking the output"))
    path, _ = synthetic_vgg("vgg16")
    (tmp_path / "afile").write_text("x")
    for out, extra, needle in [(str(tmp_path / "afile" / "x.png"), [], "is a file"),
                               (str(tmp_path / "afile") + "/", [], "is a file"),
                               (str(tmp_path / "w.xyz"), [], "unknown image extension"),
                               (str(tmp_path / "o.png"), ["--scales", "32,24"], "coarse to fine"),
                               (str(tmp_path / "o.png"), ["--init", "nosie"],
                                "not noise, content, style")]:
        argv = gatys_args(path, tmp_path, *extra, content=imgs["rgb"], style=imgs["rgb"])
        argv[argv.index("--out") + 1] = out
        code, _, err = run(argv, capsys)
        assert_one_line_error(code, err, needle)


@pytest.mark.parametrize("flags,needle", [
    (["--size", "4"], "crops of at least 8 px"),
    (["--size", "16", "--style-size", "4"], "8 px on the shorter side: give --style-size")])
def test_training_sizes_too_small_for_the_loss_say_which_flag(flags, needle, imgs, tmp_path,
                                                             capsys):
    data = tmp_path / "data"
    data.mkdir()
    Image.open(imgs["rgb"]).save(data / "a.png")
    code, _, err = run(["train", "--style", imgs["rgb"], "--data", str(data), "--out",
                        str(tmp_path / "m.h5"), *flags], capsys)
    assert_one_line_error(code, err, needle)


def test_each_style_with_a_style_blend_is_refused_up_front(imgs, synthetic_vgg, tmp_path, capsys):
    # each job of --each-style has one style: a blend of two was accepted, then every job failed
    path, _ = synthetic_vgg("vgg16")
    argv = gatys_args(path, tmp_path, "--each-style", "--style-blend", "1", "2",
                      content=imgs["rgb"])
    argv += ["--style", imgs["rgb"], imgs["grey"]]
    code, _, err = run(argv, capsys)
    assert_one_line_error(code, err, "--each-style")


@pytest.mark.parametrize("folder", ["new/", "existing", "noext"])
def test_out_a_folder_writes_the_default_name_into_it(folder, imgs, synthetic_vgg, tmp_path,
                                                       capsys):
    # --out results/ (a new folder, said by its slash), an existing folder, or a name without an
    # extension (a folder to stylize; gatys wrote a PNG named 'noext'): the image goes in it
    # under the default name -- it once ran the whole optimisation, then failed to write
    path, _ = synthetic_vgg("vgg16")
    (tmp_path / "existing").mkdir()
    argv = gatys_args(path, tmp_path, content=imgs["rgb"], style=imgs["grey"])
    argv[argv.index("--out") + 1] = os.path.join(str(tmp_path), folder)  # keeps the slash
    code, out, err = run(argv, capsys)
    assert code == 0, err
    stems = [os.path.splitext(os.path.basename(imgs[k]))[0] for k in ("rgb", "grey")]
    written = tmp_path / folder.rstrip("/") / ("_".join(stems) + ".png")
    assert written.is_file() and f"wrote {written}" in out


def test_training_output_checked_before_training_and_ctrl_c_says_how_to_resume(imgs, synthetic_vgg,
                                                                               tmp_path, capsys,
                                                                               monkeypatch):
    from numstyle import train

    path, _ = synthetic_vgg("vgg16")
    data = tmp_path / "data"
    data.mkdir()
    Image.open(imgs["rgb"]).save(data / "a.png")
    (tmp_path / "afile").write_text("x")
    argv = ["train", "--style", imgs["rgb"], "--data", str(data), "--weights", path, "--size", "16",
            "--batch-size", "1", "--width", "4,6,8", "--n-res", "1", "--iters", "5",
            "--no-progress"]
    monkeypatch.setattr(train, "fit",
                        lambda *a, **k: pytest.fail("trained before checking the output"))
    code, _, err = run(argv + ["--out", str(tmp_path / "afile" / "m.h5")], capsys)
    assert_one_line_error(code, err, "is a file")

    def interrupted_fit(params, step, batches, iters, lr, start, adam_state, checkpoint, *rest):
        checkpoint(3, params, adam_state)                   # what fit does on the first Ctrl-C
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "fit", interrupted_fit)
    code, out, err = run(argv + ["--out", str(tmp_path / "m.h5")], capsys)
    ckpt = str(tmp_path / "m.ckpt.h5")
    assert code == 130 and os.path.isfile(ckpt)
    assert f"wrote {ckpt} at iteration 3" in out and f"--resume {ckpt}" in out, out
    # the same command again without --resume would start over on top of that checkpoint:
    # refused before any work, the checkpoint untouched
    before = open(ckpt, "rb").read()
    code, _, err = run(argv + ["--out", str(tmp_path / "m.h5")], capsys)
    assert_one_line_error(code, err, f"--resume {ckpt}")
    assert open(ckpt, "rb").read() == before


def test_interrupted_gatys_on_frames_writes_the_finished_frames(imgs, synthetic_vgg, tmp_path,
                                                                capsys, monkeypatch):
    """Ctrl-C in frame 2 of 3: frame 1, done, is written in the output's own form
    (a folder of frames)."""
    from numstyle.commands import gatys as gatys_cli

    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(3):
        Image.open(imgs["rgb"]).save(frames / f"f{i}.png")
    real, calls = gatys_cli.optimize_one_scale, []

    def optimize_one_scale(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(gatys_cli, "optimize_one_scale", optimize_one_scale)
    path, _ = synthetic_vgg("vgg16")
    argv = gatys_args(path, tmp_path, content=str(frames), style=imgs["rgb"])
    argv[argv.index("--out") + 1] = str(tmp_path / "result")
    code, out, _ = run(argv, capsys)
    assert code == 130 and "wrote the 1 finished frame(s) of 3" in out, out
    assert sorted(os.listdir(tmp_path / "result" / "frames_gatys")) == ["f0.png"]


def test_flat_training_images_are_skipped(tmp_path, rng):
    """A flat-colour image would make every instance norm divide by a zero variance (NaN training):
    skipped with one warning, like an unreadable file."""
    from numstyle.dataset import Batches

    Image.new("RGB", (40, 40), (90, 120, 200)).save(tmp_path / "flat.png")
    Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(tmp_path / "photo.png")
    warnings = []
    b = Batches(str(tmp_path), 16, 4, seed=0, warn=warnings.append)
    batches = [b.make(i) for i in range(4)]
    assert all(x.reshape(4, -1).std(axis=1).min() > 10 for x in batches), \
        "a flat crop reached a batch"
    assert len(warnings) == 1 and "flat.png" in warnings[0] and "flat colour" in warnings[0], \
        warnings


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.startswith("numstyle ")


def test_bad_environment_and_huge_images_are_one_line_errors(imgs, synthetic_vgg, tmp_path, capsys,
                                                             monkeypatch):
    from PIL import Image as PILImage

    path, _ = synthetic_vgg("vgg16")
    argv = gatys_args(path, tmp_path, content=imgs["rgb"], style=imgs["rgb"])
    monkeypatch.setenv("NUMSTYLE_THREADS", "abc")  # read by the command, at its start
    assert_one_line_error(*run(argv, capsys)[::2], "NUMSTYLE_THREADS=abc")
    monkeypatch.delenv("NUMSTYLE_THREADS")
    settings.reload()
    # Pillow refuses over twice this: a "bomb"
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 100)
    assert_one_line_error(*run(argv, capsys)[::2], "too large to read")
    monkeypatch.undo()                                              # inputs are read before weights
    code, _, err = run(gatys_args(str(tmp_path), tmp_path, content=imgs["rgb"]), capsys)
    assert_one_line_error(code, err, "weight file is a folder")


def test_training_too_large_for_the_machine_is_refused(imgs, tmp_path, capsys, monkeypatch):
    """A crop the machine cannot hold is a one-line error up front, not an
    out-of-memory kill mid-run."""
    import os as os_module

    data = tmp_path / "data"
    data.mkdir()
    Image.open(imgs["rgb"]).save(data / "a.png")
    monkeypatch.setattr(os_module, "sysconf",
                        lambda name: {"SC_PHYS_PAGES": 2 ** 20, "SC_PAGE_SIZE": 4096}[name])
    # 4 GB of RAM, ~17 GB needed
    code, _, err = run(["train", "--style", imgs["rgb"], "--data", str(data), "--size", "1024",
                        "--batch-size", "4", "--out", str(tmp_path / "m.h5"), "--no-progress"],
                       capsys)
    assert_one_line_error(code, err, "needs about 17 GB", "4 GB")


def test_experiments_output_folder_checked_before_the_work(tmp_path, capsys, monkeypatch):
    from numstyle.commands import experiments

    (tmp_path / "afile").write_text("x")
    monkeypatch.setattr(experiments, "Lab",
                        lambda args: pytest.fail("experimented before checking --out"))
    code, _, err = run(["experiments", "pooling", "--quick", "--out", str(tmp_path / "afile")],
                       capsys)
    assert_one_line_error(code, err, "a file has that name")


def test_reference_flag_runs_the_book_and_gives_the_same_picture(imgs, synthetic_vgg, tmp_path,
                                                                 capsys, style_model, monkeypatch):
    """``--reference`` on a command: the reference engine only (no fast path is built), the same
    picture as the fast engine's, and the setting does not outlive the call."""
    from numstyle import engine, settings

    path, _ = synthetic_vgg("vgg16")
    built = []
    real_select = engine.select
    monkeypatch.setattr(engine, "select",
                        lambda layer, xp=np: built.append(settings.get().reference)
                        or real_select(layer, xp))
    out = {}
    for flag in ([], ["--reference"]):
        name = "reference" if flag else "fast"
        out[name] = str(tmp_path / f"{name}.png")
        argv = gatys_args(path, tmp_path, "--model", "vgg16", *flag, content=imgs["rgb"],
                          style=imgs["rgb"])
        argv[argv.index("--out") + 1] = out[name]
        assert main(argv) == 0, capsys.readouterr().err
        assert main(["stylize", "--model", style_model, imgs["rgb"], "--out", out[name] + ".s.png",
                     "--no-progress", *flag]) == 0
    assert True in built and False in built and not settings.get().reference
    for a, b in ((out["fast"], out["reference"]),
                 (out["fast"] + ".s.png", out["reference"] + ".s.png")):
        with Image.open(a) as fa, Image.open(b) as fb:
            diff = np.abs(np.asarray(fa, float) - np.asarray(fb, float))
        assert diff.mean() < 0.5 and diff.max() <= 4, (a, diff.mean(), diff.max())


def test_a_cpu_command_never_imports_cupy(tmp_path):
    """CuPy is imported only when a GPU is asked for (backend.cupy_module): about a second of
    imports that every command on the CPU would otherwise pay where the gpu extra is installed."""
    code = ("import sys; from numstyle.cli import main; main(['models']); "
            "assert 'cupy' not in sys.modules, 'cupy imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=str(tmp_path), env=dict(os.environ, PYTHONPATH=ROOT))
    assert done.returncode == 0, done.stderr


def test_a_training_writes_h5_models_and_resumes_only_its_own_kind(imgs, synthetic_vgg, tmp_path,
                                                                   capsys):
    # a style checkpoint given to sr-train (and an sr one to train) names the command that wrote
    # it, instead of a message about a flag the user never passed; a model named t.png is refused
    path, _ = synthetic_vgg("vgg16")
    data = tmp_path / "data"
    data.mkdir()
    Image.open(imgs["rgb"]).resize((32, 32)).save(data / "a.png")
    style = ["train", "--style", imgs["rgb"], "--data", str(data), "--weights", path, "--size",
             "16", "--batch-size", "1", "--width", "4,6,8", "--n-res", "1", "--iters", "1",
             "--no-progress"]
    sr_train = ["sr-train", "--data", str(data), "--scale", "2", "--size", "16", "--batch-size",
                "1", "--iters", "1", "--no-progress"]
    code, _, err = run(style + ["--out", str(tmp_path / "t.png")], capsys)
    assert_one_line_error(code, err, "ending in .h5")
    assert not os.path.exists(tmp_path / "t.png") and not os.path.exists(tmp_path / "t.ckpt.h5")
    assert run(style + ["--out", str(tmp_path / "s.h5")], capsys)[0] == 0
    assert run(sr_train + ["--out", str(tmp_path / "r.h5")], capsys)[0] == 0
    code, _, err = run(sr_train + ["--out", str(tmp_path / "r2.h5"), "--resume",
                                   str(tmp_path / "s.ckpt.h5")], capsys)
    assert_one_line_error(code, err, "checkpoint of numstyle train", "not of numstyle sr-train")
    code, _, err = run(style + ["--out", str(tmp_path / "s2.h5"), "--resume",
                                str(tmp_path / "r.ckpt.h5")], capsys)
    assert_one_line_error(code, err, "checkpoint of numstyle sr-train", "not of numstyle train")


def test_a_value_starting_with_a_minus_gets_the_real_complaint(capsys):
    # '--content-weight -inf' is argparse's "expected one argument": the way to say it is shown,
    # and said that way, the value's own error
    for argv, needle in ((["gatys", "--content-weight", "-inf"], "--FLAG=VALUE"),
                         (["gatys", "--content-weight=-inf"], "must be finite")):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert_one_line_error(e.value.code, capsys.readouterr().err, needle)


def test_a_truncated_image_says_so_in_its_one_line(imgs, tmp_path, capsys):
    # it said '(OSError)', and a lone failed input printed '0 frame(s) in 0.01 s' on stdout too
    from numstyle import models
    from numstyle.transformer import init_params, style_spec

    cut = tmp_path / "cut.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(
        cut, quality=95)
    cut.write_bytes(cut.read_bytes()[:1500])                  # its header reads, its pixels not
    model = str(tmp_path / "m.h5")
    models.save_model(model, init_params(style_spec((4, 6, 8), 1)),
                      {"kind": "style", "norm": "instance", "width": [4, 6, 8], "n_res": 1})
    code, out, err = run(["stylize", "--model", model, str(cut), "--out", str(tmp_path / "o.png"),
                          "--no-progress"], capsys)
    assert_one_line_error(code, err, "cut.jpg", "image file is truncated")
    assert out == ""
