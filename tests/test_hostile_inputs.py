"""Every command against a table of hostile inputs (issue 24).

Each row runs one command on a small world of files -- photos, a painting, training data, models,
checkpoints, links, FIFOs, zero-byte and text files named like images -- and asserts what we
promise for bad input: a non-zero exit, one error line on stderr (``numstyle: error: ...``;
before it at most two ``numstyle: warning: ...`` lines, one line each: skipped training images), no
traceback, and a world exactly as it was: no input changed (hashed before and after), no partial
output and no ``.numstyle-*`` temporary left. Rows marked ``before work`` must fail before any
network is loaded or any image decoded (the work functions are replaced by ones that fail the
test).

Permissions: tests run as root in CI, and root reads and writes any file, so the rows that
``chmod`` an input or a folder are skipped there (``os.geteuid() == 0``) and run for any other
user; the ``...-as-user`` rows run for everyone, with what the kernel answers a user without the
permission patched in (``os.access``, ``open``, ``h5py.File``, ``tempfile.mkstemp``: see
:func:`denied`). A full disk is a patched write (Pillow's ``save``, h5py's ``create_dataset``)
in the table, and a real 64 KB tmpfs in :func:`test_a_real_full_disk` where one may be mounted.
sr-eval and bench write nothing, so they have no full-disk row.
"""
import builtins
import errno
import hashlib
import io
import json
import os
import re
import resource
import stat
import subprocess
import sys
import tempfile

import h5py
import numpy as np
import pytest
from PIL import Image

from numstyle import gatys, gatys_tiled, image, models, tiles, train, transformer, vgg, weights
from numstyle.cli import main
from numstyle.commands import batches as batches_cmd
from numstyle.commands import experiments as experiments_cmd
from numstyle.commands import gatys as gatys_cmd
from numstyle.commands import johnson as johnson_cmd
from numstyle.dataset import list_images
from numstyle.errors import ImageError, LayerError, NumstyleError
from numstyle.files import check_outputs
from numstyle.image import image_format
from numstyle.tiles import plan_network_tiles, transformer_radius

from conftest import assert_one_line_error

ROOT_USER = hasattr(os, "geteuid") and os.geteuid() == 0
as_non_root = pytest.mark.skipif(ROOT_USER, reason="root reads and writes any file")

STYLE_CONFIG = {"kind": "style", "norm": "instance", "width": [4, 6, 8], "n_res": 1}
SR_CONFIG = {"kind": "sr", "norm": "batch", "width": 4, "n_res": 1, "scale": 2, "skip": True}


def _png(path, rng, shape):
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(path)


def _style_params(seed=3):
    return transformer.init_params(models.spec_from_config(STYLE_CONFIG), seed=seed)


def _edit_h5(path, edit):
    with h5py.File(path, "a") as f:
        edit(f)


def _replace(group, key, data):
    del group[key]
    group.create_dataset(key, data=data)


@pytest.fixture
def world(tmp_path, rng, synthetic_vgg):
    """The files the rows point at, all under ``tmp_path`` (``w[name]`` is a path)."""
    w = {"root": str(tmp_path)}

    def at(name):
        w[name] = str(tmp_path / name)
        return w[name]

    _png(at("c.png"), rng, (40, 48, 3))
    _png(at("s.png"), rng, (32, 32, 3))
    _png(at("ph oto é.png"), rng, (40, 48, 3))                   # spaces and unicode
    for folder, names in (("data", ["p0.png", "p1.png"]), ("a", ["f0.png", "f1.png"]),
                          ("a_m_stylized", ["f0.png"])):
        os.mkdir(at(folder))
        for n in names:
            _png(os.path.join(w[folder], n), rng, (40, 40, 3))
    os.mkdir(at("dätä ü"))                                            # spaces and unicode
    for n in ("p 0.png", "p 1.png"):
        _png(os.path.join(w["dätä ü"], n), rng, (40, 40, 3))
    os.mkdir(at("figs ü"))
    os.mkdir(at("leer ü"))
    os.mkdir(at("zerodata"))
    open(os.path.join(w["zerodata"], "p.png"), "wb").close()
    open(at("empty ü.png"), "wb").close()
    open(at("empty ü.h5"), "wb").close()
    w["data/p0.png"] = os.path.join(w["data"], "p0.png")
    _png(at("x.png"), rng, (20, 24, 3))
    _png(at("x_m_stylized.png"), rng, (20, 24, 3))
    os.link(w["c.png"], at("hard.png"))
    os.symlink(w["s.png"], at("link_style.png"))
    with open(at("text.gif"), "w") as f:
        f.write("not an image at all\n")
    with open(at("text.png"), "w") as f:
        f.write("not an image at all\n")
    open(at("empty.png"), "wb").close()
    open(at("empty.h5"), "wb").close()
    os.mkfifo(at("fifo.png"))
    os.mkfifo(at("fifo.gif"))
    os.mkfifo(at("fifo.h5"))
    os.mkdir(at("fifodata"))
    os.mkfifo(os.path.join(w["fifodata"], "x.jpg"))
    os.mkdir(at("emptydata"))
    os.mkdir(at("outs"))
    os.mkfifo(at("outs/fifo_out.png"))
    os.symlink(os.devnull, at("outs/null.png"))
    os.symlink(os.devnull, at("outs/null.h5"))
    # models: good, then each broken in one way
    params = _style_params()
    models.save_model(at("m.h5"), params, STYLE_CONFIG)
    bad = dict(params)
    bad["c1.w"] = params["c1.w"].copy()
    bad["c1.w"][0, 0, 0, 0] = np.nan
    models.save_model(at("nan.h5"), bad, STYLE_CONFIG)
    models.save_model(at("list.h5"), params, STYLE_CONFIG)
    _edit_h5(w["list.h5"], lambda f: f.attrs.__setitem__("config", json.dumps([1, 2])))
    models.save_model(at("str.h5"), params, STYLE_CONFIG)
    _edit_h5(w["str.h5"], lambda f: _replace(f["params"], "c1.w", "0.1, 0.2"))
    overflow = {k: np.full_like(v, 3e38) if k == "c1.w" else v for k, v in params.items()}
    models.save_model(at("overflow.h5"), overflow, STYLE_CONFIG)   # finite, but overflows float32
    sr_params = transformer.init_params(models.spec_from_config(SR_CONFIG), seed=0)
    sr_state = transformer.init_state(sr_params, "batch")
    models.save_model(at("sr.h5"), sr_params, SR_CONFIG, sr_state)
    sr_state_nan = {k: dict(v) for k, v in sr_state.items()}
    first = sorted(sr_state_nan)[0]
    sr_state_nan[first]["var"] = sr_state_nan[first]["var"] * np.nan
    models.save_model(at("sr_nan.h5"), sr_params, SR_CONFIG, sr_state_nan)
    # checkpoints of the train rows' network, each broken in one way
    config = dict(STYLE_CONFIG, upsample="transposed", settings={})
    for name in ("neg", "list", "shape", "str", "nan", "settings", "adam"):
        models.save_checkpoint(at(f"{name}.ckpt.h5"), params, {}, 3, config)
    edits = {
        "neg": lambda f: f.attrs.__setitem__("iteration", -5),
        "list": lambda f: f.attrs.__setitem__("config", json.dumps([config])),
        "shape": lambda f: _replace(f["params"], "c2.w", np.zeros((6, 4, 5, 5), np.float32)),
        "str": lambda f: _replace(f["params"], "c1.beta", "zero"),
        "nan": lambda f: _replace(f["params"], "c1.beta", np.full(4, np.nan, np.float32)),
        "settings": lambda f: f.attrs.__setitem__("config",
                                                  json.dumps(dict(config, settings=[1]))),
        "adam": lambda f: _adam(f, np.zeros((2, 2), np.float32)),
    }
    for name, edit in edits.items():
        _edit_h5(w[f"{name}.ckpt.h5"], edit)
    w["weights"], _ = synthetic_vgg("vgg16")
    return w


