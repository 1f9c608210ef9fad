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

import h5py
import numpy as np

from . import styles
from .backend import to_host
from .data import search_dirs
from .errors import ModelError, os_reason
from .files import atomic_path, check_input
from .transformer import init_params, init_state, sr_spec, style_spec

FORMAT, CHECKPOINT_FORMAT, VERSION = "numstyle-model", "numstyle-checkpoint", 1
CONFIG_DEFAULTS = {"upsample": "transposed"}  # what files written before a config key existed used
# ... and what runs used before a training setting existed
SETTING_DEFAULTS = {"phase_weight": 0.0, "block_weight": 0.0, "pixel_weight": 0.0, "pool": "max"}


def setting(settings, key):
    """A training setting ``key`` of a config's ``settings``, or what runs used before it
    existed."""
    return settings.get(key, SETTING_DEFAULTS.get(key))


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
    """Read a model file: ``(params float32, config, state)``, checked by :func:`validate`.

    One-line :class:`ModelError` otherwise. ``expect`` ('style' or 'sr') rejects a model of the
    other kind.
    """
    path = resolve_model_path(path, expect)
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") == CHECKPOINT_FORMAT:
                raise ModelError(
                    f"{path} is a training checkpoint; pass it to --resume, or use the model "
                    "file that training wrote with --out")
            if f.attrs.get("format") != FORMAT:
                raise ModelError(
                    f"{path} is not a numstyle model file (no format={FORMAT!r} attribute)")
            config = _read_config(f)
            params = _read_numbers(path, f["params"], "parameter")
            state = _read_state(path, f["state"])
    except (OSError, KeyError, ValueError, TypeError) as e:
        raise ModelError(
            f"cannot read model file {path}: {_short(e)} (truncated or not HDF5?)") from None
    validate(path, params, config, state)
    if expect and config.get("kind") != expect:
        names = {"style": "a style transfer model", "sr": "a super-resolution model"}
        raise ModelError(f"{path} is {names.get(config.get('kind'), 'another kind of model')}, "
                         f"but {names[expect]} is needed here")
    return params, config, state


def load_any(path, expect=None):
    """A model file or a checkpoint, as ``{'params', 'config', 'state', 'adam', 'iteration'}``
    (``adam`` None and ``iteration`` 0 for a model file): what ``--add-style`` starts from."""
    path = resolve_model_path(path, expect)
    try:
        with h5py.File(path, "r") as f:
            checkpoint = f.attrs.get("format") == CHECKPOINT_FORMAT
    except OSError as e:
        raise ModelError(f"cannot read model file {path}: {_short(e)} (not HDF5?)") from None
    if checkpoint:
        found = load_checkpoint(path)
        if expect and found["config"].get("kind") != expect:
            raise ModelError(f"{path} is not a checkpoint of a {expect} network")
        return found
    params, config, state = load_model(path, expect)
    return {"params": params, "config": config, "state": state, "adam": None, "iteration": 0}


def model_dirs():
    """The folders a model's name is looked up in, in order: the shipped ``weights/``, then the
    user's model folders ``$NUMSTYLE_DATA/models`` and ``~/.cache/numstyle/models``."""
    return [BUILTIN_DIR] + search_dirs("models")


def resolve_model_path(name, kind=None):
    """A path, or the name of a model in :func:`model_dirs` (``candy`` -> weights/candy.h5);
    ``kind`` ('style' or 'sr'): which shipped models a "not found" names."""
    if os.path.exists(name) and not os.path.isdir(name):
        check_input(name, "model file", ModelError)  # a FIFO, a device, no read permission
        return name
    for folder in model_dirs():
        for candidate in (os.path.join(folder, name), os.path.join(folder, name + ".h5")):
            if os.path.isfile(candidate):
                return candidate
    shipped = shipped_models(kind)
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
    """``{'params', 'adam', 'iteration', 'config', 'state'}`` from a checkpoint, checked by
    :func:`validate`; one-line error otherwise."""
    check_input(path, "checkpoint", ModelError)
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != CHECKPOINT_FORMAT:
                raise ModelError(f"{path} is not a numstyle training checkpoint")
            adam = {}
            for key, sub in f["adam"].items():
                adam[key] = {"t": _whole_number(path, sub.attrs["t"], f"Adam step count of {key}")}
                if "m" in sub:
                    moments = _read_numbers(path, sub, f"Adam moment of {key}:")
                    adam[key].update(m=moments["m"], v=moments["v"])
            ckpt = {"params": _read_numbers(path, f["params"], "parameter"), "adam": adam,
                    "iteration": _whole_number(path, f.attrs["iteration"], "iteration"),
                    "config": _read_config(f), "state": _read_state(path, f["state"])}
    except (OSError, KeyError, ValueError, TypeError) as e:
        raise ModelError(
            f"cannot read checkpoint {path}: {_short(e)} (truncated or not HDF5?)") from None
    validate(path, ckpt["params"], ckpt["config"], ckpt["state"], ckpt["adam"])
    return ckpt


