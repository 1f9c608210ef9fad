"""Several styles in one network (Dumoulin et al.): the conditional norm, training, blends,
adding a style; the slim width; ``numstyle models``."""
import json
import os

import h5py
import numpy as np
import pytest
from PIL import Image

from numstyle import engine, models, styles, transformer
from numstyle import transformer_layers as tl
from numstyle.cli import main

from conftest import assert_one_line_error

TINY = ["--data", None, "--size", "32", "--batch-size", "2", "--width", "4,6,8", "--n-res", "1",
        "--no-progress", "--style-layers", "relu1_2,relu2_2", "--content-layer", "relu2_2"]


def _tiny(tmp_path, weights_path, *extra):
    args = [str(tmp_path / "data") if a is None else a for a in TINY]
    return args + ["--weights", weights_path] + list(extra)


@pytest.fixture
def two_styles(tmp_path, rng):
    """A folder of photos and two style images (stripes, blotches)."""
    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (40, 44, 3), dtype=np.uint8)).save(data / f"{i}.png")
    yy, xx = np.mgrid[0:48, 0:48]
    a = np.stack([(xx * 5) % 256, (yy * 9) % 256, ((xx + yy) * 3) % 256], -1)
    b = np.stack([(xx * yy) % 256, 255 - (xx * 3) % 256, (yy * 17) % 256], -1)
    paths = []
    for name, img in (("stripes", a), ("blotches", b)):
        paths.append(str(tmp_path / f"{name}.png"))
        Image.fromarray(img.astype(np.uint8)).save(paths[-1])
    photo = str(tmp_path / "photo.png")
    Image.fromarray(rng.integers(0, 256, (37, 50, 3), dtype=np.uint8)).save(photo)
    return paths, photo


@pytest.fixture
def trained(tmp_path, synthetic_vgg, two_styles):
    """A conditional network of the two styles, 4 iterations (2 batches of each style)."""
    weights_path, _ = synthetic_vgg("vgg16")
    model = str(tmp_path / "two.h5")
    assert main(["train", "--style", *two_styles[0], "--out", model, "--iters", "4",
                 "--checkpoint-every", "0", *_tiny(tmp_path, weights_path)]) == 0
    return model, weights_path


@pytest.mark.parametrize("impl", engine.implementations(tl.ConditionalNorm))
def test_conditional_norm_of_one_style_is_that_styles_norm(impl, rng):
    """One-hot weights: the layer is the plain Norm of that style's row, forward and backward, and
    the other styles' rows get exactly zero gradient (N5)."""
    x, dy = rng.standard_normal((2, 4, 5, 6)), rng.standard_normal((2, 4, 5, 6))
    g, b = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    cond = tl.ConditionalNorm(g, b, styles.one_hot(1, 3, np.float64))
    cond = impl.replacing(cond) if impl is not tl.ConditionalNorm else cond
    plain = tl.Norm(g[1], b[1])
    y, cache = cond.forward(x)
    dx, grads = cond.backward(dy, cache)
    y_ref, cache_ref = plain.forward(x)
    dx_ref, grads_ref = plain.backward(dy, cache_ref)
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-10, atol=1e-12)
    for key in ("gamma", "beta"):
        assert grads[key].shape == (3, 4)
        np.testing.assert_allclose(grads[key][1], grads_ref[key], rtol=1e-12)
        assert not grads[key][[0, 2]].any(), f"{key}: other styles got a gradient"


def test_training_mix_and_inference_mix_agree(rng):
    """The training network (ConditionalNorm layers) and the inference one (plain Norms of the
    mixed pairs, as stylize builds from styles.apply_mix) give the same picture."""
    spec = transformer.style_spec((4, 6, 8), 1)
    params = transformer.init_params(spec, seed=2, styles=3)
    params = {k: v + 0.3 * rng.standard_normal(v.shape).astype(np.float32) if v.ndim == 2 else v
              for k, v in params.items()}
    x = rng.uniform(-1, 1, (1, 3, 20, 24)).astype(np.float32)
    mix = np.array([0.2, 0.0, 0.8], np.float32)
    train_y, _ = transformer.transformer_forward(params, x, spec, mix=mix)
    plain, _ = styles.apply_mix(params, {"styles": [{"name": n} for n in "abc"]}, mix)
    infer_y, _ = transformer.transformer_forward(plain, x, spec, keep_caches=False)
    np.testing.assert_allclose(infer_y, train_y, rtol=1e-4, atol=1e-3)