def _adam(f, moment):
    g = f["adam"].create_group("c1.w")
    g.attrs["t"] = 1
    g.create_dataset("m", data=moment)
    g.create_dataset("v", data=moment)


def snapshot(root):
    """Everything under ``root``: each regular file's hash, each link's target, each FIFO, each
    folder -- FIFOs are never opened."""
    seen = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                seen[path] = "link -> " + os.readlink(path)
            elif stat.S_ISREG(mode):
                with io.open(path, "rb") as f:  # not the open a permission row patches
                    seen[path] = hashlib.sha256(f.read()).hexdigest()
            else:
                seen[path] = stat.S_IFMT(mode)
    return seen


@pytest.fixture
def no_work(monkeypatch):
    """Any of these means the work began: rows marked ``before work`` fail the test if it does."""
    def started(*args, **kwargs):
        raise AssertionError("the work began before the bad input was refused")

    monkeypatch.setattr(gatys_cmd, "load_vgg", started)
    monkeypatch.setattr(gatys_cmd, "load_image", started)
    monkeypatch.setattr(weights, "load_vgg", started)
    monkeypatch.setattr(train, "fit", started)
    monkeypatch.setattr(batches_cmd, "read_media", started)
    monkeypatch.setattr(johnson_cmd, "load_image", started)
    monkeypatch.setattr(experiments_cmd, "Lab", started)


def disk_full(w, mp):
    """A full disk: every image write (Pillow's ``save``) and every HDF5 dataset write fails with
    ENOSPC -- HDF5's in its own several lines, as a real full disk gives them
    (:func:`test_a_real_full_disk` checks the same on a small tmpfs where it may mount one)."""
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def hdf5_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "Can't write data (file write failed: time = now\n, "
                      "filename = '.numstyle-x.h5', errno = 28, error message = 'No space left "
                      "on device')")

    for ext in ("png", "jpg"):  # the formats' write test (cached) on a disk with space
        image_format(f"o.{ext}")
    mp.setattr(Image.Image, "save", full)
    mp.setattr(h5py.Group, "create_dataset", hdf5_full)


def denied(*unreadable, unwritable=()):
    """A setup: what a user without the permission bits meets, under root.

    The tests run as root in CI, and root reads and writes any file, so ``chmod`` proves nothing
    there (the ``chmod`` rows run only for other users). This patches what the kernel would answer
    a non-root user instead: ``os.access``, ``open``, ``h5py.File`` (with HDF5's own several-line
    words) and ``tempfile.mkstemp`` (the writability probe and every atomic write) refuse the
    files ``unreadable`` and the folders ``unwritable`` (world names) with EACCES.
    """
    def setup(w, mp):
        files = {os.path.realpath(w[n]) for n in unreadable}
        folders = {os.path.realpath(w[n]) for n in unwritable}
        real_access, real_open, real_mkstemp = os.access, builtins.open, tempfile.mkstemp
        real_h5 = h5py.File.__init__

        def hit(path, where):
            return isinstance(path, (str, os.PathLike)) and os.path.realpath(path) in where

        def refuse(path, text=os.strerror(errno.EACCES)):
            raise PermissionError(errno.EACCES, text, os.fspath(path))

        def access(path, mode, *args, **kwargs):
            if (hit(path, files) and mode & os.R_OK) or (hit(path, folders) and mode & os.W_OK):
                return False
            return real_access(path, mode, *args, **kwargs)

        def open_(file, *args, **kwargs):
            if hit(file, files):
                refuse(file)
            return real_open(file, *args, **kwargs)

        def h5_file(self, name, *args, **kwargs):
            if hit(name, files):
                refuse(name, "Unable to synchronously open file (file open failed: time = now\n"
                       ", errno = 13, error message = 'Permission denied')")
            return real_h5(self, name, *args, **kwargs)

        def mkstemp(*args, dir=None, **kwargs):
            if hit(dir, folders):
                refuse(os.path.join(dir, ".numstyle-probe"))
            return real_mkstemp(*args, dir=dir, **kwargs)

        mp.setattr(os, "access", access)
        mp.setattr(builtins, "open", open_)
        mp.setattr(h5py.File, "__init__", h5_file)
        mp.setattr(tempfile, "mkstemp", mkstemp)
    return setup


