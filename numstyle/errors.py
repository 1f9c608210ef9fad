"""User-facing errors: the CLI prints their message as one line and exits non-zero; warnings."""
import os
import sys


def warn(line):
    """A one-line warning on stderr, never stdout (which ``--json`` keeps for its object)."""
    print(f"numstyle: warning: {line}", file=sys.stderr)


class NumstyleError(Exception):
    """Base class for errors caused by input (files, flags, weights), not by bugs."""


class ImageError(NumstyleError):
    """A missing, unreadable or unusable image."""


class WeightsError(NumstyleError):
    """Weights that cannot be found, read, or do not fit the network."""


class NonFiniteLossError(NumstyleError):
    """The loss or its gradient became NaN or infinite."""


class LayerError(NumstyleError):
    """An unknown layer name, or an image too small to reach a layer."""


class DeviceError(NumstyleError):
    """The GPU was asked for but CuPy or a GPU is missing."""


class ModelError(NumstyleError):
    """A missing, truncated or wrong-kind model or checkpoint file."""


def os_reason(e):
    """An OSError's reason in one line: the system's words for its errno (``No space left on
    device``), not HDF5's several lines naming a hidden temporary file."""
    if isinstance(e.errno, int) and e.errno > 0:
        try:
            return os.strerror(e.errno)
        except ValueError:
            pass
    text = str(e.strerror or e).strip()
    return text.splitlines()[0] if text else type(e).__name__
