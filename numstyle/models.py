"""Trained networks and training checkpoints as HDF5 files, written atomically.

A model file records its architecture and settings, so stylising needs
nothing else:

- attributes ``format`` (``numstyle-model``), ``version``, ``config`` (JSON:
  ``kind`` style|sr, ``norm``, ``width``, ``n_res``, ``scale``, ``upsample``, training
  settings, the style image's sha256);
- group ``params``: one dataset per parameter (float32 or float16);
- group ``state``: batch norm running means and variances.

A checkpoint adds the Adam state of every parameter, the iteration and the
seed (which, with the iteration, fixes every random choice of the data
pipeline) -- everything ``--resume`` needs to continue exactly.
"""
import json
import os
import sys

import numpy as np

from .backend import to_host
from .errors import ModelError
from .files import atomic_path
from .transformer import init_params, sr_spec, style_spec

FORMAT, CHECKPOINT_FORMAT, VERSION = "numstyle-model", "numstyle-checkpoint", 1
CONFIG_DEFAULTS = {"upsample": "transposed"}  # what files written before a config key existed used


def _shipped_dir():
    """The shipped models' folder.

    ``weights/`` of the source tree (a checkout, ``pip install -e``), else where
    ``pip install .`` puts them (setup.cfg's data_files: ``<prefix>/share/numstyle/weights``).
    """
    source = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "weights")
    installed = os.path.join(sys.prefix, "share", "numstyle", "weights")
    return source if os.path.isdir(source) or not os.path.isdir(installed) else installed


BUILTIN_DIR = _shipped_dir()


def spec_from_config(config):
    """The layer list a config describes."""
    upsample = config.get("upsample", CONFIG_DEFAULTS["upsample"])
    if config["kind"] == "style":
        return style_spec(tuple(config["width"]), config["n_res"], upsample)
    return sr_spec(config["scale"], config["width"], config["n_res"], upsample)


def save_model(path, params, config, state=None, half=False):
    """Write a model file atomically; ``half`` stores parameters as float16."""
    def write(f):
        f.attrs["format"], f.attrs["version"], f.attrs["config"] = FORMAT, VERSION, json.dumps(
            config)
        _write_arrays(f.create_group("params"), params, np.float16 if half else np.float32)
        _write_state(f.create_group("state"), state or {})
    _atomic_h5(path, write)


def load_model(path, expect=None):
    """Read a model file: ``(params float32, config, state)``.

    One-line :class:`ModelError` otherwise. ``expect`` ('style' or 'sr') rejects a model of the
    other kind.
    """
    path = resolve_model_path(path)
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") == CHECKPOINT_FORMAT:
                raise ModelError(
                    f"{path} is a training checkpoint; pass it to --resume, or use the model "
                    "file that training wrote with --out")
            if f.attrs.get("format") != FORMAT:
                raise ModelError(
                    f"{path} is not a numstyle model file (no format={FORMAT!r} attribute)")
            config = json.loads(f.attrs["config"])
            params = {k: np.asarray(v, dtype=np.float32) for k, v in f["params"].items()}
            state = _read_state(f["state"])
    except (OSError, KeyError, ValueError) as e:
        raise ModelError(
            f"cannot read model file {path}: {_short(e)} (truncated or not HDF5?)") from None
    if expect and config.get("kind") != expect:
        names = {"style": "a style transfer model", "sr": "a super-resolution model"}
        raise ModelError(f"{path} is {names.get(config.get('kind'), 'another kind of model')}, "
                         f"but {names[expect]} is needed here")
    _check_params(path, params, config)
    return params, config, state


def resolve_model_path(name):
    """A path, or the name of a model shipped in ``weights/`` (``candy`` -> weights/candy.h5)."""
    if os.path.isfile(name):
        return name
    for candidate in (os.path.join(BUILTIN_DIR, name), os.path.join(BUILTIN_DIR, name + ".h5")):
        if os.path.isfile(candidate):
            return candidate
    shipped = shipped_models()
    raise ModelError(f"model not found: {name}" +
                     (f" (shipped models: {', '.join(shipped)})" if shipped else ""))


def shipped_models(kind=None):
    """Names of the models in ``weights/`` (``kind``: only 'style' or 'sr' ones, told by name)."""
    names = sorted(f[:-3] for f in os.listdir(BUILTIN_DIR)
                   if f.endswith(".h5")) if os.path.isdir(BUILTIN_DIR) else []
    return [n for n in names if kind is None or n.startswith("sr_") == (kind == "sr")]


def save_checkpoint(path, params, adam, iteration, config, state=None):
    """Write a training checkpoint atomically (parameters, Adam state, iteration, settings)."""
    def write(f):
        f.attrs["format"], f.attrs["version"], f.attrs[
            "config"] = CHECKPOINT_FORMAT, VERSION, json.dumps(config)
        f.attrs["iteration"] = iteration
        _write_arrays(f.create_group("params"), params, np.float32)
        _write_state(f.create_group("state"), state or {})
        g = f.create_group("adam")
        for key, st in adam.items():
            sub = g.create_group(key)
            sub.attrs["t"] = st.get("t", 0)
            if "m" in st:
                sub.create_dataset("m", data=np.asarray(_host(st["m"])))
                sub.create_dataset("v", data=np.asarray(_host(st["v"])))
    _atomic_h5(path, write)


def load_checkpoint(path):
    """``{'params', 'adam', 'iteration', 'config', 'state'}`` from a checkpoint; one-line error
    otherwise."""
    import h5py

    if not os.path.isfile(path):
        raise ModelError(f"checkpoint not found: {path}")
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != CHECKPOINT_FORMAT:
                raise ModelError(f"{path} is not a numstyle training checkpoint")
            adam = {}
            for key, sub in f["adam"].items():
                adam[key] = {"t": int(sub.attrs["t"])}
                if "m" in sub:
                    adam[key].update(m=np.asarray(sub["m"]), v=np.asarray(sub["v"]))
            return {"params": {k: np.asarray(v) for k, v in f["params"].items()}, "adam": adam,
                    "iteration": int(f.attrs["iteration"]), "config": json.loads(f.attrs["config"]),
                    "state": _read_state(f["state"])}
    except (OSError, KeyError, ValueError) as e:
        raise ModelError(
            f"cannot read checkpoint {path}: {_short(e)} (truncated or not HDF5?)") from None


def _check_params(path, params, config):

    try:
        expected = init_params(spec_from_config(config))
    except (KeyError, TypeError, ValueError) as e:
        raise ModelError(f"{path}: its config does not describe a network ({_short(e)})") from None
    for key, value in expected.items():
        if key not in params or params[key].shape != value.shape:
            got = params[key].shape if key in params else "missing"
            raise ModelError(
                f"{path}: parameter {key} is {got}, the recorded architecture needs {value.shape}")


def _write_arrays(group, arrays, dtype):
    for key, value in arrays.items():
        group.create_dataset(key, data=np.asarray(_host(value), dtype=dtype))


def _write_state(group, state):
    for name, stats in state.items():
        for stat, value in stats.items():
            group.create_dataset(f"{name}/{stat}", data=np.asarray(_host(value), dtype=np.float32))


def _read_state(group):
    return {name: {stat: np.asarray(v) for stat, v in sub.items()} for name, sub in group.items()}


def _atomic_h5(path, write):
    """Write through a temporary file in the same folder, then rename: never a half-written file."""
    import h5py

    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        write(f)


def _host(x):
    return to_host(x)


def _short(e):
    return str(e).splitlines()[0][:160] if str(e) else type(e).__name__
