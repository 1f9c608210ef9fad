"""Train a small feed-forward style network on the CPU, then stylise a photo it never saw.

    python examples/train_johnson.py                  # a short training on the shared photos
    python examples/train_johnson.py --iters 2000 --size 128

Takes the flags of ``numstyle train`` (all optional here). Defaults: the
sample painting (The Starry Night), the photos under $NUMSTYLE_DATA/datasets/
photos, 128 px crops, batch 4, a few hundred iterations -- minutes, not hours.
The full recipe of the paper is ``--size 256 --iters 40000`` on MS-COCO.

Reading on: numstyle/johnson_cli.py -> numstyle/train.py (the loss and the
loop) -> numstyle/transformer.py (the network) -> numstyle/ops/.
"""
import os
import sys

from numstyle.cli import main
from numstyle.data import sample_image, search_dirs
from numstyle.errors import NumstyleError


def photos_folder():
    for d in search_dirs("datasets/photos"):
        if os.path.isdir(d):
            return d
    return None


def defaults(argv):
    """Fill in the sample style, the shared photos and a CPU-sized schedule where not given."""
    add = []
    if "--style" not in argv:
        add += ["--style", sample_image("starry_night.jpg")]
    if "--data" not in argv:
        folder = photos_folder()
        if folder is None:
            raise NumstyleError("no training photos found: pass --data DIR (any folder of images), "
                                "or set NUMSTYLE_DATA to a folder with datasets/photos")
        add += ["--data", folder]
    for flag, value in (("--size", "128"), ("--iters", "300"), ("--out", "out/starry_night_128.h5"),
                        ("--checkpoint-every", "100")):
        if flag not in argv:
            add += [flag, value]
    return add + argv


if __name__ == "__main__":
    argv = sys.argv[1:]
    if not any(a in ("-h", "--help") for a in argv):
        try:
            argv = defaults(argv)
        except NumstyleError as e:
            print(f"examples/train_johnson.py: error: {e}", file=sys.stderr)
            sys.exit(1)
    code = main(["train"] + argv, prog="examples/train_johnson.py")
    if code == 0 and "--out" in argv:
        model = argv[argv.index("--out") + 1]
        photo = sample_image("tubingen.jpg")
        code = main(["stylize", "--model", model, photo, "--out", os.path.splitext(model)[0] + "_tubingen.png"],
                    prog="examples/train_johnson.py")
    sys.exit(code)
