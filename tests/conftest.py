import os

import numpy as np
import pytest

from numstyle import backend, models, settings, transformer, vgg, weights

import fakecupy

SHARED = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
TINY_WIDTH = (3, 4, 5, 5, 6)   # channels per block of the tiny VGGs used for gradient checks
REAL_GPU = [pytest.mark.gpu,
            pytest.mark.skipif(not backend.gpu_available(), reason="needs CuPy and a CUDA GPU")]


@pytest.fixture(params=["fakecupy", pytest.param("cupy", marks=REAL_GPU)])
def cp(request, monkeypatch):
    """The device array module for the GPU tests (test_gpu*.py): the stand-in, installed as
    numstyle's CuPy for the test, everywhere; real CuPy, marked ``gpu``, where
    CuPy sees a CUDA GPU."""
    if request.param == "cupy":
        import cupy
        return cupy
    return fakecupy.install(monkeypatch)


@pytest.fixture(autouse=True)
def _settings_from_the_environment():
    """Each test starts with the settings of the environment it runs in (a test that sets a
    NUMSTYLE_* variable calls ``settings.reload()`` itself)."""
    settings.reload()


@pytest.fixture(autouse=True)
def _no_downloads(monkeypatch):
    """Tests never touch the network: a missing file must fail fast with its one-line error."""
    monkeypatch.setenv("NUMSTYLE_NO_DOWNLOAD", "1")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def real_vgg16_path():
    """The real VGG16 weights if NUMSTYLE_DATA (or ../shared) has them, else None."""
    for root in filter(None, [os.environ.get("NUMSTYLE_DATA"), SHARED]):
        p = os.path.join(root, "weights", "vgg16_imagenet_notop.h5")
        if os.path.isfile(p):
            return p
    return None


@pytest.fixture(scope="session")
def synthetic_vgg(tmp_path_factory):
    """``make(model) -> (path, params)``: random weights with the real VGG shapes, written
    in the Keras notop layout (what the loader must accept). Cached per session."""
    made = {}

    def make(model="vgg16"):
        if model not in made:
            params = vgg.random_params(model, seed=7)
            path = tmp_path_factory.mktemp("weights") / f"{model}_synthetic_notop.h5"
            weights.save_keras_notop(str(path), params, model)
            made[model] = (str(path), params)
        return made[model]

    return make


def assert_one_line_error(code, err, *needles):
    """A user error: a non-zero exit and one line on stderr, ``...: error: ...``,
    holding each needle."""
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected a one-line error, got:\n{err}"
    assert "error" in lines[0] and "Traceback" not in err
    for n in needles:
        assert n in lines[0], f"{n!r} not in {lines[0]!r}"


@pytest.fixture
def style_model(tmp_path):
    """A tiny style model file (widths 4, 6, 8; one residual block), random weights."""
    spec = transformer.style_spec((4, 6, 8), 1)
    path = str(tmp_path / "m.h5")
    models.save_model(path, transformer.init_params(spec, seed=3),
                      {"kind": "style", "norm": "instance", "width": [4, 6, 8], "n_res": 1})
    return path
