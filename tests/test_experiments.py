"""``numstyle experiments``: each experiment's quick mode writes its labelled
figure and its numbers."""
import json
import math

import numpy as np
import pytest
from PIL import Image

from numstyle.cli import main
from numstyle.commands.figures import plot

NAMES = ["content_reconstruction", "reconstruction_seeds", "texture_synthesis", "style_sweeps",
         "initialisation", "pooling", "loss_curves", "johnson_layers"]
RESULT_KEYS = {
    "content_reconstruction": {"layers", "runs"},
    "reconstruction_seeds": {"layer", "mean_abs_diff", "mean_abs_diff_of_starting_noise", "runs"},
    "texture_synthesis": {"style_layer_sets", "seeds", "runs"},
    "style_sweeps": {"content_layer", "style_layers", "ratio", "mean_time_s"},
    "initialisation": {"target_loss", "target_rule", "runs"},
    "pooling": {"runs"},
    "loss_curves": {"adam_lr", "curves", "runs"},
    "johnson_layers": {"layers", "runs"},
}
STYLE_SETS = [[f"relu{b}_1" for b in range(1, n + 1)] for n in range(1, 6)]


@pytest.fixture(autouse=True)
def _one_blas_thread():
    """The quick runs are many tiny GEMMs: on a loaded machine, contended BLAS threads make them
    ~50x slower, so these tests use one thread where threadpoolctl is installed
    (results unchanged)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A tiny content photo, style image and folder of training photos."""
    d = tmp_path_factory.mktemp("experiment_inputs")
    rng = np.random.default_rng(5)
    Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(d / "content.jpg")
    Image.fromarray(rng.integers(0, 256, (36, 36, 3), dtype=np.uint8)).save(d / "style.png")
    (d / "photos" / "sub").mkdir(parents=True)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(
            d / "photos" / "sub" / f"p{i}.jpg")
    return {"content": str(d / "content.jpg"), "style": str(d / "style.png"),
            "data": str(d / "photos")}


def quick(name, inputs, weights, out):
    return ["experiments", name, "--quick", "--weights", weights, "--content", inputs["content"],
            "--style", inputs["style"], "--data", inputs["data"], "--out", str(out)]


def test_list_prints_every_name_in_order(capsys):
    assert main(["experiments", "--list"]) == 0
    assert capsys.readouterr().out.split() == NAMES
    assert main(["experiments", "--list", "--json"]) == 0   # one JSON list on stdout
    listed = json.loads(capsys.readouterr().out)
    assert [e["name"] for e in listed] == NAMES and all(e["description"] for e in listed)


@pytest.mark.parametrize("argv, needle", [(["experiments", "no_such_experiment", "--out", "x"],
                                           "no_such_experiment"),
                                          (["experiments"], "--list")])