GATYS = ["gatys", "--weights", "{weights}", "--size", "32", "--iters", "1", "--no-progress",
         "--model", "vgg16"]
TRAIN = ["train", "--style", "{s.png}", "--data", "{data}", "--weights", "{weights}", "--size",
         "16", "--batch-size", "1", "--width", "4,6,8", "--n-res", "1", "--iters", "1",
         "--checkpoint-every", "0", "--no-progress"]
SR_TRAIN = ["sr-train", "--data", "{data}", "--size", "16", "--scale", "2", "--batch-size", "1",
            "--width", "4", "--n-res", "1", "--iters", "1", "--checkpoint-every", "0",
            "--no-progress"]
STYLIZE = ["stylize", "--model", "{m.h5}", "--no-progress"]
UPSCALE = ["upscale", "--model", "{sr.h5}", "--no-progress"]
GC = GATYS + ["--content", "{c.png}", "--style", "{s.png}"]          # gatys with both images
EXPERIMENTS = ["experiments", "pooling", "--quick", "--model", "vgg16", "--weights",
               "{weights}", "--content", "{c.png}", "--style", "{s.png}"]
BEFORE, AFTER = True, False                                          # refused before the work?

# (id, argv, what the one line must say, refused before the work, setup)
ROWS = [
    # 1. an output that is an input, by any name
    ("gatys-out-is-content", GC + ["--out", "{c.png}"], "is also an input", BEFORE, None),
    ("gatys-out-is-style-link", GC + ["--out", "{link_style.png}"], "is also an input", BEFORE,
     None),
    ("gatys-out-is-hard-link", GC + ["--out", "{hard.png}"], "is also an input", BEFORE, None),
    ("gatys-out-is-init", GC + ["--init", "{x.png}", "--out", "{x.png}"], "is also an input",
     BEFORE, None),
    ("gatys-save-every-hits-input", GATYS + ["--content", "{root}/o_0001.png", "--style",
                                             "{s.png}", "--out", "{root}/o.png",
                                             "--save-every", "1"],
     "is also an input", BEFORE,
     lambda w, mp: Image.open(w["c.png"]).save(os.path.join(w["root"], "o_0001.png"))),
    ("gatys-unicode-out-is-content", GC[:-4] + ["--content", "{ph oto é.png}", "--style",
                                                "{s.png}", "--out", "{ph oto é.png}"],
     "is also an input", BEFORE, None),
    ("gatys-frames-onto-the-style", GATYS + ["--content", "{a}", "--style",
                                             "{root}/a_gatys/f0.png", "--out", "{root}"],
     "is also an input", BEFORE, lambda w, mp: (os.mkdir(os.path.join(w["root"], "a_gatys")),
                                            Image.open(w["s.png"]).save(
                                                os.path.join(w["root"], "a_gatys", "f0.png")))),
    ("train-out-is-style", TRAIN + ["--out", "{s.png}"], "is also an input", BEFORE, None),
    ("train-out-is-a-training-photo", TRAIN + ["--out", "{data}/p0.png"], "is also an input",
     BEFORE, None),
    ("train-out-is-the-resumed-checkpoint", TRAIN + ["--out", "{neg.ckpt.h5}", "--resume",
                                                     "{neg.ckpt.h5}"],
     "is also an input", BEFORE, None),
    ("sr-train-out-is-a-training-photo", SR_TRAIN + ["--out", "{data}/p1.png"],
     "is also an input", BEFORE, None),
    ("stylize-out-is-input", STYLIZE + ["{x.png}", "--out", "{x.png}"], "is also an input",
     BEFORE, None),
    ("stylize-result-is-next-input", STYLIZE + ["{x.png}", "{x_m_stylized.png}", "--out", "{root}"],
     "is also an input", BEFORE, None),
    ("stylize-folder-into-next-input", STYLIZE + ["{a}", "{a_m_stylized}", "--out", "{root}"],
     "is also an input", BEFORE, None),
    ("upscale-out-is-a-hard-link-of-input", UPSCALE + ["{c.png}", "--out", "{hard.png}"],
     "is also an input", BEFORE, None),
    ("experiments-figure-is-content", ["experiments", "pooling", "--quick", "--content",
                                       "{outs}/pooling.png", "--out", "{outs}"],
     "is also an input", BEFORE, lambda w, mp: Image.open(w["c.png"]).save(
         os.path.join(w["outs"], "pooling.png"))),
    # 2. outputs that are devices or FIFOs
    ("gatys-out-dev-null", GC + ["--out", "{outs}/null.png"], "character device", BEFORE, None),
    ("gatys-out-is-dev-null-itself", GC + ["--out", os.devnull], "character device", BEFORE,
     None),
    ("upscale-out-folder-is-dev-null", UPSCALE + ["{x.png}", "--out", os.devnull],
     "/dev/null is a character device, not a folder", BEFORE, None),
    ("gatys-out-fifo", GC + ["--out", "{outs}/fifo_out.png"], "FIFO", BEFORE, None),
    ("train-out-dev-null", TRAIN + ["--out", "{outs}/null.h5"], "character device", BEFORE, None),
    ("sr-train-out-fifo", SR_TRAIN + ["--out", "{fifo.h5}"], "FIFO", BEFORE, None),
    ("sr-train-resume-nan", SR_TRAIN + ["--out", "{outs}/sr.h5", "--resume", "{nan.ckpt.h5}"],
     "NaN", BEFORE, None),
    ("stylize-out-fifo", STYLIZE + ["{x.png}", "--out", "{outs}/fifo_out.png"], "FIFO", BEFORE,
     None),
    ("upscale-out-dev-null", UPSCALE + ["{x.png}", "--out", "{outs}/null.png"],
     "character device", BEFORE, None),
    # 3. (signals: tests/test_interrupts.py)
    # 4. memory refused up front, saying what would fit
    ("gatys-size-100000", GC + ["--size", "100000", "--out", "{outs}/o.png"],
     "--size", BEFORE, None),
    ("gatys-style-scale-2000", GC + ["--style-scale", "2000", "--out", "{outs}/o.png"],
     "style image needs about", BEFORE, None),
    ("gatys-max-memory-1KB", GC + ["--max-memory", "1KB", "--out", "{outs}/o.png"],
     "--max-memory 1 KB is too small", BEFORE, None),
    ("train-size-100000", TRAIN + ["--size", "100000", "--out", "{outs}/m.h5"], "fits",
     BEFORE, None),
    ("train-style-size-60000", TRAIN + ["--style-size", "60000", "--out", "{outs}/m.h5"],
     "--style-size", BEFORE, None),
    ("stylize-size-100000", STYLIZE + ["{x.png}", "--size", "100000", "--out", "{outs}"],
     "--size", BEFORE, None),
    ("upscale-max-memory-1KB", UPSCALE + ["{x.png}", "--max-memory", "1KB", "--out", "{outs}"],
     "--max-memory 1 KB is too small", BEFORE, None),
    # 5. tracebacks that were
    ("gatys-duplicate-style-layers", GC + ["--style-layers", "relu1_1,relu1_1"], "named twice",
     BEFORE, None),
    ("train-duplicate-style-layers", TRAIN + ["--style-layers", "relu1_2,relu1_2"],
     "named twice", BEFORE, None),
] + [
    (f"gatys-out-{ext}", GC + ["--out", f"{{outs}}/o.{ext}"], "cannot write them", BEFORE, None)
    for ext in ("psd", "xpm", "fits", "cur", "msp", "xbm")
] + [
    ("stylize-model-config-a-list", STYLIZE[:2] + ["{list.h5}", "{x.png}", "--out", "{outs}"],
     "not an object", BEFORE, None),
    ("stylize-model-param-a-string", STYLIZE[:2] + ["{str.h5}", "{x.png}", "--out", "{outs}"],
     "not an array of numbers", BEFORE, None),
] + [
    (f"train-resume-{name}", TRAIN + ["--resume", f"{{{name}.ckpt.h5}}", "--out", "{outs}/m.h5"],
     needle, BEFORE, None)
    for name, needle in (("neg", "not a whole number"), ("list", "not an object"),
                         ("shape", "parameter c2.w is (6, 4, 5, 5)"),
                         ("str", "not an array of numbers"), ("nan", "NaN"),
                         ("settings", "settings are not a JSON object"),
                         ("adam", "Adam moment m of c1.w"))
] + [
    # 6. silent wrong results
    ("stylize-nan-model", STYLIZE[:2] + ["{nan.h5}", "{x.png}", "--out", "{outs}"],
     "NaN or infinite", BEFORE, None),
    ("stylize-overflowing-model", STYLIZE[:2] + ["{overflow.h5}", "{x.png}", "--out", "{outs}"],
     "NaN or infinite pixels", AFTER, None),
    ("upscale-nan-statistics", UPSCALE[:2] + ["{sr_nan.h5}", "{x.png}", "--out", "{outs}"],
     "NaN or infinite", BEFORE, None),
    ("sr-eval-nan-statistics", ["sr-eval", "--model", "{sr_nan.h5}", "--set", "{data}"],
     "NaN or infinite", BEFORE, None),
    ("gatys-negative-layer-weight", GC + ["--style-layers", "relu1_1,relu2_1",
                                          "--style-layer-weights=-1,1"], "must be >= 0",
     BEFORE, None),
    ("gatys-blend-without-style", GATYS + ["--content", "{c.png}", "--style-blend", "1"],
     "--style-blend needs --style", BEFORE, None),
    ("gatys-layer-weights-without-style", GATYS + ["--content", "{c.png}",
                                                   "--style-layer-weights", "1"],
     "needs --style", BEFORE, None),
    # 7. what would hang: FIFOs as inputs
    ("gatys-content-fifo", GATYS + ["--content", "{fifo.png}", "--style", "{s.png}"],
     "FIFO", BEFORE, None),
    ("gatys-weights-fifo", ["gatys", "--weights", "{fifo.h5}", "--content", "{c.png}", "--size",
                            "32"],
     "FIFO", BEFORE, None),
    ("train-style-fifo", TRAIN[:2] + ["{fifo.png}"] + TRAIN[3:], "FIFO", BEFORE, None),
    ("train-data-only-a-fifo", TRAIN[:4] + ["{fifodata}"] + TRAIN[5:], "no images found",
     BEFORE, None),
    ("sr-train-data-only-a-fifo", SR_TRAIN[:2] + ["{fifodata}"] + SR_TRAIN[3:] +
     ["--out", "{outs}/sr.h5"], "no images found", BEFORE, None),
    ("stylize-input-fifo", STYLIZE + ["{fifo.png}", "--out", "{outs}"], "FIFO", BEFORE, None),
    ("stylize-input-fifo-gif", STYLIZE + ["{fifo.gif}", "--out", "{outs}/o.gif"], "FIFO",
     BEFORE, None),
    ("stylize-model-fifo", STYLIZE[:2] + ["{fifo.h5}", "{x.png}"], "FIFO", BEFORE, None),
    ("sr-eval-set-only-a-fifo", ["sr-eval", "--model", "{sr.h5}", "--set", "{fifodata}"],
     "no images in test set", BEFORE, None),
    ("bench-weights-fifo", ["bench", "gatys", "--weights", "{fifo.h5}", "--size", "16",
                            "--runs", "1"], "FIFO", AFTER, None),
    ("gatys-init-fifo", GC + ["--init", "{fifo.png}"], "FIFO", BEFORE, None),
    ("train-resume-fifo", TRAIN + ["--resume", "{fifo.h5}", "--out", "{outs}/m.h5"], "FIFO",
     BEFORE, None),
    ("stylize-folder-of-only-a-fifo", STYLIZE + ["{fifodata}", "--out", "{outs}"],
     "no image frames", BEFORE, None),
    # 8. messages
    ("stylize-text-named-gif", STYLIZE + ["{text.gif}", "--out", "{outs}/o.png"],
     "not a readable image", BEFORE, None),
    ("gatys-weights-1e308", GC + ["--style-weight", "1e308", "--content-weight", "1e308",
                                  "--out", "{outs}/o.png"], "loss became inf", AFTER, None),
    # and more: zero-byte, text, missing, folders, permissions, a full disk
    ("gatys-content-zero-bytes", GATYS + ["--content", "{empty.png}"], "not a readable image",
     BEFORE, None),
    ("gatys-style-text", GC[:-2] + ["--style", "{text.png}"], "not a readable image", BEFORE,
     None),
    ("gatys-content-missing", GATYS + ["--content", "{root}/nope.png"], "not found", BEFORE,
     None),
    ("gatys-content-a-folder-of-nothing", GATYS + ["--content", "{emptydata}", "--out",
                                                   "{outs}/x"], "no image frames", BEFORE, None),
    ("gatys-weights-zero-bytes", ["gatys", "--weights", "{empty.h5}", "--content", "{c.png}"],
     "cannot read weight file", BEFORE, None),
    ("train-style-zero-bytes", TRAIN[:2] + ["{empty.png}"] + TRAIN[3:], "not a readable image",
     BEFORE, None),
    ("train-data-empty", TRAIN[:4] + ["{emptydata}"] + TRAIN[5:], "no images found", BEFORE,
     None),
    ("stylize-input-zero-bytes", STYLIZE + ["{empty.png}", "--out", "{outs}"],
     "not a readable image", BEFORE, None),
    ("stylize-model-zero-bytes", STYLIZE[:2] + ["{empty.h5}", "{x.png}"], "cannot read model",
     BEFORE, None),
    ("upscale-unicode-input-text", UPSCALE + ["{text.png}", "--out", "{outs}/ü ber.png"],
     "not a readable image", BEFORE, None),
    pytest.param("gatys-content-unreadable", GC + ["--out", "{outs}/o.png"], "permission denied",
                 BEFORE, lambda w, mp: os.chmod(w["c.png"], 0), marks=as_non_root,
                 id="gatys-content-unreadable"),
    pytest.param("stylize-out-folder-unwritable", STYLIZE + ["{x.png}", "--out", "{outs}"],
                 "Permission denied", BEFORE, lambda w, mp: os.chmod(w["outs"], 0o500),
                 marks=as_non_root, id="stylize-out-folder-unwritable"),
    # zero-byte files, every command that reads files
    ("upscale-input-zero-bytes", UPSCALE + ["{empty.png}", "--out", "{outs}"],
     "not a readable image", BEFORE, None),
    ("upscale-model-zero-bytes", ["upscale", "--model", "{empty.h5}", "{x.png}", "--out",
                                  "{outs}"], "cannot read model", BEFORE, None),
    ("train-data-only-zero-bytes", TRAIN[:4] + ["{zerodata}"] + TRAIN[5:] +
     ["--out", "{outs}/m.h5"], "could be used", AFTER, None),
    ("sr-train-data-only-zero-bytes", SR_TRAIN[:2] + ["{zerodata}"] + SR_TRAIN[3:] +
     ["--out", "{outs}/sr.h5"], "could be used", AFTER, None),
    ("sr-train-resume-zero-bytes", SR_TRAIN + ["--out", "{outs}/sr.h5", "--resume",
                                               "{empty.h5}"], "cannot read checkpoint", BEFORE,
     None),
    ("sr-eval-model-zero-bytes", ["sr-eval", "--model", "{empty.h5}", "--set", "{data}"],
     "cannot read model", BEFORE, None),
    ("sr-eval-set-only-zero-bytes", ["sr-eval", "--model", "{sr.h5}", "--set", "{zerodata}"],
     "not a readable image", AFTER, None),
    ("experiments-content-zero-bytes", EXPERIMENTS[:7] + ["--content", "{empty.png}",
                                                          "--out", "{outs}"],
     "not a readable image", BEFORE, None),
    ("bench-weights-zero-bytes", ["bench", "gatys", "--weights", "{empty.h5}", "--size", "16",
                                  "--runs", "1"], "cannot read weight file", AFTER, None),
    # permissions, as a non-root user meets them (patched: see denied)
    ("gatys-content-unreadable-as-user", GC + ["--out", "{outs}/o.png"], "permission denied",
     BEFORE, denied("c.png")),
    ("gatys-weights-unreadable-as-user", GC + ["--out", "{outs}/o.png"], "permission denied",
     BEFORE, denied("weights")),
    ("gatys-out-folder-unwritable-as-user", GC + ["--out", "{outs}/o.png"], "Permission denied",
     BEFORE, denied(unwritable=["outs"])),
    ("train-style-unreadable-as-user", TRAIN + ["--out", "{outs}/m.h5"], "permission denied",
     BEFORE, denied("s.png")),
    ("train-out-folder-unwritable-as-user", TRAIN + ["--out", "{outs}/m.h5"],
     "Permission denied", BEFORE, denied(unwritable=["outs"])),
    ("sr-train-resume-unreadable-as-user", SR_TRAIN + ["--out", "{outs}/sr.h5", "--resume",
                                                       "{nan.ckpt.h5}"], "permission denied",
     BEFORE, denied("nan.ckpt.h5")),
    ("sr-train-out-folder-unwritable-as-user", SR_TRAIN + ["--out", "{outs}/sr.h5"],
     "Permission denied", BEFORE, denied(unwritable=["outs"])),
    ("stylize-model-unreadable-as-user", STYLIZE + ["{x.png}", "--out", "{outs}"],
     "permission denied", BEFORE, denied("m.h5")),
    ("stylize-input-unreadable-as-user", STYLIZE + ["{x.png}", "--out", "{outs}"],
     "permission denied", BEFORE, denied("x.png")),
    ("stylize-out-folder-unwritable-as-user", STYLIZE + ["{x.png}", "--out", "{outs}"],
     "Permission denied", BEFORE, denied(unwritable=["outs"])),
    ("upscale-input-unreadable-as-user", UPSCALE + ["{c.png}", "--out", "{outs}"],
     "permission denied", BEFORE, denied("c.png")),
    ("upscale-out-folder-unwritable-as-user", UPSCALE + ["{c.png}", "--out", "{outs}/o.png"],
     "Permission denied", BEFORE, denied(unwritable=["outs"])),
    ("sr-eval-model-unreadable-as-user", ["sr-eval", "--model", "{sr.h5}", "--set", "{data}"],
     "permission denied", BEFORE, denied("sr.h5")),
    ("sr-eval-image-unreadable-as-user", ["sr-eval", "--model", "{sr.h5}", "--set", "{data}"],
     "permission denied", AFTER, denied("data/p0.png")),
    ("experiments-style-unreadable-as-user", EXPERIMENTS + ["--out", "{outs}"],
     "permission denied", BEFORE, denied("s.png")),
    ("experiments-out-folder-unwritable-as-user", EXPERIMENTS + ["--out", "{outs}"],
     "Permission denied", BEFORE, denied(unwritable=["outs"])),
    ("bench-weights-unreadable-as-user", ["bench", "gatys", "--weights", "{weights}", "--size",
                                          "16", "--runs", "1"], "permission denied", AFTER,
     denied("weights")),
    # spaces and unicode in every command's paths
    ("train-unicode-out-is-a-training-photo", TRAIN[:4] + ["{dätä ü}"] + TRAIN[5:] +
     ["--out", "{dätä ü}/p 0.png"], "is also an input", BEFORE, None),
    ("sr-train-unicode-data-empty", SR_TRAIN[:2] + ["{leer ü}"] + SR_TRAIN[3:] +
     ["--out", "{outs}/sr ü.h5"], "no images found", BEFORE, None),
    ("stylize-unicode-input-zero-bytes", STYLIZE + ["{empty ü.png}", "--out", "{figs ü}"],
     "not a readable image", BEFORE, None),
    ("sr-eval-unicode-set-empty", ["sr-eval", "--model", "{sr.h5}", "--set", "{leer ü}"],
     "no images in test set", BEFORE, None),
    ("experiments-unicode-figure-is-style", EXPERIMENTS[:9] + ["--style",
                                                               "{figs ü}/pooling.png",
                                                               "--out", "{figs ü}"],
     "is also an input", BEFORE, lambda w, mp: Image.open(w["s.png"]).save(
         os.path.join(w["figs ü"], "pooling.png"))),
    ("bench-unicode-weights-zero-bytes", ["bench", "gatys", "--weights", "{empty ü.h5}",
                                          "--size", "16", "--runs", "1"],
     "cannot read weight file", AFTER, None),
    # a full disk, every command that writes (sr-eval and bench write nothing)
    ("sr-train-disk-full", SR_TRAIN + ["--out", "{outs}/sr.h5"], "No space left on device",
     AFTER, disk_full),
    ("train-checkpoint-disk-full", TRAIN[:-3] + ["--iters", "2", "--checkpoint-every", "1",
                                                 "--out", "{outs}/m.h5", "--no-progress"],
     "No space left on device", AFTER, disk_full),
    ("experiments-disk-full", EXPERIMENTS + ["--out", "{outs}"], "No space left on device",
     AFTER, disk_full),
    ("gatys-disk-full", GC + ["--out", "{outs}/o.png"], "No space left on device", AFTER,
     disk_full),
    ("train-disk-full", TRAIN + ["--out", "{outs}/m.h5"], "No space left on device", AFTER,
     disk_full),
    ("stylize-disk-full", STYLIZE + ["{x.png}", "--out", "{outs}/o.png"],
     "No space left on device", AFTER, disk_full),
    ("upscale-disk-full-unicode", UPSCALE + ["{ph oto é.png}", "--out", "{outs}/grö ß.png"],
     "No space left on device", AFTER, disk_full),
]