def test_two_styles_train_together_and_each_stylizes(tmp_path, trained, two_styles):
    model, _ = trained
    params, config, _ = models.load_model(model)
    assert styles.names(config) == ["stripes", "blotches"]
    assert params["c1.gamma"].shape == (2, 4) and params["r1.2.beta"].shape == (2, 8)
    assert not np.array_equal(params["c1.gamma"][0], params["c1.gamma"][1]), "one style trained"
    outs = []
    for choice in ("0", "blotches"):
        out = str(tmp_path / f"out_{choice}.png")
        assert main(["stylize", "--model", model, "--style", choice, two_styles[1], "--out", out,
                     "--no-progress"]) == 0
        outs.append(np.asarray(Image.open(out), dtype=np.int16))
        assert outs[-1].shape == (37, 50, 3)
    assert np.abs(outs[0] - outs[1]).max() > 0, "the two styles gave the same picture"


def test_a_blend_of_weight_one_is_that_style_and_a_half_blend_mixes_gamma_beta(
        tmp_path, trained, two_styles):
    model, _ = trained
    photo = two_styles[1]

    def stylize(choice):
        out = str(tmp_path / "s.png")
        assert main(["stylize", "--model", model, "--style", choice, photo, "--out", out,
                     "--no-progress"]) == 0
        return np.asarray(Image.open(out), dtype=np.int16)

    one = stylize("1")
    for same in ("0:0,1:1", "blotches:1", "1:0.25,0:0"):
        assert np.array_equal(stylize(same), one), same
    half = stylize("0:0.5,1:0.5")
    assert not np.array_equal(half, one) and not np.array_equal(half, stylize("0"))
    params, config, _ = models.load_model(model)
    mixed = {k: (v[0] + v[1]) / 2 if v.ndim == 2 else v for k, v in params.items()}
    plain = str(tmp_path / "plain.h5")
    models.save_model(plain, mixed, {k: v for k, v in config.items() if k != "styles"})
    out = str(tmp_path / "p.png")
    assert main(["stylize", "--model", plain, photo, "--out", out, "--no-progress"]) == 0
    assert np.abs(np.asarray(Image.open(out), dtype=np.int16) - half).max() <= 1   # rounding


def test_export_h5_writes_one_style_as_a_plain_network(tmp_path, trained, two_styles, capsys):
    """``export --h5 --style I``: a model file of one style that stylises as ``--style I`` of the
    network of several, names its style and carries its image's sha256."""
    model, _ = trained
    photo, one = two_styles[1], str(tmp_path / "blotches.h5")
    assert main(["export", model, "--style", "blotches", "--h5", one, "--half"]) == 0
    params, config, _ = models.load_model(one)
    assert styles.count(config) == 0 and params["c1.gamma"].shape == (4,)
    _, full, _ = models.load_model(model)
    assert config["style"] == "blotches" and config["style_sha256"] == full["styles"][1]["sha256"]
    outs = []
    for argv in (["--model", model, "--style", "1"], ["--model", one]):
        out = str(tmp_path / "o.png")
        assert main(["stylize", *argv, photo, "--out", out, "--overwrite", "--no-progress"]) == 0
        outs.append(np.asarray(Image.open(out), dtype=np.int16))
    assert np.abs(outs[0] - outs[1]).max() <= 2      # float16 parameters: a level or two at most
    capsys.readouterr()
    assert main(["export", one, "--h5", str(tmp_path / "again.h5")]) == 1
    assert "already a network of one style" in capsys.readouterr().err
    # --half on a network of one style: the same network, stored as float16
    halved = str(tmp_path / "halved.h5")
    assert main(["export", one, "--h5", halved, "--half"]) == 0
    with h5py.File(halved) as f:
        assert f["params"]["c1.w"].dtype == np.float16
    assert main(["export", model, "--onnx", str(tmp_path / "x.onnx"), "--half"]) == 1
    assert "--half is for --h5" in capsys.readouterr().err


