"""Find, download, verify and load VGG weights (Keras "notop" HDF5 files).

This is the one place where weight files are read and checked. The Keras
layout: the root attribute ``layer_names`` lists groups such as
``block1_conv1``; each group's ``weight_names`` attribute lists its datasets
``block1_conv1/kernel:0`` (3, 3, in, out) and ``block1_conv1/bias:0`` (out,).
Kernels are transposed to our (out, in, 3, 3). Keras convolutions are
cross-correlations, like ours, so no kernel flip is needed.

Search order for a model's file: an explicit path, ``$NUMSTYLE_DATA/weights``,
the user cache (``~/.cache/numstyle``), Keras' cache (``~/.keras/models``);
only then a download (with a progress bar and an md5 check) into the cache.
"""
import os

import h5py
import numpy as np

from .data import cache_dir, fetch, find_local, search_dirs
from .errors import NumstyleError, WeightsError, warn
from .files import atomic_path, check_input
from .vgg import BLOCKS, conv_shapes

_KERAS = "https://github.com/fchollet/deep-learning-models/releases/download/v0.1/"
VGG_FILES = {
    "vgg19": {
        "names": ["vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5", "vgg19_imagenet_notop.h5"],
        "md5": "253f8cb515780f3b799900260a226db6"
    },
    "vgg16": {
        "names": ["vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5", "vgg16_imagenet_notop.h5"],
        "md5": "6d6bbae143d832006294945121d1f1fc"
    },
}


def find_vgg(model):
    """Path of a local weight file for ``model``, or None."""
    return find_local("weights", VGG_FILES[model]["names"])


def resolve_vgg(model=None, path=None, log=warn):
    """Decide which model and file to use.

    ``model=None`` means "VGG19 as in the paper, else VGG16 when only VGG16 is
    found locally" (said in one line, to ``log``). Returns ``(model, path)``.
    """
    if path is not None:
        check_input(path, "weight file", WeightsError)
        found_model = infer_model(path)
        if model is not None and model != found_model:
            raise WeightsError(
                f"{path} holds {found_model} weights but --model {model} was asked for")
        return found_model, path
    if model is None:
        if find_vgg("vgg19") is None and find_vgg("vgg16") is not None:
            log("VGG19 weights not found, using VGG16 (found locally); "
                "pass --weights or put the VGG19 notop file in $NUMSTYLE_DATA/weights for the "
                "paper's network"
                )
            model = "vgg16"
        else:
            model = "vgg19"
    found = find_vgg(model)
    if found:
        return model, found
    return model, download_vgg(model)


def download_vgg(model):
    """Download the Keras notop file into the cache, md5-checked; one-line error if impossible."""
    name = VGG_FILES[model]["names"][0]
    dest = os.path.join(cache_dir(), "weights", name)
    try:
        return fetch(_KERAS + name, dest, md5=VGG_FILES[model]["md5"], what=f"{model} weights",
                     looked=search_dirs("weights"), hint="pass --weights PATH")
    except NumstyleError as e:
        raise WeightsError(str(e)) from None


def infer_model(path):
    """'vgg16' or 'vgg19' from the number of conv layers in a Keras notop file."""
    names = _layer_names(path)
    n_conv = sum("_conv" in n for n in names)
    for model, blocks in BLOCKS.items():
        if n_conv == sum(blocks):
            return model
    raise WeightsError(
        f"{path}: {n_conv} convolution layers found; a VGG16 notop file has 13, VGG19 16")


def load_vgg(path, model, dtype=np.float32, upto=None):
    """Load conv weights of ``model`` from a Keras notop file, every shape asserted.

    ``upto``: the deepest layer a run taps (e.g. ``'relu5_1'``); the convolutions after it are not
    read (a Gatys run with the usual layers needs 11 of VGG16's 13).

    Returns
    -------
    params : dict
        ``{'conv1_1': (w (64, 3, 3, 3), b (64,)), ...}`` as ``dtype``.
    """
    check_input(path, "weight file", WeightsError)  # a FIFO would block HDF5's reads
    shapes = conv_shapes(model, upto=upto)
    params = {}
    try:
        with h5py.File(path, "r") as f:
            names = _layer_names(path, f)
            for ours, (F, C, kh, kw) in shapes.items():
                keras = "block{}_conv{}".format(*ours[4:].split("_"))
                if keras not in names or keras not in f:
                    raise WeightsError(
                        f"{path}: layer {keras} missing; is this a Keras {model} notop file?")
                g = f[keras]
                wnames = [
                    n.decode() if isinstance(n, bytes) else n
                    for n in g.attrs.get("weight_names", [])
                ]
                if len(wnames) != 2:
                    raise WeightsError(
                        f"{path}: layer {keras} has {len(wnames)} weights, expected kernel and bias"
                    )
                kernel, bias = np.asarray(g[wnames[0]]), np.asarray(g[wnames[1]])
                if kernel.shape != (kh, kw, C, F) or bias.shape != (F,):
                    raise WeightsError(
                        f"{path}: layer {keras} has kernel {kernel.shape} and bias {bias.shape}, "
                        f"{model} needs {(kh, kw, C, F)} and {(F,)}")
                w = kernel.transpose(3, 2, 0, 1)  # (kh, kw, C, F) -> (F, C, kh, kw)
                params[ours] = (np.ascontiguousarray(w, dtype=dtype), bias.astype(dtype))
    except OSError as e:
        raise WeightsError(f"cannot read weight file {path}: {e}") from None
    return params


def save_keras_notop(path, params, model):
    """Write ``params`` in the Keras notop layout (used by tests and tools)."""
    names = ["input_1"]
    for b, n in enumerate(BLOCKS[model]):
        names += [f"block{b + 1}_conv{i + 1}" for i in range(n)] + [f"block{b + 1}_pool"]
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:   # a whole file, or none
        f.attrs["layer_names"] = np.array([n.encode() for n in names])
        for n in names:
            g = f.create_group(n)
            if "_conv" not in n:
                g.attrs["weight_names"] = np.array([], dtype="S1")
                continue
            w, b = params["conv{}_{}".format(n[5], n.split("conv")[1])]
            g.attrs["weight_names"] = np.array([f"{n}/kernel:0".encode(), f"{n}/bias:0".encode()])
            g.create_dataset(f"{n}/kernel:0",
                             data=np.asarray(w).transpose(2, 3, 1,
                                                          0))  # (F, C, kh, kw) -> (kh, kw, C, F)
            g.create_dataset(f"{n}/bias:0", data=np.asarray(b))


def _layer_names(path, f=None):
    try:
        if f is None:
            with h5py.File(path, "r") as f:
                return _layer_names(path, f)
        if "layer_names" not in f.attrs:
            raise WeightsError(f"{path}: not a Keras weight file (no 'layer_names' attribute)")
        return [n.decode() if isinstance(n, bytes) else str(n) for n in f.attrs["layer_names"]]
    except OSError as e:
        raise WeightsError(f"cannot read weight file {path}: {e}") from None