def fill(arg, world):
    """``arg`` with each ``{name}`` replaced by the world's path (names hold dots, so no format)."""
    return re.sub(r"\{([^{}]+)\}", lambda m: world[m.group(1)], arg)


def _row_id(row):
    return row.id if hasattr(row, "id") else row[0]


@pytest.mark.parametrize("name,argv,needle,before_work,setup",
                         [r if hasattr(r, "id") else pytest.param(*r, id=r[0]) for r in ROWS])
def test_hostile_input(name, argv, needle, before_work, setup, world, capsys, monkeypatch,
                       request):
    if setup is not None:
        setup(world, monkeypatch)
    if before_work:
        request.getfixturevalue("no_work")
    monkeypatch.chdir(world["root"])  # default outputs (out/...) land in the world, watched
    argv = [fill(a, world) for a in argv]
    before = snapshot(world["root"])
    try:
        code = main(argv)
    except SystemExit as e:  # argparse: the flag's own one-line error
        code = e.code
    err = capsys.readouterr().err
    os.chmod(world["c.png"], 0o644)  # the permission rows' changes undone, to compare
    os.chmod(world["outs"], 0o755)
    warned = [line for line in err.splitlines() if line.startswith("numstyle: warning: ")]
    assert len(warned) <= 2, err  # one line each (a skipped training image), never more lines
    assert_one_line_error(code, "\n".join(line for line in err.splitlines()
                                          if line not in warned), needle)
    assert err.startswith("numstyle"), err
    assert snapshot(world["root"]) == before, "an input changed, or an output or temporary was left"
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode), "/dev/null was replaced"


