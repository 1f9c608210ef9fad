"""Stylise a photo in one forward pass with a trained network.

    python examples/stylize.py                                # a shipped model on the sample photo
    python examples/stylize.py --model out/mystyle.h5 me.jpg  # your own model and photos

Takes the flags of ``numstyle stylize``. With no input it uses the sample
photo (Tubingen) and the first model shipped in weights/.
"""
import os
import sys

from _common import run
from numstyle.cli import main
from numstyle.data import sample_image
from numstyle.errors import NumstyleError
from numstyle.models import BUILTIN_DIR


def shipped_style_models():
    if not os.path.isdir(BUILTIN_DIR):
        return []
    return sorted(f[:-3] for f in os.listdir(BUILTIN_DIR)
                  if f.endswith(".h5") and not f.startswith("sr_"))


# flags of `numstyle stylize` that take a value
VALUED = ("--model", "--out", "--size", "--deflicker", "--preserve-colors", "--max-memory",
          "--tile", "--device")


def has_inputs(argv):
    """Whether any positional INPUT was given."""
    return any(not a.startswith("-") and (i == 0 or argv[i - 1] not in VALUED)
               for i, a in enumerate(argv))


def with_defaults(argv):
    """Add the first shipped model and the sample photo where not given."""
    if any(a in ("-h", "--help") for a in argv):
        return argv
    if not any(a.split("=")[0] == "--model" for a in argv):
        shipped = shipped_style_models()
        if not shipped:
            raise NumstyleError("no model shipped in weights/; train one with "
                                "examples/train_johnson.py and pass --model")
        argv = ["--model", shipped[0]] + argv
    if not has_inputs(argv):
        argv = argv + [sample_image("tubingen.jpg")]
    return argv


if __name__ == "__main__":
    prog = "examples/stylize.py"
    sys.exit(run(lambda: main(["stylize"] + with_defaults(sys.argv[1:]), prog=prog), prog))
