"""Stylise a photo in one forward pass with a trained network.

    python examples/stylize.py                                # a shipped model on the sample photo
    python examples/stylize.py --model out/mystyle.h5 me.jpg  # your own model and photos

Takes the flags of ``numstyle stylize``. With no input it uses the sample
photo (Tubingen) and the first model shipped in weights/.
"""
import os
import sys

from numstyle.cli import main
from numstyle.data import sample_image
from numstyle.models import BUILTIN_DIR


def shipped_style_models():
    if not os.path.isdir(BUILTIN_DIR):
        return []
    return sorted(f[:-3] for f in os.listdir(BUILTIN_DIR) if f.endswith(".h5") and not f.startswith("sr_"))


VALUED = ("--model", "--out", "--size", "--device")   # flags of `numstyle stylize` that take a value


def has_inputs(argv):
    """Whether any positional INPUT was given."""
    return any(not a.startswith("-") and (i == 0 or argv[i - 1] not in VALUED) for i, a in enumerate(argv))


if __name__ == "__main__":
    argv = sys.argv[1:]
    if not any(a in ("-h", "--help") for a in argv):
        if "--model" not in argv:
            shipped = shipped_style_models()
            if not shipped:
                print("examples/stylize.py: error: no model shipped in weights/; train one with "
                      "examples/train_johnson.py and pass --model", file=sys.stderr)
                sys.exit(1)
            argv = ["--model", shipped[0]] + argv
        if not has_inputs(argv):
            argv = argv + [sample_image("tubingen.jpg")]
    sys.exit(main(["stylize"] + argv, prog="examples/stylize.py"))