def test_a_batch_names_its_missing_input_and_writes_the_others(world, capsys):
    """Several inputs are a batch (issue 21): the readable ones are stylised, the missing one is
    named in the one-line error at the end, and the exit status is not zero."""
    argv = [fill(a, world) for a in STYLIZE + ["{x.png}", "{root}/gone.png", "--out", "{outs}"]]
    before = snapshot(world["root"])
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err
    assert_one_line_error(code, err.splitlines()[-1], "gone.png")
    assert "not found" in err.splitlines()[-1]
    made = set(snapshot(world["root"])) - set(before)
    assert made == {os.path.join(world["outs"], "x_m_stylized.png")}


COMMANDS = ["gatys", "train", "stylize", "upscale", "sr-train", "sr-eval", "experiments", "bench"]


def test_the_table_covers_every_command():
    """Each command meets a zero-byte file, a permission it lacks, a path with spaces and unicode
    and, where it writes (sr-eval and bench write nothing), a full disk."""
    ids = [_row_id(r) for r in ROWS]
    assert all(any(i.startswith(c + "-") for c in COMMANDS) for i in ids)
    for command in COMMANDS:
        rows = [i for i in ids if i.startswith(command + "-")]
        kinds = ["zero-bytes", "as-user", "unicode"] + (
            [] if command in ("sr-eval", "bench") else ["disk-full"])
        for kind in kinds:
            assert any(kind in i for i in rows), (command, kind)
    assert len(ROWS) >= 120


