"""What the commands share: the parser with one-line errors, the help format, the argparse types.

Every ``type=`` here turns a bad value into one line, ``numstyle CMD: error: ...``.
"""
import argparse
import math
import os
import sys

from ..config import WIDTHS
from ..errors import NumstyleError
from ..tiles import parse_memory


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump)."""

    def error(self, message):
        if message.endswith("expected one argument"):   # also argparse's word for '--x -2GB'
            message += " (a value that starts with '-' is given as --FLAG=VALUE)"
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        sys.exit(2)


class HelpFormatter(argparse.HelpFormatter):
    """Shows each flag's default, unless its help already says it."""

    def __init__(self, prog):
        super().__init__(prog, width=100, max_help_position=32)

    def _get_help_string(self, action):
        text = action.help or ""
        d = action.default
        if ("default" in text or d is None or d is False or d == [] or d == argparse.SUPPRESS
                or action.nargs == 0):
            return text
        shown = ",".join(map(str, d)) if isinstance(d, (list, tuple)) else d
        return f"{text} (default: {shown})"


def finite_float(text):
    """argparse type: a finite float (rejects nan and inf)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"must be finite, got {text!r}")
    return v


def non_negative(text):
    v = finite_float(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return v


def positive_int(text):
    return _int_at_least(text, 1)


def non_negative_int(text):
    return _int_at_least(text, 0)


def _int_at_least(text, least):
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if v < least:
        raise argparse.ArgumentTypeError(f"must be >= {least}, got {text!r}")
    return v


def port_number(text):
    """argparse type: a TCP port, 0 (any free port) to 65535."""
    v = _int_at_least(text, 0)
    if v > 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535, got {text!r}")
    return v


def positive_float(text):
    v = finite_float(text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return v


def int_list(text):
    return [positive_int(t) for t in name_list(text)]


def three_widths(text):
    """argparse type for ``--width``: the channels of the three down-sampling convolutions, or a
    name of config.WIDTHS (``slim``: 16,32,64)."""
    if text.strip() in WIDTHS:
        return list(WIDTHS[text.strip()])
    widths = int_list(text)
    if len(widths) != 3:
        raise argparse.ArgumentTypeError(f"give three channel counts, e.g. 32,64,128; got {text!r}")
    return widths


def name_list(text):
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"give at least one value, got {text!r}")
    return names


def layer_list(text):
    """argparse type for ``--style-layers``: names, each once (a repeat would count its loss
    twice, and the Gatys objective reads each layer's features once)."""
    names = name_list(text)
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise argparse.ArgumentTypeError(f"{', '.join(repeated)} named twice: name each layer "
                                         "once (weight it with --style-layer-weights)")
    return names


def weight_list(text):
    """argparse type for ``--style-layer-weights``: finite weights >= 0 (a negative one would
    reward the opposite of the style: the loss falls without bound)."""
    return [non_negative(t) for t in name_list(text)]


def memory_size(text):
    """argparse type: '2GB', '800MB' -> bytes."""
    try:
        return parse_memory(text)
    except NumstyleError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_tiling_arguments(p):
    """``--max-memory`` and ``--tile``: large images in overlapping tiles (numstyle/tiles.py)."""
    p.add_argument(
        "--max-memory", type=memory_size, metavar="SIZE",
        help="keep the process under SIZE (e.g. 2GB): large images run in overlapping tiles")
    p.add_argument("--tile", type=positive_int, metavar="N",
                   help="run in tiles of about N px (core side; raised to the network's margin "
                        "when below it, since a smaller tile would compute mostly margin)")


def file_out(out, default):
    """The image a one-output command writes: ``out``; ``default`` without one; inside ``out``
    under ``default``'s name when ``out`` names a folder: an existing one, or a new one given
    without an extension (``--out results``, as ``stylize`` takes it) or with a trailing slash."""
    if not out:
        return default
    if (out.endswith(("/", os.sep)) or os.path.isdir(out)
            or not os.path.splitext(os.path.basename(out))[1]):
        return os.path.join(out, os.path.basename(default))
    return out


def default_out(content, styles, folder="out"):
    """``out/<content>_<style>.png`` from the input file names."""
    stems = [
        os.path.splitext(os.path.basename(p))[0]
        for p in ([content] if content else []) + list(styles or [])
    ]
    return os.path.join(folder, "_".join(stems or ["numstyle"]) + ".png")


def add_bit_depth_argument(p):
    """``--bit-depth 8|16``: 16 writes 16-bit PNG or TIFF (the float result's precision kept)."""
    p.add_argument("--bit-depth", type=int, choices=[8, 16], default=8,
                   help="bits per sample of the written image: 16 for .png and .tif/.tiff (the "
                   "input's ICC profile is kept either way)")


def add_common_arguments(p):
    """``--device``, ``--reference`` and ``--no-progress``: on every command that computes."""
    p.add_argument("--device", choices=["cpu", "gpu"], default="cpu",
                   help="cpu (NumPy) or gpu (CuPy)")
    p.add_argument(
        "--reference", action="store_true",
        help="run the reference engine only, no fast path (as NUMSTYLE_REFERENCE=1): the code "
        "of the book, slower")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