def test_add_style_trains_only_the_new_gamma_beta(tmp_path, trained, two_styles, capsys):
    model, weights_path = trained
    third = str(tmp_path / "third.png")
    yy, xx = np.mgrid[0:40, 0:40]
    Image.fromarray(np.stack([(xx * 40) % 256, (yy * 40) % 256, xx * 0 + 128], -1)
                    .astype(np.uint8)).save(third)
    grown = str(tmp_path / "three.h5")
    assert main(["train", "--add-style", third, "--resume", model, "--out", grown, "--iters", "3",
                 "--checkpoint-every", "0", *_tiny(tmp_path, weights_path)]) == 0
    before, _, _ = models.load_model(model)
    after, config, _ = models.load_model(grown)
    assert styles.names(config) == ["stripes", "blotches", "third"]
    assert sorted(after) == sorted(before)
    start = styles.add_row(before)
    for key, old in before.items():
        if old.ndim == 2:
            assert np.array_equal(after[key][:2], old), f"{key}: an old style's row changed"
            assert after[key].shape == (3, old.shape[1])
        else:
            assert np.array_equal(after[key], old), f"{key} changed"
    changed = [k for k in before if before[k].ndim == 2
               and not np.array_equal(after[k][2], start[k][2])]
    assert len(changed) > len(before) // 3, "the new style's gamma, beta did not train"
    out = str(tmp_path / "t.png")
    assert main(["stylize", "--model", grown, "--style", "third", two_styles[1], "--out", out,
                 "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["train", "--add-style", third, "--resume", grown, "--out",
                 str(tmp_path / "again.h5"), *_tiny(tmp_path, weights_path)]) == 1
    assert_one_line_error(1, capsys.readouterr().err, "already has the style")


def test_add_style_resumes_its_own_checkpoint(tmp_path, trained, capsys):
    """An interrupted --add-style continues from its checkpoint: 2 + 2 iterations = 4."""
    model, weights_path = trained
    third = str(tmp_path / "third.png")
    Image.fromarray(np.full((40, 40, 3), 90, np.uint8) + np.eye(40, dtype=np.uint8)[..., None]
                    * 100).save(third)
    common = ["--add-style", third, "--checkpoint-every", "2", *_tiny(tmp_path, weights_path)]
    whole, part = str(tmp_path / "whole.h5"), str(tmp_path / "part.h5")
    assert main(["train", "--resume", model, "--out", whole, "--iters", "4", *common]) == 0
    assert main(["train", "--resume", model, "--out", part, "--iters", "2", *common]) == 0
    assert main(["train", "--resume", str(tmp_path / "part.ckpt.h5"), "--out", part, "--iters",
                 "4", *common]) == 0
    assert "resuming from iteration 2" in capsys.readouterr().out
    a, _, _ = models.load_model(whole)
    b, _, _ = models.load_model(part)
    for key in a:
        np.testing.assert_allclose(b[key], a[key], rtol=1e-5, atol=1e-6, err_msg=key)


@pytest.mark.parametrize("argv,needle", [
    (["stylize", "--style", "2"], "the model's styles are 0:stripes, 1:blotches"),
    (["stylize", "--style", "0:-1"], "weights must be finite and >= 0"),
    (["stylize", "--style", "0:0"], "sum to 0"),
    (["train", "--norm", "batch"], "need --norm instance"),
    (["train", "--style-weight", "1", "2", "3"], "one per style (2)"),
    (["train-add"], "--add-style needs --resume"),
])
def test_style_errors_are_one_line(tmp_path, trained, two_styles, capsys, argv, needle):
    model, weights_path = trained
    if argv[0] == "stylize":
        argv = argv + ["--model", model, two_styles[1], "--out", str(tmp_path / "x.png")]
    elif argv == ["train-add"]:
        argv = ["train", "--add-style", two_styles[0][0], *_tiny(tmp_path, weights_path)]
    else:
        argv = argv + ["--style", *two_styles[0], *_tiny(tmp_path, weights_path)]
    capsys.readouterr()
    code = main(argv)
    assert_one_line_error(code, capsys.readouterr().err, needle)


