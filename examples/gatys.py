"""Gatys et al. style transfer in one command.

    python examples/gatys.py                      # Tubingen in the style of The Starry Night
    python examples/gatys.py --content me.jpg --style wave.jpg --size 512

Takes the same flags as ``numstyle gatys`` (all optional). With neither
``--content`` nor ``--style`` it uses the sample images, found under
$NUMSTYLE_DATA/images or the user cache, or downloaded once (hash-checked).

Reading on: numstyle/gatys_cli.py (flags -> API), numstyle/gatys.py (the
objective and L-BFGS-B), numstyle/losses.py, numstyle/vgg.py,
numstyle/ops/conv.py.
"""
import sys

from _common import run
from numstyle.cli import main
from numstyle.data import sample_image


def with_sample_images(argv):
    """Add the sample content and style images when the user gave neither."""
    if any(a in ("-h", "--help") for a in argv) or any(a.split("=")[0] in ("--content", "--style") for a in argv):
        return argv
    return ["--content", sample_image("tubingen.jpg"), "--style", sample_image("starry_night.jpg")] + argv


if __name__ == "__main__":
    prog = "examples/gatys.py"
    sys.exit(run(lambda: main(["gatys"] + with_sample_images(sys.argv[1:]), prog=prog), prog))