# --- the guards themselves, one per item, each failing on the code before issue 24 ------------

def test_check_outputs_refuses_an_input_by_any_name(tmp_path, rng):
    photo = str(tmp_path / "photo.png")
    _png(photo, rng, (8, 8, 3))
    os.link(photo, tmp_path / "hard.png")
    os.symlink(photo, tmp_path / "soft.png")
    for out in (photo, str(tmp_path / "hard.png"), str(tmp_path / "soft.png"),
                str(tmp_path / "." / "photo.png")):
        with pytest.raises(NumstyleError, match="is also an input"):
            check_outputs([out], [photo])
    check_outputs([str(tmp_path / "new.png")], [photo])                # a new name: fine
    with pytest.raises(NumstyleError, match="is also an input"):       # a folder into itself
        check_outputs([], [str(tmp_path)], folders=[str(tmp_path)])


def test_an_atomic_write_never_replaces_a_fifo_or_a_device(tmp_path):
    fifo = tmp_path / "out.png"
    os.mkfifo(fifo)
    os.symlink(os.devnull, tmp_path / "null.png")
    for path in (fifo, tmp_path / "null.png"):
        with pytest.raises(NumstyleError, match="not a regular file"):
            image.save_image(str(path), np.zeros((2, 2, 3), np.uint8))
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and os.path.islink(tmp_path / "null.png")
    assert os.path.exists(os.devnull) and stat.S_ISCHR(os.stat(os.devnull).st_mode)


