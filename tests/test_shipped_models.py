"""The models shipped in weights/: each loads, matches the sha256
weights/README.md gives, and runs."""
import hashlib
import os
import re

import numpy as np
import pytest

from numstyle import models, styles
from numstyle.stylize import stylize_array
from numstyle.sr import upscale_array

WEIGHTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "weights")
SHIPPED = sorted(f[:-3] for f in os.listdir(WEIGHTS) if f.endswith(".h5"))
README = open(os.path.join(WEIGHTS, "README.md"), encoding="utf-8").read()


def test_every_readme_row_names_a_shipped_file():
    listed = re.findall(r"^\| `(\w+)` \|", README, flags=re.M)
    assert sorted(listed) == SHIPPED, f"weights/README.md lists {listed}, weights/ has {SHIPPED}"


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_matches_its_readme_hash_and_runs(name, rng):
    path = os.path.join(WEIGHTS, name + ".h5")
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    row = next((line for line in README.splitlines() if line.startswith(f"| `{name}` |")), "")
    assert digest in row, f"{name}.h5 has sha256 {digest}, not the one in weights/README.md"
    # by name, as `--model NAME` does
    params, config, state = models.load_model(name)
    rgb = rng.uniform(0, 255, (37, 50, 3)).astype(np.float32)         # odd sizes
    if config["kind"] == "style":
        params, config = styles.plain_network(params, config)          # several styles: the first
        out = stylize_array(params, config, state, rgb)
        assert out.shape == rgb.shape
    else:
        out = upscale_array(params, config, state, rgb)
        assert out.shape == (37 * config["scale"], 50 * config["scale"], 3)
    assert np.isfinite(out).all() and out.min() >= -1 and out.max() <= 256, (out.min(), out.max())


def test_shipped_models_are_found_after_a_plain_pip_install(tmp_path, monkeypatch):
    """From a source tree (checkout, ``pip install -e``) weights/ is beside the package;
    ``pip install .`` puts the models in <prefix>/share/numstyle/weights (setup.cfg's data_files),
    found there instead."""
    import sys

    assert models._shipped_dir() == WEIGHTS
    installed = tmp_path / "share" / "numstyle" / "weights"
    installed.mkdir(parents=True)
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    monkeypatch.setattr(models.os.path, "isdir", lambda p: p == str(installed))   # no source tree
    assert models._shipped_dir() == str(installed)
    setup = open(os.path.join(os.path.dirname(WEIGHTS), "setup.cfg")).read()
    assert "share/numstyle/weights = weights/*.h5" in setup
