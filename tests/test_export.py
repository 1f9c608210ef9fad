"""``numstyle export``: every network kind as ONNX, run by onnxruntime, against ``stylize`` and
``upscale`` on odd sizes; the onnx package missing; the docs' onnxruntime lines."""
import os
import re
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from PIL import Image

from numstyle import models, onnx_export, transformer
from numstyle.cli import main
from numstyle.errors import NumstyleError
from numstyle.layers import Layer

from conftest import assert_one_line_error

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))

KINDS = {   # every network numstyle trains, tiny
    "style-transposed-instance": {"kind": "style", "norm": "instance", "width": [4, 6, 8],
                                  "n_res": 1, "upsample": "transposed"},
    "style-nearest-instance": {"kind": "style", "norm": "instance", "width": [4, 6, 8],
                               "n_res": 1, "upsample": "nearest"},
    "style-transposed-batch": {"kind": "style", "norm": "batch", "width": [4, 6, 8], "n_res": 2,
                               "upsample": "transposed"},
    "sr-x4-transposed-skip": {"kind": "sr", "norm": "batch", "width": 8, "n_res": 1, "scale": 4,
                              "upsample": "transposed", "skip": True},
    "sr-x2-nearest-skip": {"kind": "sr", "norm": "instance", "width": 8, "n_res": 1, "scale": 2,
                           "upsample": "nearest", "skip": True},
    "sr-x8-nearest-noskip": {"kind": "sr", "norm": "batch", "width": 6, "n_res": 1, "scale": 8,
                             "upsample": "nearest", "skip": False},
}


def random_model(path, config, seed=5):
    """A model file of ``config`` whose every parameter and statistic is random (not the
    initial gamma = 1, beta = 0, so that a misplaced one shows)."""
    rng = np.random.default_rng(seed)
    params = transformer.init_params(models.spec_from_config(config), seed=seed)
    for key, value in params.items():
        if key.endswith((".gamma", ".beta", ".b")):
            base = 1.0 if key.endswith(".gamma") else 0.0
            params[key] = (base + 0.3 * rng.standard_normal(value.shape)).astype(np.float32)
    state = transformer.init_state(params, config["norm"])
    for stats in state.values():
        stats["mean"] = (0.5 * rng.standard_normal(stats["mean"].shape)).astype(np.float32)
        stats["var"] = rng.uniform(0.5, 2.0, stats["var"].shape).astype(np.float32)
    models.save_model(str(path), params, config, state)
    return str(path)


def run_onnx(path, rgb):
    """The exported file on (H, W, 3) uint8 -> (H', W', 3) float, as the docs run it."""
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    x = np.asarray(rgb, np.float32).transpose(2, 0, 1)[None]
    return session.run(None, {"input": x})[0][0].transpose(1, 2, 0)


def export_and_compare(tmp_path, model, command, shape, capsys):
    """Export ``model``, run ``numstyle COMMAND`` and the ONNX file on one photo of ``shape``;
    the largest difference of the written 8-bit pictures, and the ONNX model."""
    rng = np.random.default_rng(11)
    photo = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 256, shape + (3,), dtype=np.uint8)).save(photo)
    onnx_path, out = str(tmp_path / "net.onnx"), str(tmp_path / "out.png")
    assert main(["export", model, "--onnx", onnx_path]) == 0
    assert "wrote" in capsys.readouterr().out
    assert main([command, "--model", model, str(photo), "--out", out, "--no-progress"]) == 0
    ours = np.asarray(Image.open(out), np.float32)
    theirs = np.clip(run_onnx(onnx_path, np.asarray(Image.open(photo))), 0, 255).round()
    assert theirs.shape == ours.shape
    return np.abs(theirs - ours).max(), onnx.load(onnx_path)


@pytest.mark.parametrize("name", list(KINDS))
def test_export_matches_stylize_and_upscale_on_odd_sizes(name, tmp_path, capsys):
    config = KINDS[name]
    model = random_model(tmp_path / "m.h5", config)
    command = "stylize" if config["kind"] == "style" else "upscale"
    shape = (37, 53) if config["kind"] == "style" else (13, 19)
    worst, proto = export_and_compare(tmp_path, model, command, shape, capsys)
    assert worst <= 1, f"{name}: {worst} grey levels from numstyle {command}"
    onnx.checker.check_model(proto, full_check=True)
    assert [i.name for i in proto.graph.input] == ["input"]
    assert [o.name for o in proto.graph.output] == ["output"]
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["N", 3, "H", "W"]
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT


@pytest.mark.parametrize("name,command,shape", [("starry_night", "stylize", (37, 53)),
                                                ("sr_x4_pixel", "upscale", (15, 21))])
def test_shipped_networks_export(name, command, shape, tmp_path, capsys):
    worst, _ = export_and_compare(tmp_path, name, command, shape, capsys)
    assert worst <= 1


