"""The Keras notop loader: layout, shapes, model detection, search order."""
import h5py
import numpy as np
import pytest

from numstyle import vgg, weights
from numstyle.errors import LayerError, WeightsError

from conftest import real_vgg16_path


@pytest.mark.parametrize("model", ["vgg16", "vgg19"])
def test_loader_round_trips_a_synthetic_keras_file(model, synthetic_vgg):
    path, params = synthetic_vgg(model)
    assert weights.infer_model(path) == model
    loaded = weights.load_vgg(path, model)
    assert list(loaded) == vgg.conv_names(model)
    for name, (w, b) in params.items():
        np.testing.assert_array_equal(loaded[name][0], w, err_msg=name)
        np.testing.assert_array_equal(loaded[name][1], b, err_msg=name)
        assert loaded[name][0].dtype == np.float32 and loaded[name][0].flags.c_contiguous


@pytest.mark.parametrize("upto,last", [("relu5_1", "conv5_1"), ("pool4", "conv4_3"),
                                       ("conv1_1", "conv1_1")])
def test_loader_reads_only_up_to_the_deepest_layer(synthetic_vgg, upto, last):
    """``upto``: the convolutions a run reaches, the same arrays, nothing after."""
    path, params = synthetic_vgg("vgg16")
    loaded = weights.load_vgg(path, "vgg16", upto=upto)
    names = vgg.conv_names("vgg16")
    assert list(loaded) == names[:names.index(last) + 1]
    for name, (w, b) in loaded.items():
        np.testing.assert_array_equal(w, params[name][0], err_msg=name)


def test_the_deepest_of_a_runs_layers_is_what_it_loads(synthetic_vgg):
    # the trainings' losses (relu2_2 content, relu4_3 style) need nothing past conv4_3; a name
    # that is no layer is a one-line LayerError, not a ValueError from list.index
    assert vgg.deepest("vgg16", ["relu2_2", "relu4_3", "relu1_2"]) == "relu4_3"
    assert vgg.deepest("vgg19", ["pool5", "conv5_4"]) == "pool5"
    path, _ = synthetic_vgg("vgg16")
    with pytest.raises(LayerError, match="relu4_4"):
        vgg.deepest("vgg16", ["relu2_2", "relu4_4"])
    with pytest.raises(LayerError, match="relu9_1"):
        weights.load_vgg(path, "vgg16", upto="relu9_1")


def test_kernel_layout_matches_keras_convolution(synthetic_vgg, rng):
    # Keras computes y[h, w, o] = sum_{i, j, c} x[h+i, w+j, c] K[i, j, c, o]: check conv1_1 by hand
    path, _ = synthetic_vgg("vgg16")
    with h5py.File(path, "r") as f:
        K = f["block1_conv1"]["block1_conv1/kernel:0"][()]
    w, b = weights.load_vgg(path, "vgg16")["conv1_1"]
    x = rng.standard_normal((1, 3, 5, 5)).astype(np.float32)
    from numstyle.fast.conv import conv2d_forward
    ours = conv2d_forward(x, w, b, 1, 0)[0]                 # (1, 64, 3, 3)
    xhwc = x[0].transpose(1, 2, 0)                          # (5, 5, 3): Keras is channels-last
    keras = np.zeros((3, 3, 64), np.float32)
    for h in range(3):
        for v in range(3):
            keras[h, v] = np.einsum("ijc,ijco->o", xhwc[h:h + 3, v:v + 3], K) + b
    np.testing.assert_allclose(ours[0], keras.transpose(2, 0, 1), rtol=1e-4, atol=1e-4)


def test_wrong_model_for_the_file_is_one_clear_error(synthetic_vgg):
    path, _ = synthetic_vgg("vgg16")
    with pytest.raises(WeightsError, match="holds vgg16 weights but --model vgg19"):
        weights.resolve_vgg("vgg19", path)


def test_wrong_kernel_shape_is_reported(tmp_path):
    params = vgg.random_params("vgg16")
    w, b = params["conv3_2"]
    params["conv3_2"] = (w[:, :128], b)
    path = str(tmp_path / "bad.h5")
    weights.save_keras_notop(path, params, "vgg16")
    with pytest.raises(WeightsError, match=r"block3_conv2 has kernel \(3, 3, 128, 256\)"):
        weights.load_vgg(path, "vgg16")


def test_not_a_keras_file_and_not_hdf5(tmp_path):
    other = str(tmp_path / "other.h5")
    with h5py.File(other, "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    with pytest.raises(WeightsError, match="not a Keras weight file"):
        weights.resolve_vgg(None, other)
    text = tmp_path / "text.h5"
    text.write_text("hello")
    with pytest.raises(WeightsError, match="cannot read weight file"):
        weights.resolve_vgg(None, str(text))


def test_search_falls_back_to_vgg16_in_one_line(tmp_path, monkeypatch, synthetic_vgg, capsys):
    path, _ = synthetic_vgg("vgg16")
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "vgg16_imagenet_notop.h5").symlink_to(path)
    monkeypatch.setenv("NUMSTYLE_DATA", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    said = []
    model, found = weights.resolve_vgg(None, None, log=said.append)
    assert model == "vgg16" and found.endswith("vgg16_imagenet_notop.h5")
    assert len(said) == 1 and "using VGG16" in said[0]
    weights.resolve_vgg()                      # by default a warning on stderr; stdout untouched
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("numstyle: warning: VGG19 weights not found"), (out, err)


def test_no_weights_anywhere_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMSTYLE_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    with pytest.raises(WeightsError) as e:
        weights.resolve_vgg(None, None)
    msg = str(e.value)
    assert "\n" not in msg and str(tmp_path / "data" / "weights") in msg and "--weights" in msg


@pytest.mark.skipif(real_vgg16_path() is None,
                    reason="real VGG16 weights not found (set NUMSTYLE_DATA=../shared)")
def test_real_vgg16_file_loads():
    path = real_vgg16_path()
    assert weights.infer_model(path) == "vgg16"
    params = weights.load_vgg(path, "vgg16")
    assert params["conv5_3"][0].shape == (512, 512, 3, 3)
    assert all(np.isfinite(w).all() for w, _ in params.values())
