"""The one switch between NumPy (CPU) and CuPy (GPU).

Every op starts with ``xp = get_xp(x)`` and allocates with ``xp.*_like`` or
``xp.empty(..., dtype=x.dtype)``, so dtype and device follow the inputs.
Transfers happen only at the edges (image I/O, the SciPy call) through
:func:`to_device` and :func:`to_host`. This is the only module that imports
CuPy, and only when a GPU is asked for (:func:`cupy_module`).
"""
import importlib
import sys

import numpy as np

from .errors import DeviceError

_cupy = None            # CuPy once imported (tests put their stand-in here)
_cupy_tried = False     # whether cupy_module has tried to import it


def cupy_module():
    """CuPy (the optional ``gpu`` extra), imported on first use; None where it is not installed
    or its CUDA libraries fail to load. Late, because importing CuPy takes about a second that a
    run on the CPU never needs."""
    global _cupy, _cupy_tried
    if _cupy is None and not _cupy_tried:
        _cupy_tried = True
        try:
            _cupy = importlib.import_module("cupy")
        except Exception:  # ImportError, or a CUDA library that fails to load
            _cupy = None
    return _cupy


def loaded_cupy():
    """CuPy if something has imported it already, else None: before that no array is CuPy's."""
    return _cupy if _cupy is not None else sys.modules.get("cupy")


def get_xp(*arrays):
    """Return the array module (numpy or cupy) of the given arrays."""
    cp = loaded_cupy()
    if cp is not None:
        for a in arrays:
            if isinstance(a, cp.ndarray):
                return cp
    return np


def gpu_available():
    """True when CuPy imports and sees at least one CUDA device."""
    if cupy_module() is None:
        return False
    try:
        return _cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def gpu_name():
    """The CUDA device's name and CuPy's version, for benchmark records (None without a GPU)."""
    if not gpu_available():
        return None
    try:
        name = _cupy.cuda.runtime.getDeviceProperties(_cupy.cuda.Device().id)["name"]
        return f"{name.decode() if isinstance(name, bytes) else name}, CuPy {_cupy.__version__}"
    except Exception:  # a partial CuPy install: the record goes on without it
        return "unknown CUDA device"


def check_device(device):
    """Validate a ``--device`` value; raise DeviceError with one line if unusable."""
    if device == "cpu":
        return
    if device != "gpu":
        raise DeviceError(f"unknown device {device!r}: use 'cpu' or 'gpu'")
    if cupy_module() is None:
        raise DeviceError(
            "--device gpu needs CuPy: pip install 'numstyle[gpu]' (or cupy-cudaXXx for your CUDA)")
    if not gpu_available():
        raise DeviceError("--device gpu: CuPy is installed but no CUDA GPU is visible")


def to_device(x, device="cpu"):
    """Move an array to ``device`` ('cpu' -> numpy, 'gpu' -> cupy)."""
    if device == "gpu":
        check_device("gpu")
        return _cupy.asarray(x)
    return to_host(x)


def to_host(x):
    """Return a NumPy array (copying from the GPU when needed)."""
    cp = loaded_cupy()
    if cp is not None and isinstance(x, cp.ndarray):
        return cp.asnumpy(x)
    return np.asarray(x)


def scalar(x):
    """A reduction's value (a loss): a float on NumPy; on a GPU the 0-d device array, unread.

    Reading it with ``float()`` would make the host wait for the GPU in the middle of a step
    (one sync per loss term, each stalling the queue of launches); :func:`to_floats` reads all
    of a step's terms at its end, in one copy.
    """
    return float(x) if get_xp(x) is np else x


def to_floats(values):
    """``{name: float or 0-d device array}`` -> ``{name: float}``, with at most one device -> host
    copy."""
    on_device = [k for k, v in values.items() if not isinstance(v, (int, float))]
    if not on_device:
        return {k: float(v) for k, v in values.items()}
    xp = get_xp(*(values[k] for k in on_device))
    read = dict(zip(on_device, to_host(xp.stack([values[k] for k in on_device]))))  # (K,): one copy
    return {k: float(read[k]) if k in read else float(v) for k, v in values.items()}


def synchronize(x=None):
    """Wait for queued GPU work (no-op on NumPy): needed before reading a clock.

    ``x`` None: whatever the GPU has queued -- if there is a GPU (CuPy installed without one, as
    CI's ``gpucheck`` extra does, must not ask the driver).
    """
    cp = loaded_cupy()      # not imported: nothing was ever queued on a GPU
    if cp is not None and (isinstance(x, cp.ndarray) or (x is None and gpu_available())):
        cp.cuda.Stream.null.synchronize()
