"""The engine's settings, read from the environment once into one object.

============================  =======  ==================================================
variable                      default  meaning
============================  =======  ==================================================
``NUMSTYLE_REFERENCE``        0        1: run the reference engine only (no fast path)
``NUMSTYLE_THREADS``          cores    threads for the CPU fast paths' bands (1: one core)
``NUMSTYLE_FUSED``            1        0: no fused CUDA kernels on the GPU
``NUMSTYLE_WINOGRAD``         1        0: no Winograd convolutions, on either device
``NUMSTYLE_COMPILED``         1        0: no compiled (Numba) fast paths, where Numba is installed
``NUMSTYLE_SCHEDULER``        (none)   a Dask scheduler's address: batches run on its cluster
============================  =======  ==================================================

Everything else asks :func:`get` -- never ``os.environ`` -- so a setting means
the same thing everywhere in a run. ``--reference`` on a command is
:func:`update` ``(reference=True)``; tests that change the environment call
:func:`reload`.
"""
import os
from dataclasses import dataclass, replace

from .errors import NumstyleError


@dataclass(frozen=True)
class Settings:
    """One run's engine settings (see the module's table)."""

    reference: bool
    threads: int
    fused: bool
    winograd: bool
    compiled: bool = True
    scheduler: str = ""


def _threads(value):
    if not value:
        return os.cpu_count() or 1
    if not value.strip().isdigit() or int(value) < 1:
        raise NumstyleError(f"NUMSTYLE_THREADS={value}: give a whole number of threads, 1 or more")
    return int(value)


def _read():
    env = os.environ.get
    return Settings(reference=env("NUMSTYLE_REFERENCE", "0") not in ("", "0"),
                    threads=_threads(env("NUMSTYLE_THREADS")),
                    fused=env("NUMSTYLE_FUSED", "1") != "0",
                    winograd=env("NUMSTYLE_WINOGRAD", "1") != "0",
                    compiled=env("NUMSTYLE_COMPILED", "1") != "0",
                    scheduler=env("NUMSTYLE_SCHEDULER", "").strip())


_current = []


def get():
    """The settings, read from the environment at the first call."""
    if not _current:
        _current.append(_read())
    return _current[0]


def update(**changes):
    """Change settings for the rest of the run, e.g. ``update(reference=True)``; returns the new
    ones."""
    _current[:] = [replace(get(), **changes)]
    return _current[0]


def reload():
    """Read the environment again (tests that set a variable)."""
    _current.clear()
    return get()
