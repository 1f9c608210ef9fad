"""Train a small feed-forward style network on the CPU, then stylise a photo it never saw.

    python examples/train_johnson.py                  # a short training on the shared photos
    python examples/train_johnson.py --iters 2000 --size 128

Takes the flags of ``numstyle train`` (all optional here). Defaults: the
sample painting (The Starry Night), the photos under $NUMSTYLE_DATA/datasets/
photos, 128 px crops, batch 4, a few hundred iterations -- minutes, not hours.
The full recipe of the paper is ``--size 256 --iters 40000`` on MS-COCO.
The model goes to ``out/<style>_<size>.h5`` unless ``--out`` says otherwise.

Reading on: numstyle/commands/johnson.py -> numstyle/train.py (the loss and the
loop) -> numstyle/transformer.py (the network) -> numstyle/transformer_layers.py.
"""
import argparse
import os
import sys

from _common import run
from numstyle.cli import main
from numstyle.data import sample_image, search_dirs
from numstyle.errors import NumstyleError

PROG = "examples/train_johnson.py"


def photos_folder():
    for d in search_dirs("datasets/photos"):
        if os.path.isdir(d):
            return d
    return None


def defaults(argv):
    """Fill in the sample style, the shared photos and a CPU-sized schedule where not given.

    Returns the arguments of ``numstyle train`` and the model file,
    ``out/<style>_<size>.h5`` by default.
    """
    # reads these flags, --out=x.h5 too
    ap = argparse.ArgumentParser(add_help=False, allow_abbrev=False, exit_on_error=False)
    for flag in ("--style", "--data", "--size", "--iters", "--out", "--checkpoint-every"):
        ap.add_argument(flag)
    try:
        given, _ = ap.parse_known_args(argv)
    except argparse.ArgumentError as e:
        raise NumstyleError(str(e)) from None
    add = []
    if given.style is None:
        given.style = sample_image("starry_night.jpg")
        add += ["--style", given.style]
    if given.data is None:
        folder = photos_folder()
        if folder is None:
            raise NumstyleError("no training photos found: pass --data DIR (any folder of images), "
                                "or set NUMSTYLE_DATA to a folder with datasets/photos")
        add += ["--data", folder]
    stem = os.path.splitext(os.path.basename(given.style))[0]
    out = given.out or os.path.join("out", f"{stem}_{given.size or 128}.h5")
    for flag, value in (("--size", "128"), ("--iters", "300"), ("--out", out),
                        ("--checkpoint-every", "100")):
        if getattr(given, flag[2:].replace("-", "_")) is None:
            add += [flag, value]
    return add + argv, out


def train_then_stylize(argv):
    """Train, then stylise the sample photo with the new model."""
    if any(a in ("-h", "--help") for a in argv):
        return main(["train"] + argv, prog=PROG)
    argv, model = defaults(argv)
    photo = sample_image("tubingen.jpg")                    # found (or not) before the training
    code = main(["train"] + argv, prog=PROG)
    if code == 0:
        code = main(["stylize", "--model", model, photo, "--out",
                     os.path.splitext(model)[0] + "_tubingen.png"], prog=PROG)
    return code


if __name__ == "__main__":
    sys.exit(run(lambda: train_then_stylize(sys.argv[1:]), PROG))