def test_training_images_in_linked_folders_are_found_once_and_fifos_skipped(tmp_path, rng):
    (tmp_path / "data" / "real").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    _png(tmp_path / "data" / "real" / "a.png", rng, (8, 8, 3))
    _png(tmp_path / "elsewhere" / "b.png", rng, (8, 8, 3))
    os.symlink(tmp_path / "elsewhere", tmp_path / "data" / "linked")
    os.symlink(tmp_path / "data", tmp_path / "data" / "real" / "loop")   # a loop
    os.mkfifo(tmp_path / "data" / "real" / "pipe.jpg")
    found = list_images(str(tmp_path / "data"))
    assert [os.path.basename(p) for p in found] == ["b.png", "a.png"], found


def test_a_tile_smaller_than_the_networks_margin_is_raised_to_it():
    spec = models.spec_from_config({"kind": "sr", "norm": "batch", "width": 64, "n_res": 4,
                                    "scale": 4})
    plan = plan_network_tiles(None, 60, 80, spec, scale=4, tile=3)       # issue: 37 s, not 0.14
    assert plan is None or plan["core"] >= transformer_radius(spec)[0]
    core, _ = gatys_tiled.plan_gatys(None, (1, 3, 512, 512), "vgg19", ["relu5_1"], tile=3)
    assert core >= gatys_tiled.vgg_radius("vgg19", ["relu5_1"])[0]


