"""The ``numstyle`` command: one subcommand per job, a thin layer over the API.

Every error caused by input (files, flags, weights, NaNs) is printed as one
line, ``numstyle: error: ...``, with a non-zero exit -- never a traceback.
"""
import argparse
import math
import os
import sys
import time

from .backend import keep_freed_memory
from .errors import NumstyleError
from .parallel import bands_take_the_cores


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump)."""

    def error(self, message):
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        sys.exit(2)


class HelpFormatter(argparse.HelpFormatter):
    """Shows each flag's default, unless its help already says it."""

    def __init__(self, prog):
        super().__init__(prog, width=100, max_help_position=32)

    def _get_help_string(self, action):
        text = action.help or ""
        d = action.default
        if "default" in text or d is None or d is False or d == [] or d == argparse.SUPPRESS or action.nargs == 0:
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


def positive_float(text):
    v = finite_float(text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return v


def int_list(text):
    return [positive_int(t) for t in name_list(text)]


def name_list(text):
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"give at least one value, got {text!r}")
    return names


def float_list(text):
    return [finite_float(t) for t in name_list(text)]


def memory_size(text):
    """argparse type: '2GB', '800MB' -> bytes."""
    from .tiles import parse_memory

    try:
        return parse_memory(text)
    except NumstyleError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_tiling_arguments(p):
    """``--max-memory`` and ``--tile``: large images in overlapping tiles (numstyle/tiles.py)."""
    p.add_argument("--max-memory", type=memory_size, metavar="SIZE",
                   help="keep the process under SIZE (e.g. 2GB): large images run in overlapping tiles")
    p.add_argument("--tile", type=positive_int, metavar="N", help="run in tiles of about N px (core side)")


def build_parser(prog="numstyle"):
    from . import bench, experiments, gatys_cli, johnson_cli, sr_cli

    parser = _Parser(prog=prog, description="Neural style transfer from scratch on NumPy/CuPy.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    gatys_cli.add_parser(sub)
    johnson_cli.add_parsers(sub)
    sr_cli.add_parsers(sub)
    bench.add_parser(sub)
    experiments.add_parser(sub)
    return parser


def _version():
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("numstyle")
    except PackageNotFoundError:                           # run from a source tree (PYTHONPATH=.)
        return "(not installed)"


def main(argv=None, prog="numstyle"):
    """Entry point of the ``numstyle`` command; returns the exit status."""
    args = build_parser(prog).parse_args(argv)
    try:
        bands_take_the_cores()                             # CPU: cores go to bands, BLAS stays on one thread
        if argv is None and getattr(args, "iterative", False) and not (getattr(args, "max_memory", None)
                                                                  or getattr(args, "tile", None)):
            keep_freed_memory()  # the command's repeated same-shape steps reuse freed heap memory: fewer page faults
        return args.run(args) or 0
    except NumstyleError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 1
    except MemoryError:
        print(f"{prog}: error: out of memory: try a smaller --size", file=sys.stderr)
        return 1
    except BrokenPipeError:                                # `numstyle ... | head`: the reader left; stdout to
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())   # /dev/null so exit's flush is quiet
        return 1
    except OSError as e:                                   # a disk that filled up or went away mid-write
        where = f": {e.filename}" if e.filename else ""
        print(f"{prog}: error: {e.strerror or e}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


def elapsed(start):
    return time.perf_counter() - start


def default_out(content, styles, folder="out"):
    """``out/<content>_<style>.png`` from the input file names."""
    stems = [os.path.splitext(os.path.basename(p))[0] for p in ([content] if content else []) + list(styles or [])]
    return os.path.join(folder, "_".join(stems or ["numstyle"]) + ".png")


if __name__ == "__main__":
    sys.exit(main())
