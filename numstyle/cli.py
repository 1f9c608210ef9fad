"""The ``numstyle`` command: one subcommand per job, each a thin layer over the library.

Every error caused by input (files, flags, weights, NaNs) is printed as one
line, ``numstyle: error: ...``, with a non-zero exit -- never a traceback.
The subcommands live in :mod:`numstyle.commands`; nothing in the library
imports them.
"""
import contextlib
import os
import signal
import sys
import warnings

import numpy as np

from . import settings
from .commands import bench, experiments, export, gatys, johnson, listing, sheet, sr
from .commands.args import Parser
from .errors import NumstyleError, os_reason
from .fast.memory import keep_freed_memory
from .fast.parallel import bands_take_the_cores
from .interrupt import exit_status, ignore_signals, signals_interrupt, stopped_word


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
    export.add_parser(sub)
    sheet.add_parser(sub)
    listing.add_parser(sub)
    return parser


def _version():
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("numstyle")
    except PackageNotFoundError:                           # run from a source tree (PYTHONPATH=.)
        return "(not installed)"


def main(argv=None, prog="numstyle"):
    """Entry point of the ``numstyle`` command; returns the exit status.

    SIGTERM is handled as Ctrl-C is (:mod:`numstyle.interrupt`): exit status 128 + the signal's
    number. Warnings are one line each; NumPy's floating-point warnings are off, since every
    result is checked for NaN and infinity and an error says so in one line.
    """
    args = build_parser(prog).parse_args(argv)
    try:
        with signals_interrupt(), _one_line_warnings(prog), np.errstate(
                over="ignore", invalid="ignore", divide="ignore"), _stdout_outlives_its_reader():
            return _run(args, argv, prog)
    finally:
        if getattr(args, "reference", False):
            settings.reload()  # cli.main called from Python: leave no trace
        if argv is None:  # the process ends now: a late Ctrl-C ends it quietly, no traceback
            signal.signal(signal.SIGINT, signal.SIG_DFL)


def _run(args, argv, prog):
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
    except OSError as e:  # a disk that filled up or went away mid-write
        where = f": {e.filename}" if e.filename else ""
        print(f"{prog}: error: {os_reason(e)}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM (numstyle.interrupt)
        with ignore_signals():  # stopping already: a second signal must not cut this line
            print(f"{prog}: {stopped_word(e)}", file=sys.stderr)
        return exit_status(e)


@contextlib.contextmanager
def _one_line_warnings(prog):
    """Each warning (Pillow's DecompressionBombWarning, ...) as one line, ``prog: warning: ...``,
    not Python's two lines with the source line that warned."""
    def show(message, category, filename, lineno, file=None, line=None):
        text = (str(message).strip().splitlines() or [category.__name__])[0]
        print(f"{prog}: warning: {text}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


class _Stdout:
    """``sys.stdout`` for one command: when its reader leaves (``numstyle ... | head -1``), the
    printing stops, not the work -- the image is still written."""

    def __init__(self, stream):
        self._stream, self._gone = stream, False

    def write(self, text):
        if not self._gone:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self._leave()
        return len(text)

    def flush(self):
        if not self._gone:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._leave()

    def _leave(self):
        self._gone = True
        try:  # what is left in the buffer goes to /dev/null, so that exit's flush is quiet
            os.dup2(os.open(os.devnull, os.O_WRONLY), self._stream.fileno())
        except (OSError, ValueError, AttributeError):
            pass

    def __getattr__(self, name):
        return getattr(self._stream, name)


@contextlib.contextmanager
def _stdout_outlives_its_reader():
    real = sys.stdout
    sys.stdout = guarded = _Stdout(real)
    try:
        yield
    finally:
        guarded.flush()  # now, through the guard: not in the exit's flush, which would complain
        sys.stdout = real


if __name__ == "__main__":
    sys.exit(main())