def test_memory_limit_honours_ulimit_and_sizes_read_well(monkeypatch):
    monkeypatch.setattr(resource, "getrlimit", lambda what: (3 << 29, resource.RLIM_INFINITY))
    assert tiles.memory_limit() <= 3 << 29
    assert [tiles.format_bytes(n) for n in (1024, 1536, 800 << 20, 24 << 30, 100)] == [
        "1 KB", "1.5 KB", "800 MB", "24 GB", "100 bytes"]


@pytest.mark.parametrize("ext", ["psd", "xpm", "fits", "cur", "msp", "xbm"])
def test_formats_pillow_reads_but_cannot_write_are_refused(ext):
    with pytest.raises(ImageError, match="cannot write them"):
        image_format(f"out.{ext}")
    assert image_format("out.png") == "PNG" and image_format("out.jpg") == "JPEG"


def test_the_library_refuses_repeated_style_layers(rng):
    params = vgg.random_params("vgg16", width=(3, 4, 5, 5, 6))
    x = rng.uniform(-100, 100, (1, 3, 16, 16)).astype(np.float32)
    with pytest.raises(LayerError, match="names relu1_1 twice"):
        gatys.make_objective(params, "vgg16", content=x, styles=[x],
                             style_layers=["relu1_1", "relu1_1"])
    with pytest.raises(LayerError, match="twice"):
        train.PerceptualLoss(params, x, style_layers=["relu1_2", "relu1_2"])


ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))

# ``numstyle ARGV`` in a fresh process, Pillow's pixel limit first set to LIMIT: the warnings as a
# user sees them (in-process, pytest records warnings instead of printing them)
LIMITED = ("import sys, PIL.Image; PIL.Image.MAX_IMAGE_PIXELS = int(sys.argv[1]); "
           "from numstyle import cli; sys.exit(cli.main(sys.argv[2:]))")


@pytest.mark.parametrize("case", ["weights-1e308", "bomb-warning-then-error", "bomb-warning"])
def test_warnings_and_errors_are_one_line_each_in_a_real_process(case, world):
    """Item 8: NumPy's overflow warnings (1e308 weights) and Pillow's DecompressionBombWarning
    were printed as Python's two lines each (the second the source line) before the one-line
    error; each is now one ``numstyle: warning:`` line, or none (NumPy's: the error says it)."""
    gatys = [fill(a, world) for a in GATYS + ["--content", "{x.png}", "--style", "{s.png}",
                                              "--style-weight", "1e308", "--content-weight",
                                              "1e308", "--iters", "2"]]
    limit, argv, code = {
        "weights-1e308": (89478485, gatys, 1),
        "bomb-warning-then-error": (520, gatys, 1),  # the style (1024 px) warns, then: loss inf
        "bomb-warning": (300, ["stylize", "--model", world["m.h5"], world["x.png"], "--out",
                               world["outs"], "--no-progress"], 0),
    }[case]
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               NUMSTYLE_NO_DOWNLOAD="1")
    r = subprocess.run([sys.executable, "-c", LIMITED, str(limit), *argv], cwd=world["root"],
                       env=env, capture_output=True, text=True, timeout=300)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == code, r.stderr
    errors = [line for line in lines if line.startswith("numstyle: error: ")]
    warned = [line for line in lines if line.startswith("numstyle: warning: Image size (")]
    assert len(errors) == code and (not errors or lines[-1] == errors[0]), r.stderr
    assert len(lines) == len(errors) + len(warned), r.stderr        # nothing else, no source line
    assert bool(warned) == case.startswith("bomb"), r.stderr


def _mount_tmpfs(folder, size):
    """Mount a ``size`` tmpfs on ``folder``; False where this user or container may not."""
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                           capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


@pytest.mark.parametrize("command", ["upscale", "train"])
def test_a_real_full_disk(command, world, tmp_path, capsys):
    """The patched writes of :func:`disk_full` checked against a real one: a 64 KB tmpfs (root
    only, and only where mounting is allowed: skipped otherwise). HDF5 reported ENOSPC in several
    lines naming the hidden temporary; Pillow mid-write: one line; neither leaves a file."""
    disk = tmp_path / "full"
    disk.mkdir()
    if not _mount_tmpfs(disk, "64k"):
        pytest.skip("cannot mount a tmpfs here (not root, or a container without the right)")
    try:
        if command == "upscale":  # a 4x enlargement of noise: about 1 MB of PNG
            big = str(tmp_path / "noise.png")
            _png(big, np.random.default_rng(0), (120, 160, 3))
            argv = [fill(a, world) for a in UPSCALE] + [big, "--out", str(disk / "o.png")]
        else:  # a model of a few hundred KB
            argv = [fill(a, world) for a in TRAIN] + ["--width", "32,64,128", "--out",
                                                      str(disk / "m.h5")]
        code = main(argv)
        assert_one_line_error(code, capsys.readouterr().err, "No space left on device")
        assert os.listdir(disk) == []
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True, timeout=30)