def validate(path, params, config, state=None, adam=None):
    """The one check of everything read from a model file or a checkpoint; ModelError otherwise.

    ``config`` is a JSON object that describes a network (its ``settings``, if any, an object
    too); ``params`` holds exactly that network's parameters, each of the shape it needs and
    finite (a NaN parameter would write a black image without a word); ``state`` (batch norm
    statistics) has the norm layers' shapes, finite, variances not negative; ``adam`` (a
    checkpoint's) belongs to parameters of the network, with moments of their shapes, finite,
    second moments not negative, and a step count >= 1 beside moments (Adam's bias correction
    divides by ``1 - beta^t``). Negative or non-integer iterations and step counts are refused
    as they are read.
    """
    if not isinstance(config, dict):
        raise ModelError(f"{path}: its config is a JSON {type(config).__name__}, not an object "
                         "(a damaged file, or not numstyle's)")
    if not isinstance(config.get("settings", {}), dict):
        raise ModelError(f"{path}: its config's settings are not a JSON object")
    try:
        expected = init_params(spec_from_config(config), styles=styles.count(config))
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        raise ModelError(f"{path}: its config does not describe a network ({_short(e)})") from None
    for key, value in expected.items():
        if key not in params or params[key].shape != value.shape:
            got = params[key].shape if key in params else "missing"
            raise ModelError(
                f"{path}: parameter {key} is {got}, the recorded architecture needs {value.shape}")
    for key in params:
        if key not in expected:
            raise ModelError(f"{path}: parameter {key} is not part of the recorded architecture")
    _check_finite(path, params, "parameter")
    norms = init_state(expected, config.get("norm"))
    for name, stats in (state or {}).items():
        for stat, value in stats.items():
            if stat not in norms.get(name, {}):
                raise ModelError(f"{path}: normalisation statistic {name}/{stat} is not part of "
                                 "the recorded architecture")
            if value.shape != norms[name][stat].shape:
                raise ModelError(f"{path}: normalisation statistic {name}/{stat} is "
                                 f"{value.shape}, the architecture needs {norms[name][stat].shape}")
        _check_finite(path, {f"{name}/{k}": v for k, v in stats.items()}, "normalisation statistic")
        if "var" in stats and (stats["var"] < 0).any():
            raise ModelError(f"{path}: normalisation statistic {name}/var has negative variances")
    for key, st in (adam or {}).items():
        if key not in expected:
            raise ModelError(f"{path}: Adam state for {key}, not a parameter of the network")
        if "m" not in st:
            continue
        for moment in ("m", "v"):
            if st[moment].shape != expected[key].shape:
                raise ModelError(f"{path}: Adam moment {moment} of {key} is {st[moment].shape}, "
                                 f"the parameter is {expected[key].shape}")
        _check_finite(path, {f"{key} ({m})": st[m] for m in ("m", "v")}, "Adam moment")
        if (st["v"] < 0).any() or st["t"] < 1:
            raise ModelError(f"{path}: Adam state of {key} is impossible (negative second "
                             "moments, or moments without a step)")


def _check_finite(path, arrays, what):
    for key, value in arrays.items():
        if not np.isfinite(value).all():
            raise ModelError(f"{path}: {what} {key} holds NaN or infinite values (a damaged "
                             "file, or a training that diverged)")


def _read_config(f):
    """The ``config`` attribute, parsed (that it is an object is :func:`validate`'s check)."""
    text = f.attrs["config"]
    return json.loads(text.decode() if isinstance(text, bytes) else str(text))


def _read_numbers(path, group, what):
    """``{name: float32 array}`` of a group's datasets; ModelError for anything but numbers."""
    arrays = {}
    for key, value in group.items():
        if not isinstance(value, h5py.Dataset) or value.dtype.kind not in "biuf":
            raise ModelError(f"{path}: {what} {key} is not an array of numbers")
        arrays[key] = np.asarray(value, dtype=np.float32)
    return arrays


def _whole_number(path, value, what):
    """An attribute that must be an integer >= 0 (an iteration, an Adam step count)."""
    number = np.asarray(value)
    if number.shape != () or number.dtype.kind not in "iu" or int(number) < 0:
        raise ModelError(f"{path}: its {what} is {value!r}, not a whole number >= 0")
    return int(number)


def _write_arrays(group, arrays, dtype):
    for key, value in arrays.items():
        group.create_dataset(key, data=np.asarray(_host(value), dtype=dtype))


def _write_state(group, state):
    for name, stats in state.items():
        for stat, value in stats.items():
            group.create_dataset(f"{name}/{stat}", data=np.asarray(_host(value), dtype=np.float32))


def _read_state(path, group):
    state = {}
    for name, sub in group.items():
        if not isinstance(sub, h5py.Group):
            raise ModelError(f"{path}: normalisation statistics {name} are not a group")
        state[name] = _read_numbers(path, sub, f"normalisation statistic {name}/")
    return state


def _atomic_h5(path, write):
    """Write through a temporary file in the same folder, then rename: never a half-written file."""
    try:
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
            write(f)
    except OSError as e:  # a full disk: HDF5 says so in several lines, of the temporary's name
        raise ModelError(f"cannot write {path}: {os_reason(e)}") from None


def _host(x):
    return to_host(x)


def _short(e):
    return str(e).splitlines()[0][:160] if str(e) else type(e).__name__
