r"""The styles of a conditional network (Dumoulin et al. 2017): names, weights, blends.

A conditional style network keeps one ``gamma``, ``beta`` pair (S, C) per style in every
normalisation layer and shares everything else
(:class:`~numstyle.transformer_layers.ConditionalNorm`, (N4)-(N5)). Its config lists the
styles in order, ``"styles": [{"name": ..., "file": ..., "sha256": ...}, ...]``. Stylising
picks one style, or blends several by mixing their pairs (N4) -- a new style, not a
cross-fade of two pictures -- and the result is a plain network of one pair per layer
(:func:`apply_mix`).
"""
import hashlib
import os

import numpy as np

from .errors import NumstyleError
from .files import check_input


def count(config):
    """Styles of a conditional network's config; 0 for a network of one style (pairs (C,)).

    Raises ValueError when ``styles`` is there but not a non-empty list of objects with a name.
    """
    styles = config.get("styles")
    if styles is None:
        return 0
    if (not isinstance(styles, list) or not styles
            or not all(isinstance(s, dict) and isinstance(s.get("name"), str) for s in styles)):
        raise ValueError("its styles are not a list of objects with a name")
    return len(styles)


def names(config):
    """The style names a style network applies, in order (an SR network's: none)."""
    if count(config):
        return [s["name"] for s in config["styles"]]
    if config.get("kind") == "style" and config.get("style"):
        return [os.path.splitext(str(config["style"]))[0]]
    return []


def style_entry(path):
    """The config entry of one style image: its name (the file's stem), file name and sha256.
    Only a readable regular file is opened (:func:`numstyle.files.check_input`)."""
    check_input(path, "style image")
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    base = os.path.basename(path)
    return {"name": os.path.splitext(base)[0], "file": base, "sha256": digest}


def one_hot(index, n, dtype=np.float32):
    """The weights (S,) that pick style ``index`` of ``n``."""
    mix = np.zeros(n, dtype)
    mix[index] = 1
    return mix


def parse_mix(text, style_names):
    """``--style`` of ``stylize``: ``I`` (an index or a name) or ``I:w,J:w,...`` -> weights (S,).

    The weights are made to sum to 1 (``a:1,b:1`` is an even blend). One-line
    :class:`NumstyleError` for an unknown style, a bad weight or weights that sum to 0.
    """
    n = len(style_names)
    mix = np.zeros(n, np.float64)
    for part in str(text).split(","):
        key, sep, weight = part.strip().partition(":")
        index = _style_index(key.strip(), style_names)
        try:
            w = float(weight) if sep else 1.0
        except ValueError:
            raise NumstyleError(f"--style {text}: {weight!r} is not a weight") from None
        if not np.isfinite(w) or w < 0:
            raise NumstyleError(f"--style {text}: weights must be finite and >= 0, got {weight}")
        mix[index] += w
    if mix.sum() <= 0:
        raise NumstyleError(f"--style {text}: the weights sum to 0")
    return (mix / mix.sum()).astype(np.float32)


def _style_index(key, style_names):
    listed = ", ".join(f"{i}:{name}" for i, name in enumerate(style_names))
    if key.isdigit() and int(key) < len(style_names):
        return int(key)
    if key in style_names:
        return style_names.index(key)
    raise NumstyleError(f"--style {key}: the model's styles are {listed}")


def apply_mix(params, config, mix):
    """A conditional network's parameters and config as a plain network of the blend ``mix`` (N4).

    Returns ``(params, config)``: every ``gamma``, ``beta`` (S, C) replaced by
    ``mix @ gamma`` (C,), the config without ``styles`` (``style`` names the blend).
    """
    mix, config_styles = np.asarray(mix, np.float32), config["styles"]
    plain = {k: (mix @ v).astype(np.float32) if v.ndim == 2 else v for k, v in params.items()}
    picked = [(s, w) for s, w in zip(config_styles, mix) if w]
    used = [f"{s['name']}:{w:.3g}" if w != 1 else s["name"] for s, w in picked]
    config = {k: v for k, v in config.items() if k != "styles"} | {"style": ",".join(used)}
    if len(picked) == 1:                      # one style (weights sum to 1): its image's sha256
        config["style_sha256"] = picked[0][0].get("sha256")
    weights = config.get("settings", {}).get("style_weight")
    if isinstance(weights, list) and len(weights) == len(mix):   # one per style: the blend's
        config["settings"] = dict(config["settings"], style_weight=float(np.dot(mix, weights)))
    return plain, config


def plain_network(params, config, style=None):
    """``(params, config)`` of a plain network: a network of several styles made the network of
    ``style`` -- an index, a name or a blend ``I:w,J:w`` as ``stylize --style`` takes it, default
    the first -- by :func:`apply_mix`; a network of one style as it is, and ``style`` refused."""
    if count(config):
        choice = "0" if style is None else str(style)
        return apply_mix(params, config, parse_mix(choice, names(config)))
    if style is not None:
        raise NumstyleError(f"this {config['kind']} network holds one style: there is no style "
                            f"{style} to choose")
    return params, config


def add_row(params):
    """Every norm's pairs with one more style, started at the mean of the others' (a network of
    one style, pairs (C,), becomes one of two, (2, C)); the other parameters unchanged."""
    def grown(v):
        rows = v if v.ndim == 2 else v[None]
        return np.concatenate([rows, rows.mean(axis=0, keepdims=True)]).astype(np.float32)

    return {k: grown(v) if k.endswith((".gamma", ".beta")) else v for k, v in params.items()}
