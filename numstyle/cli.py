"""The ``numstyle`` command: one subcommand per job, each a thin layer over the library.

Every error caused by input (files, flags, weights, NaNs) is printed as one
line, ``numstyle: error: ...``, with a non-zero exit -- never a traceback.
The subcommands live in :mod:`numstyle.commands`; nothing in the library
imports them.
"""
import os
import sys

from . import settings
from .commands import bench, experiments, gatys, johnson, sr
from .commands.args import Parser
from .errors import NumstyleError
from .fast.memory import keep_freed_memory
from .fast.parallel import bands_take_the_cores


def build_parser(prog="numstyle"):
    parser = Parser(prog=prog, description="Neural style transfer from scratch on NumPy/CuPy.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    gatys.add_parser(sub)
    johnson.add_parsers(sub)
    sr.add_parsers(sub)
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
        settings.reload()                                  # the environment, read once for this run
        if getattr(args, "reference", False):
            settings.update(reference=True)                # --reference: the book's engine only
        if not settings.get().reference:
            bands_take_the_cores()  # CPU: cores go to bands, BLAS stays on one thread
            if argv is None and getattr(args, "iterative", False) and not (
                    getattr(args, "max_memory", None) or getattr(args, "tile", None)):
                keep_freed_memory(
                )  # repeated same-shape steps reuse freed heap memory: fewer page faults
        return args.run(args) or 0
    except NumstyleError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 1
    except MemoryError:
        print(f"{prog}: error: out of memory: try a smaller --size", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `numstyle ... | head`: the reader left; stdout to
        os.dup2(os.open(os.devnull, os.O_WRONLY),
                sys.stdout.fileno())  # /dev/null so exit's flush is quiet
        return 1
    except OSError as e:  # a disk that filled up or went away mid-write
        where = f": {e.filename}" if e.filename else ""
        print(f"{prog}: error: {e.strerror or e}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    finally:
        if getattr(args, "reference", False):
            settings.reload()  # cli.main called from Python: leave no trace


if __name__ == "__main__":
    sys.exit(main())