def test_one_graph_takes_any_size_and_a_batch(tmp_path):
    config = KINDS["style-nearest-instance"]
    params, config, state = models.load_model(random_model(tmp_path / "m.h5", config))
    session = ort.InferenceSession(onnx_export.to_onnx(params, config, state).SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    for shape in [(2, 3, 16, 16), (1, 3, 23, 41)]:
        x = np.random.default_rng(0).uniform(0, 255, shape).astype(np.float32)
        y = session.run(None, {"input": x})[0]
        assert y.shape == shape and 0 <= y.min() and y.max() <= 255


def test_missing_onnx_is_one_line_naming_the_extra(tmp_path, style_model, monkeypatch, capsys):
    monkeypatch.delitem(sys.modules, "numstyle.onnx_export")
    monkeypatch.setitem(sys.modules, "onnx", None)     # import onnx now fails, as uninstalled
    out = tmp_path / "m.onnx"
    code = main(["export", style_model, "--onnx", str(out)])
    assert_one_line_error(code, capsys.readouterr().err, "pip install -e '.[export]'")
    assert not out.exists()


def test_export_errors_are_one_line(tmp_path, style_model, capsys):
    code = main(["export", style_model, "--onnx", str(tmp_path / "m.png")])
    assert_one_line_error(code, capsys.readouterr().err, ".onnx")
    code = main(["export", str(tmp_path / "none.h5"), "--onnx", str(tmp_path / "m.onnx")])
    assert_one_line_error(code, capsys.readouterr().err, "model not found")
    code = main(["export", style_model, "--onnx", style_model + "/x.onnx"])   # under a file
    assert_one_line_error(code, capsys.readouterr().err, "not a folder")


def test_a_style_index_is_refused_for_a_network_of_one_style(tmp_path):
    params, config, state = models.load_model(random_model(tmp_path / "m.h5",
                                                           KINDS["style-nearest-instance"]))
    with pytest.raises(NumstyleError, match="one style"):
        onnx_export.to_onnx(params, config, state, style=1)


@pytest.mark.parametrize("choice", [None, "1", "b", "0:0.25,2:0.75"])
def test_a_network_of_several_styles_exports_the_chosen_style(choice, tmp_path, capsys):
    """Conditional instance norm (N4): ``export --style`` writes the plain network of that style
    or blend (default the first), and onnxruntime gives ``stylize --style``'s picture."""
    config = dict(KINDS["style-nearest-instance"], styles=[{"name": n} for n in "abc"])
    rng = np.random.default_rng(3)
    params = transformer.init_params(models.spec_from_config(config), seed=3, styles=3)
    for key, value in params.items():   # every style's rows different, so a wrong row shows
        if key.endswith((".gamma", ".beta")):
            params[key] = (float(key.endswith(".gamma"))
                           + 0.5 * rng.standard_normal(value.shape)).astype(np.float32)
    model = str(tmp_path / "three.h5")
    models.save_model(model, params, config, transformer.init_state(params, "instance"))
    photo, onnx_path, out = (str(tmp_path / n) for n in ("p.png", "n.onnx", "o.png"))
    Image.fromarray(rng.integers(0, 256, (21, 30, 3), dtype=np.uint8)).save(photo)
    flag = [] if choice is None else ["--style", choice]
    assert main(["export", model, "--onnx", onnx_path] + flag) == 0
    assert main(["stylize", "--model", model, photo, "--out", out, "--no-progress"] + flag) == 0
    ours = np.asarray(Image.open(out), np.float32)
    theirs = np.clip(run_onnx(onnx_path, np.asarray(Image.open(photo))), 0, 255).round()
    assert np.abs(theirs - ours).max() <= 1
    other = str(tmp_path / "other.onnx")
    assert main(["export", model, "--onnx", other, "--style", "2" if choice != "2" else "0"]) == 0
    assert np.abs(run_onnx(other, np.asarray(Image.open(photo))) - theirs).max() > 5


def test_a_layer_without_an_exporter_is_named(tmp_path):
    class Strange(Layer):
        pass

    with pytest.raises(NumstyleError, match="Strange"):
        onnx_export.export_layer(onnx_export.Graph(), Strange(), "input")


def test_the_docs_onnxruntime_lines_run(tmp_path, capsys):
    """docs/export.md's five lines (fenced ``python3``: the doc-snippet test runs ``python``
    blocks in an empty folder) on a photo and an exported network, as a user would."""
    text = open(os.path.join(ROOT, "docs", "export.md"), encoding="utf-8").read()
    (code,) = re.findall(r"```python3\n(.*?)```", text, flags=re.S)
    assert len(code.strip().splitlines()) == 5
    model = random_model(tmp_path / "m.h5", KINDS["style-transposed-instance"])
    assert main(["export", model, "--onnx", str(tmp_path / "starry_night.onnx")]) == 0
    rgb = np.random.default_rng(2).integers(0, 256, (21, 30, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "photo.jpg", quality=95)
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert main(["stylize", "--model", model, str(tmp_path / "photo.jpg"), "--out",
                 str(tmp_path / "ours.png"), "--no-progress"]) == 0
    theirs = np.asarray(Image.open(tmp_path / "stylized.png"), np.float32)
    ours = np.asarray(Image.open(tmp_path / "ours.png"), np.float32)
    assert np.abs(theirs - ours).max() <= 1
