"""Johnson et al.: new ops against their naive twins, training, resume, stylising."""
import os

import h5py
import numpy as np
import pytest
from PIL import Image

from numstyle import models, naive, transformer
from numstyle import transformer_layers as tl
from numstyle.cli import main
from numstyle.dataset import Batches
from numstyle.fast import conv, norm, pad, winograd


def test_transposed_conv_is_the_adjoint_of_conv(rng):
    # <conv(u), v> == <u, conv^T(v)>  (T1)
    w = rng.standard_normal((4, 3, 3, 3))
    u = rng.standard_normal((2, 3, 10, 12))
    v = rng.standard_normal((2, 4, 5, 6))
    Ku = conv.conv2d_forward(u, w, None, 2, 1)[0]
    Ktv = conv.conv_transpose2d_forward(v, w, None, 2, 1, 1)[0]
    assert Ku.shape == v.shape and Ktv.shape == u.shape
    assert np.isclose(np.sum(Ku * v), np.sum(u * Ktv), rtol=1e-12)


@pytest.mark.parametrize("stride,p,op", [(2, 1, 1), (2, 0, 0), (1, 1, 0), (3, 1, 2)])
def test_transposed_conv_matches_naive(stride, p, op, rng):
    x = rng.standard_normal((2, 3, 4, 5))
    w = rng.standard_normal((3, 2, 3, 3))
    b = rng.standard_normal(2)
    want = naive.ConvTranspose2dLoops(w, stride, p, op).forward(x)[0] + b.reshape(1, 2, 1, 1)
    np.testing.assert_allclose(conv.conv_transpose2d_forward(x, w, b, stride, p, op)[0], want,
                               rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(tl.ConvTranspose2d(w, stride, p, op).forward(x)[0],
                               want - b.reshape(1, 2, 1, 1), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("kind", ["batch", "instance"])
def test_norm_matches_naive_and_normalises(kind, rng):
    x = rng.standard_normal((3, 4, 5, 6)) * 3 + 2
    g, b = np.ones(4), np.zeros(4)
    out = norm.norm_forward(x, g, b, kind)[0]
    np.testing.assert_allclose(out, naive.NormLoops(g, b, kind).forward(x)[0], rtol=1e-10,
                               atol=1e-10)
    axes = norm.AXES[kind]
    np.testing.assert_allclose(out.mean(axis=axes), 0, atol=1e-10)
    np.testing.assert_allclose(out.var(axis=axes), 1, atol=1e-3)


def test_batch_norm_running_averages_are_used_at_inference(rng):
    running = {"mean": np.zeros(2), "var": np.ones(2)}
    for _ in range(200):
        norm.norm_forward(rng.standard_normal((8, 2, 4, 4)) * 2 + 5, np.ones(2), np.zeros(2),
                          "batch", running=running)
    np.testing.assert_allclose(running["mean"], 5, atol=0.1)
    np.testing.assert_allclose(running["var"], 4, atol=0.3)
    x = np.full((1, 2, 3, 3), 5.0)
    out = norm.norm_forward(x, np.ones(2), np.zeros(2), "batch", running=running, train=False)[0]
    # a single image is normalised by the averages, not by itself
    np.testing.assert_allclose(out, 0, atol=0.1)


@pytest.mark.parametrize("kind", ["batch", "instance"])
def test_inference_norm_equals_norm_forward(kind, rng):
    """The fused in-place inference path (one multiply-add) gives norm_forward's
    train=False result."""
    x = rng.standard_normal((2, 4, 5, 6)) * 3 + 7
    g, b = rng.standard_normal(4), rng.standard_normal(4)
    running = {"mean": rng.standard_normal(4), "var": rng.uniform(0.5, 2, 4)}
    ref = norm.norm_forward(x, g, b, kind, running=dict(running), train=False)[0]
    out = norm.norm_inference(x.copy(), g, b, kind, running=dict(running), relu=True)
    np.testing.assert_allclose(out, np.maximum(ref, 0), rtol=1e-10, atol=1e-10)
    recorded, recorded_fused = {}, {}
    norm.norm_forward(x[:1], g, b, "instance", running=recorded)
    norm.norm_inference(x[:1].copy(), g, b, "instance", running=recorded_fused)
    for key in ("mean", "var"):
        np.testing.assert_allclose(recorded_fused[key], recorded[key], rtol=1e-10, err_msg=key)


@pytest.mark.parametrize("norm_kind", ["batch", "instance"])
def test_lean_inference_forward_equals_the_forward_that_keeps_caches(norm_kind, rng):
    spec = transformer.style_spec((4, 6, 8), 2)
    params = transformer.init_params(spec, seed=1)
    state = transformer.init_state(params, norm_kind)
    x = rng.uniform(-1, 1, (1, 3, 37, 29)).astype(np.float32)
    kept, caches = transformer.transformer_forward(params, x, spec, norm_kind, train=False,
                                                   state=state)
    lean, none = transformer.transformer_forward(params, x, spec, norm_kind, train=False,
                                                 state=state, keep_caches=False)
    assert caches and none == []
    np.testing.assert_allclose(lean, kept, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("spec", [transformer.style_spec((4, 6, 8), 2),
                                  transformer.sr_spec(4, 6, 2),
                                  transformer.style_spec((4, 6, 8), 1, "nearest")])
def test_inference_runs_residual_convs_by_winograd_and_matches(spec, rng, monkeypatch):
    # for inference (no caches kept: no weight gradient) the engine gives the residual blocks' 3x3
    # convolutions Winograd's (W2) kernels (not those after nearest up-sampling); a forward that
    # keeps caches (training) stays on (CV1); outputs agree to float32 round-off
    monkeypatch.setattr(winograd, "WINOGRAD_MIN_CHANNELS", 1)  # the tiny widths count as wide here
    params = transformer.init_params(spec, seed=3)
    convs = [c for kind, name, *_ in spec if kind == "res" for c in (f"{name}.1", f"{name}.2")]
    calls = []
    real = winograd.WinogradConv2d.forward
    monkeypatch.setattr(winograd.WinogradConv2d, "forward",
                        lambda self, x: calls.append(self.name) or real(self, x))
    x = rng.uniform(-1, 1, (1, 3, 23, 18)).astype(np.float32)
    fast, _ = transformer.transformer_forward(params, x, spec, "instance", train=False,
                                              keep_caches=False)
    assert sorted(calls) == sorted(convs), "every residual conv (and no other) through Winograd"
    kept, caches = transformer.transformer_forward(params, x, spec, "instance", train=False)
    assert sorted(calls) == sorted(convs), "a forward with caches stays on (CV1)"
    monkeypatch.setattr(winograd, "WINOGRAD_MIN_CHANNELS", 10 ** 9)
    plain, _ = transformer.transformer_forward(params, x, spec, "instance", train=False,
                                               keep_caches=False)
    assert sorted(calls) == sorted(convs)
    np.testing.assert_allclose(fast, plain, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(kept, plain, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("p,shape", [(1, (2, 3, 5, 6)), (4, (1, 2, 9, 7)), (2, (1, 1, 3, 3)),
                                     (1, (1, 2, 2, 5)), (3, (2, 3, 6, 4)), (0, (1, 1, 2, 2))])
def test_reflect_pad_matches_naive(p, shape, rng):
    x = rng.standard_normal(shape)
    want = naive.ReflectionPad2dLoops(p).forward(x)[0]
    np.testing.assert_array_equal(pad.reflect_pad_forward(x, p)[0], want)
    np.testing.assert_array_equal(tl.ReflectionPad2d(p).forward(x)[0], want)


@pytest.mark.parametrize("shape", [(1, 3, 97, 131), (2, 3, 16, 16), (1, 3, 5, 7)])
def test_style_network_keeps_any_size(shape, rng):
    spec = transformer.style_spec((4, 6, 8), 1)
    params = transformer.init_params(spec)
    y, _ = transformer.transformer_forward(params, rng.uniform(-1, 1, shape).astype(np.float32),
                                           spec)
    assert y.shape == shape and y.dtype == np.float32
    assert 0 <= y.min() and y.max() <= 255


def _photos(folder, rng, n=6):
    os.makedirs(folder, exist_ok=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (40 + 3 * i, 50, 3), dtype=np.uint8)).save(
            os.path.join(folder, f"p{i}.jpg"))
    os.makedirs(os.path.join(folder, "sub"), exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (48, 48), dtype=np.uint8)).save(
        os.path.join(folder, "sub", "grey.png"))
    with open(os.path.join(folder, "sub", "broken.jpg"), "wb") as f:
        f.write(b"not a jpeg")


def test_batches_are_deterministic_and_skip_unreadable_files(tmp_path, rng):
    _photos(str(tmp_path / "data"), rng)
    warnings = []
    b = Batches(str(tmp_path / "data"), 32, 3, seed=5, warn=warnings.append)
    # recursive, by extension (the broken one included)
    assert len(b.paths) == 8
    first = [b[i] for i in range(4)]                   # through the background thread
    again = [b.make(i) for i in range(4)]              # directly
    for x, y in zip(first, again):
        assert x.shape == (3, 3, 32, 32) and x.dtype == np.float32
        np.testing.assert_array_equal(x, y)
    for i in range(4, 30):
        b.make(i)
    b.close()
    assert len(warnings) == 1 and "broken.jpg" in warnings[0], warnings


def _train_args(tmp_path, weights_path, style, *extra):
    return ["train", "--style", style, "--data", str(tmp_path / "data"), "--weights", weights_path,
            "--size", "32", "--batch-size", "2", "--width", "4,6,8", "--n-res", "1",
            "--no-progress", "--style-layers", "relu1_2,relu2_2",
            "--content-layer", "relu2_2"] + list(extra)


@pytest.fixture
def style_and_data(tmp_path, rng):
    _photos(str(tmp_path / "data"), rng)
    style = str(tmp_path / "style.png")
    yy, xx = np.mgrid[0:48, 0:48]
    Image.fromarray(np.stack([(xx * 5) % 256, (yy * 9) % 256, ((xx + yy) * 3) % 256], -1)
                    .astype(np.uint8)).save(style)
    return style


def test_training_lowers_the_loss(tmp_path, synthetic_vgg, style_and_data, capsys):
    from numstyle import train, weights
    path, _ = synthetic_vgg("vgg16")
    vgg = weights.load_vgg(path, "vgg16")
    style = np.asarray(Image.open(style_and_data), dtype=np.float32).transpose(2, 0, 1)[None]
    loss = train.PerceptualLoss(vgg, style, "relu2_2", ["relu1_2", "relu2_2"], 1.0, 1e-3, 1e-6)
    spec = transformer.style_spec((4, 6, 8), 1)
    params = transformer.init_params(spec, seed=0)
    batch = Batches(str(tmp_path / "data"), 32, 2, seed=0).make(0)
    step = lambda p, b: train.network_step(p, spec, "instance", {}, b, loss)  # noqa: E731
    first, _ = step(dict(params), batch)
    params, _, history = train.fit(params, step, [batch] * 40, 40, lr=1e-2, progress=False)
    totals = [h["total"] for h in history]
    assert np.mean(totals[-5:]) < 0.8 * first["total"], (first["total"], totals)


def test_the_phase_penalty_adds_its_term_and_gradient(synthetic_vgg, rng):
    """(J6) with lambda_P: the loss grows by lambda_P (PH1) and its gradient by lambda_P (PH2), the
    rest unchanged."""
    from numstyle import losses, train, weights
    path, _ = synthetic_vgg("vgg16")
    vgg = weights.load_vgg(path, "vgg16")
    style = rng.uniform(0, 255, (1, 3, 24, 24)).astype(np.float32)
    y_hat = rng.uniform(0, 255, (2, 3, 16, 20)).astype(np.float32)
    y = rng.uniform(0, 255, (2, 3, 16, 20)).astype(np.float32)
    plain = train.PerceptualLoss(vgg, style, "relu2_2", ["relu1_2", "relu2_2"], 1.0, 1e-3, 1e-6,
                                 phase_weight=0.0)
    with_phase = train.PerceptualLoss(vgg, style, "relu2_2", ["relu1_2", "relu2_2"], 1.0, 1e-3,
                                      1e-6, phase_weight=50.0)
    (parts0, dy0), (parts1, dy1) = plain(y_hat, y), with_phase(y_hat, y)
    want, dwant = losses.phase_loss(y_hat.astype(np.float64))
    assert parts0["phase"] == 0.0 and np.isclose(parts1["phase"], 50.0 * want, rtol=1e-5)
    assert np.isclose(parts1["total"] - parts0["total"], parts1["phase"], rtol=1e-4)
    np.testing.assert_allclose(dy1 - dy0, 50.0 * dwant, rtol=1e-3, atol=1e-9 * np.abs(dy0).max())


def test_the_phase_penalty_removes_a_grid():
    """Gradient descent on (PH1) alone takes a period-4 pattern out of an image and leaves the rest:
    (PH2) moves each pixel by its phase's deviation only."""
    from numstyle import losses, metrics
    rng = np.random.default_rng(0)
    photo = rng.uniform(60, 200, (1, 3, 64, 64))
    grid = np.tile(rng.normal(0, 6, (1, 3, 4, 4)), (1, 1, 16, 16))
    x = photo + grid
    rgb = lambda a: a[0].transpose(1, 2, 0)  # noqa: E731
    assert metrics.checkerboard(rgb(x)) > 3.0
    for _ in range(20):
        _, dx = losses.phase_loss(x)
        # a step of 1/2 the deviation (PH2): (m - m̄) halves each time
        x = x - 0.25 * 64 * 64 * 3 * dx
    assert metrics.checkerboard(rgb(x)) < 1e-3 * metrics.checkerboard(rgb(photo + grid))
    change = (x - photo - grid).reshape(1, 3, 16, 4, 16, 4)   # (N, C, H/4, 4, W/4, 4)
    assert change.std(axis=(2, 4)).max() < 1e-9    # one shift per phase: nothing else moved


def test_resume_gives_identical_parameters(tmp_path, synthetic_vgg, style_and_data, capsys):
    path, _ = synthetic_vgg("vgg16")
    straight = str(tmp_path / "straight.h5")
    assert main(_train_args(tmp_path, path, style_and_data, "--iters", "4", "--out", straight)) == 0
    halves = str(tmp_path / "halves.h5")
    assert main(_train_args(tmp_path, path, style_and_data, "--iters", "2",
                            "--checkpoint-every", "2", "--out", halves)) == 0
    ckpt = str(tmp_path / "halves.ckpt.h5")
    assert main(_train_args(tmp_path, path, style_and_data, "--iters", "4", "--resume", ckpt,
                            "--out", halves)) == 0
    a, config, _ = models.load_model(straight)
    b, _, _ = models.load_model(halves)
    assert config["kind"] == "style" and config["width"] == [4, 6, 8]
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_stylize_odd_sizes_gifs_and_bad_model_files(tmp_path, synthetic_vgg, style_and_data, capsys,
                                                    rng):
    path, _ = synthetic_vgg("vgg16")
    model = str(tmp_path / "m.h5")
    assert main(_train_args(tmp_path, path, style_and_data, "--iters", "1", "--out", model,
                            "--half")) == 0
    photo = str(tmp_path / "odd.png")
    Image.fromarray(rng.integers(0, 256, (97, 131, 3), dtype=np.uint8)).save(photo)
    gif = str(tmp_path / "anim.gif")
    frames = [Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)) for _ in range(3)]
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=50, loop=0)
    out = tmp_path / "styled"
    assert main(["stylize", "--model", model, photo, gif, "--out", str(out), "--no-progress"]) == 0
    with Image.open(out / "odd_m_stylized.png") as im:
        assert im.size == (131, 97)
    with Image.open(out / "anim_m_stylized.gif") as im:
        assert im.n_frames == 3 and im.size == (30, 20)
    capsys.readouterr()
    truncated = str(tmp_path / "truncated.h5")
    with open(model, "rb") as f, open(truncated, "wb") as g:
        g.write(f.read(2000))
    assert os.path.exists(tmp_path / "m.ckpt.h5")
    for bad, needle in [(truncated, "cannot read model file"),
                        (str(tmp_path / "nope.h5"), "model not found"),
                        (str(tmp_path / "m.ckpt.h5"), "is a training checkpoint")]:
        assert main(["stylize", "--model", bad, photo, "--out", str(out)]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and needle in err[0], err


def test_a_gatys_weight_file_is_not_a_model(tmp_path, synthetic_vgg, capsys, rng):
    path, _ = synthetic_vgg("vgg16")
    photo = str(tmp_path / "p.png")
    Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(photo)
    assert main(["stylize", "--model", path, photo]) == 1
    assert "not a numstyle model file" in capsys.readouterr().err


def test_model_file_records_architecture_and_rejects_mismatch(tmp_path):
    spec = transformer.style_spec((4, 6, 8), 1)
    params = transformer.init_params(spec)
    config = {"kind": "style", "norm": "instance", "width": [4, 6, 8], "n_res": 1}
    path = str(tmp_path / "m.h5")
    models.save_model(path, params, config)
    with h5py.File(path, "a") as f:
        del f["params/c2.w"]
        f["params"].create_dataset("c2.w", data=np.zeros((6, 4, 5, 5), np.float32))
    from numstyle.errors import ModelError
    with pytest.raises(ModelError, match=r"parameter c2.w is \(6, 4, 5, 5\)"):
        models.load_model(path)
    with pytest.raises(ModelError, match="super-resolution model is needed"):
        models.save_model(path, params, config)
        models.load_model(path, expect="sr")


def test_resume_with_other_settings_is_refused(tmp_path, synthetic_vgg, style_and_data, capsys):
    path, _ = synthetic_vgg("vgg16")
    out = str(tmp_path / "m.h5")
    assert main(_train_args(tmp_path, path, style_and_data, "--iters", "1", "--out", out,
                            "--upsample", "transposed")) == 0       # not the default (nearest)
    capsys.readouterr()
    ckpt = str(tmp_path / "m.ckpt.h5")
    assert main(_train_args(tmp_path, path, style_and_data, "--iters", "2", "--resume", ckpt,
                            "--seed", "9", "--out", out, "--upsample", "transposed")) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--seed 0, not 9" in err[0], err
    assert main(_train_args(tmp_path, path, style_and_data, "--iters", "2", "--resume", ckpt,
                            "--phase-weight", "10", "--out", out, "--upsample", "transposed")) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--phase-weight 10000.0, not 10.0" in err[0], err
    # a run begun under the older default (transposed) is told the flag to add
    assert main(_train_args(tmp_path, path, style_and_data, "--iters", "2", "--resume", ckpt,
                            "--out", out)) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has upsample transposed, not nearest: pass the same flags" in err[0]


def test_nearest_upsampling_trains_saves_and_stylizes(tmp_path, synthetic_vgg, style_and_data,
                                                      capsys, rng):
    path, _ = synthetic_vgg("vgg16")
    model = str(tmp_path / "nearest.h5")
    assert main(_train_args(tmp_path, path, style_and_data, "--iters", "2", "--upsample", "nearest",
                            "--out", model)) == 0
    params, config, _ = models.load_model(model)
    # a plain conv: (out, in)
    assert config["upsample"] == "nearest" and params["u1.w"].shape == (6, 8, 3, 3)
    photo = str(tmp_path / "p.png")
    Image.fromarray(rng.integers(0, 256, (37, 50, 3), dtype=np.uint8)).save(photo)
    out = str(tmp_path / "p_out.png")
    assert main(["stylize", "--model", model, photo, "--out", out, "--no-progress"]) == 0
    with Image.open(out) as im:
        assert im.size == (50, 37)


def test_a_run_from_before_the_phase_penalty_resumes_as_weight_zero():
    """Checkpoints written before --phase-weight existed carry no such setting: they were trained
    without the term, so they resume with --phase-weight 0 and are refused the new default."""
    from numstyle.commands.johnson import check_resume
    from numstyle.errors import NumstyleError
    old = {"kind": "style", "style_sha256": "s", "upsample": "nearest",
           "settings": {"size": 128, "seed": 0}}
    now = dict(old, settings={"size": 128, "seed": 0, "phase_weight": 0.0})
    check_resume("old.ckpt.h5", old, now)
    with pytest.raises(NumstyleError, match="--phase-weight 0.0, not 10000.0"):
        check_resume("old.ckpt.h5", old, dict(old, settings={"size": 128, "seed": 0,
                                                             "phase_weight": 1e4}))