def test_resume_refuses_other_styles(tmp_path, synthetic_vgg, two_styles, capsys):
    weights_path, _ = synthetic_vgg("vgg16")
    out = str(tmp_path / "m.h5")
    assert main(["train", "--style", *two_styles[0], "--out", out, "--iters", "2",
                 "--checkpoint-every", "1", *_tiny(tmp_path, weights_path)]) == 0
    capsys.readouterr()
    code = main(["train", "--style", *two_styles[0][::-1], "--out", out, "--iters", "3",
                 "--resume", str(tmp_path / "m.ckpt.h5"), *_tiny(tmp_path, weights_path)])
    assert_one_line_error(code, capsys.readouterr().err, "other style images")


def test_slim_width_by_name(tmp_path, synthetic_vgg, two_styles):
    weights_path, _ = synthetic_vgg("vgg16")
    out = str(tmp_path / "slim.h5")
    args = _tiny(tmp_path, weights_path)
    args[args.index("4,6,8")] = "slim"
    assert main(["train", "--style", two_styles[0][0], "--out", out, "--iters", "1",
                 "--checkpoint-every", "0", *args]) == 0
    params, config, _ = models.load_model(out)
    assert config["width"] == [16, 32, 64] and params["c3.w"].shape == (64, 32, 3, 3)


def test_models_lists_shipped_and_user_folders(tmp_path, trained, monkeypatch, capsys):
    model, _ = trained
    user = tmp_path / "data" / "models"
    user.mkdir(parents=True)
    os.replace(model, user / "duo.h5")
    (user / "broken.h5").write_bytes(b"not hdf5")
    monkeypatch.setenv("NUMSTYLE_DATA", str(tmp_path / "data"))
    assert main(["models", "--json"]) == 0
    captured = capsys.readouterr()
    found = {m["name"]: m for m in json.loads(captured.out)}
    assert "broken" not in found and "skipped" in captured.err and "broken.h5" in captured.err
    assert found["duo"]["kind"] == "style" and found["duo"]["styles"] == ["stripes", "blotches"]
    assert found["duo"]["folder"] == "user" and found["duo"]["scale"] is None
    shipped = models.shipped_models()
    for name in shipped:
        m = found[name]
        assert m["folder"] == "shipped" and set(m) >= {"name", "kind", "styles", "scale"}
        if m["kind"] == "sr":
            assert m["scale"] == int(m["name"].split("_")[1][1:]) and m["styles"] == []  # sr_x8_...
        elif m["styles"] != [name]:                                  # trained on <name>.jpg, or
            assert len(m["styles"]) > 1 and m["scale"] is None      # several styles in one file
    assert main(["models"]) == 0
    assert "0:stripes, 1:blotches" in capsys.readouterr().out
    assert models.resolve_model_path("duo") == str(user / "duo.h5")  # --model NAME finds it


def test_one_style_of_several_keeps_its_own_style_weight(tmp_path, trained):
    """The plain network of one style records that style's own --style-weight, and a blend the
    blend of the weights: its settings describe it as a training of that style would."""
    model, _ = trained
    params, config, _ = models.load_model(model)
    config = dict(config, settings=dict(config["settings"], style_weight=[2e-4, 5e-5]))
    _, one = styles.plain_network(params, config, "1")
    _, half = styles.plain_network(params, config, "0:0.5,1:0.5")
    assert one["settings"]["style_weight"] == pytest.approx(5e-5)
    assert half["settings"]["style_weight"] == pytest.approx(1.25e-4)