def test_unknown_or_missing_name_is_a_one_line_error(argv, needle, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main(argv)
    err = capsys.readouterr().err
    assert code != 0
    assert (len(err.strip().splitlines()) == 1 and "error" in err and needle in err
            and "Traceback" not in err)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("name", NAMES)
def test_quick_mode_writes_figure_and_numbers(name, inputs, synthetic_vgg, tmp_path, capsys):
    weights, _ = synthetic_vgg("vgg16")
    code = main(quick(name, inputs, weights, tmp_path))
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"{name}.png" in out and f"{name}.json" in out
    with Image.open(tmp_path / f"{name}.png") as im:
        assert im.mode == "RGB" and min(im.size) >= 128  # a grid of enlarged tiles
    record = json.loads((tmp_path / f"{name}.json").read_text())
    assert {"experiment", "description", "settings", "results", "wall_clock_s", "figure",
            "machine"} <= set(record)
    assert (record["experiment"] == name and record["figure"] == f"{name}.png"
            and record["wall_clock_s"] > 0)
    s = record["settings"]
    assert s["quick"] is True and s["model"] == "vgg16" and s["weights"] == weights
    assert s["content"] == inputs["content"] and s["style"] == inputs["style"] and s["size"] == 32
    results = record["results"]
    assert RESULT_KEYS[name] <= set(results)
    if name != "johnson_layers":
        assert s["iters"] == 2 and s["tv_weight"] == 0.0
        runs = [r for k in ("content_layer", "style_layers", "ratio")
                for r in results.get(k, [])] or results["runs"]
        for r in runs:
            assert math.isfinite(r["loss"]["total"]) and r["loss"]["total"] > 0 and r["time_s"] > 0
            assert 1 <= r["iterations"] <= 2 and r["evaluations"] >= r["iterations"]
    CHECKS[name](results, s, tmp_path)
    assert not [p for p in tmp_path.rglob(".numstyle-*")], "a temporary file was left behind"


def check_content_reconstruction(results, settings, out):
    # VGG16's last of 3-5
    assert results["layers"] == ["relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3"]
    assert [r["content_layer"] for r in results["runs"]] == results["layers"]
    assert all(r["loss"]["style"] == 0 and r["style_layers"] is None and r["init"] == "noise"
               for r in results["runs"])


def check_reconstruction_seeds(results, settings, out):
    assert results["layer"] == "relu3_3" and [r["seed"] for r in results["runs"]] == [0, 1]
    assert (0 < results["mean_abs_diff"] <= 255
            and 0 < results["mean_abs_diff_of_starting_noise"] <= 255)


def check_texture_synthesis(results, settings, out):
    assert results["style_layer_sets"] == STYLE_SETS and results["seeds"] == [0, 1]
    assert [(r["seed"], r["style_layers"]) for r in results["runs"]] == \
        [(s, ls) for s in (0, 1) for ls in STYLE_SETS]
    assert all(r["loss"]["content"] == 0 and r["content_layer"] is None for r in results["runs"])


def check_style_sweeps(results, settings, out):
    inits = ["noise"] * 5 + ["content"] * 5
    assert [r["content_layer"] for r in results["content_layer"]] == \
        [f"relu{b}_2" for b in range(1, 6)] * 2
    assert [r["style_layers"] for r in results["style_layers"]] == STYLE_SETS * 2
    assert [r["style_weight"] for r in results["ratio"]] == pytest.approx([10, 100, 1e3, 1e4] * 2)
    assert [r["init"] for r in results["content_layer"]] == inits
    assert [r["init"] for r in results["ratio"]] == ["noise"] * 4 + ["content"] * 4
    assert (set(results["mean_time_s"]) == {"noise", "content"}
            and all(t > 0 for t in results["mean_time_s"].values()))


def check_initialisation(results, settings, out):
    runs = results["runs"]
    assert [r["init"] for r in runs] == ["noise", "content", "style", "black", "checkerboard"]
    worst = max(r["loss"]["total"] for r in runs)
    assert results["target_loss"] == pytest.approx(1.05 * worst)
    for r in runs:  # every start reaches 1.05 x the worst final loss
        n = r["iterations_to_target"]
        assert 1 <= n <= r["iterations"] and r["seconds_to_target"] > 0, r
        assert (r["total_per_iteration"][n - 1] <= results["target_loss"]
                and len(r["total_per_iteration"]) == r["iterations"])


def check_pooling(results, settings, out):
    assert [r["pool"] for r in results["runs"]] == ["avg", "max"]
    assert all(r["init"] == "noise" and r["style_layers"] for r in results["runs"])


def check_loss_curves(results, settings, out):
    assert [r["optimizer"] for r in results["runs"]] == ["lbfgs", "lbfgs-device", "adam"]
    for r in results["runs"]:
        curve = results["curves"][r["optimizer"]]
        assert {len(curve[k]) for k in ("total", "content", "style", "time")} == {r["iterations"]}
        assert curve["total"][-1] == pytest.approx(r["loss"]["total"])
    adam = results["runs"][2]
    assert adam["evaluations"] == adam["iterations"]  # one gradient per Adam step


def check_johnson_layers(results, settings, out):
    assert results["layers"] == ["relu2_2", "relu3_3", "relu4_3"]
    assert settings["train_iters"] == 2 and settings["data"].endswith("photos")
    for r, layer in zip(results["runs"], results["layers"]):
        assert (r["content_layer"] == layer
                and (out / "johnson_layers_models" / f"{layer}.h5").is_file())
        assert r["train_s"] > 0 and r["stylize_s"] > 0
        assert set(r["scores"]) == {"style", "content_relu2_2", "content_relu3_3",
                                    "content_relu4_3"}
        assert all(math.isfinite(v) and v >= 0 for v in r["scores"].values())


CHECKS = {name: globals()[f"check_{name}"] for name in NAMES}


def test_johnson_layers_without_photos_is_a_one_line_error(inputs, synthetic_vgg, tmp_path, capsys,
                                                           monkeypatch):
    monkeypatch.setenv("NUMSTYLE_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    argv = quick("johnson_layers", inputs, synthetic_vgg("vgg16")[0], tmp_path)
    argv.remove("--data")
    argv.remove(inputs["data"])
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 1 and len(err.strip().splitlines()) == 1 and "--data" in err


def test_plot_draws_log_and_linear_axes():
    for log_y in (True, False):
        im = plot({"a": [1e5, 1e3, 10.0], "b": ([0, 5, 10], [3.0, 0.0, -1.0]), "empty": []},
                  "t", "x", "y", log_y=log_y)
        assert im.shape == (400, 640, 3) and im.dtype == np.uint8
        assert (im != 255).any(axis=2).sum() > 1000  # something was drawn
