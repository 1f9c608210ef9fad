"""The one switch between NumPy (CPU) and CuPy (GPU).

Every op starts with ``xp = get_xp(x)`` and allocates with ``xp.*_like`` or
``xp.empty(..., dtype=x.dtype)``, so dtype and device follow the inputs.
Transfers happen only at the edges (image I/O, the SciPy call) through
:func:`to_device` and :func:`to_host`. This is the only module that imports
CuPy.
"""
import ctypes
import threading

import numpy as np

from .errors import DeviceError

try:  # CuPy is optional: the `gpu` extra
    import cupy as _cupy
except Exception:  # ImportError, or a CUDA library that fails to load
    _cupy = None


def get_xp(*arrays):
    """Return the array module (numpy or cupy) of the given arrays."""
    if _cupy is not None:
        for a in arrays:
            if isinstance(a, _cupy.ndarray):
                return _cupy
    return np


def gpu_available():
    """True when CuPy imports and sees at least one CUDA device."""
    if _cupy is None:
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
    except Exception:                                   # a partial CuPy install: the record goes on without it
        return "unknown CUDA device"


def check_device(device):
    """Validate a ``--device`` value; raise DeviceError with one line if unusable."""
    if device == "cpu":
        return
    if device != "gpu":
        raise DeviceError(f"unknown device {device!r}: use 'cpu' or 'gpu'")
    if _cupy is None:
        raise DeviceError("--device gpu needs CuPy: pip install 'numstyle[gpu]' (or cupy-cudaXXx for your CUDA)")
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
    if _cupy is not None and isinstance(x, _cupy.ndarray):
        return _cupy.asnumpy(x)
    return np.asarray(x)


def scalar(x):
    """A reduction's value (a loss): a float on NumPy; on a GPU the 0-d device array, unread.

    Reading it with ``float()`` would make the host wait for the GPU in the middle of a step (one
    sync per loss term, each stalling the queue of launches); :func:`to_floats` reads all of a step's
    terms at its end, in one copy.
    """
    return float(x) if get_xp(x) is np else x


def to_floats(values):
    """``{name: float or 0-d device array}`` -> ``{name: float}``, with at most one device -> host copy."""
    on_device = [k for k, v in values.items() if not isinstance(v, (int, float))]
    if not on_device:
        return {k: float(v) for k, v in values.items()}
    xp = get_xp(*(values[k] for k in on_device))
    read = dict(zip(on_device, to_host(xp.stack([values[k] for k in on_device]))))   # (K,): one copy
    return {k: float(read[k]) if k in read else float(v) for k, v in values.items()}


def scatter_add(a, indices, values):
    """``a[indices] += values`` with duplicate indices accumulated.

    Plain fancy-index ``+=`` keeps only one write per duplicate index on both
    NumPy and CuPy; ``np.add.at`` / ``cupyx.scatter_add`` accumulate them all.
    """
    xp = get_xp(a)
    if xp is np:
        np.add.at(a, indices, values)
    else:
        import cupyx  # only reached when CuPy is present

        cupyx.scatter_add(a, indices, values)
    return a


def synchronize(x=None):
    """Wait for queued GPU work (no-op on NumPy): needed before reading a clock."""
    if _cupy is not None and (x is None or isinstance(x, _cupy.ndarray)):
        _cupy.cuda.Stream.null.synchronize()


_scratch = {}


def scratch(name, shape, dtype, like):
    """A reusable work buffer: ``name``'s one flat allocation, grown to the largest size asked.

    Large temporary buffers (im2col columns) freshly allocated on every call
    cost page faults each time; reusing one allocation per purpose avoids
    that. The returned array is only valid until the next call with the same
    ``name``: never keep it.
    """
    xp = get_xp(like)
    dtype = np.dtype(dtype)
    size = int(np.prod(shape))
    key = (name, dtype.str, xp.__name__, threading.get_ident())
    buf = _scratch.get(key)
    if buf is None or buf.size < size:
        _scratch.pop(key, None)                     # free the old one before allocating the larger one
        _scratch[key] = buf = xp.empty(size, dtype=dtype)
    return buf[:size].reshape(shape)


def release_scratch():
    """Free every work buffer (e.g. after a run, to return the memory)."""
    _scratch.clear()


HEAP_KEEP_BYTES = 1 << 30    # malloc's mmap and trim thresholds set by keep_freed_memory()


def keep_freed_memory():
    """Let glibc's malloc keep freed memory for reuse instead of returning it to the OS (CPU speed).

    Every layer allocates tens of MB of fresh arrays (outputs, padded copies).
    By default glibc maps large blocks with ``mmap`` and unmaps them when
    freed, so the next layer's arrays are faulted in again, page by page
    (with transparent huge pages, sometimes compacting memory first). Raising
    the mmap and trim thresholds to ``HEAP_KEEP_BYTES`` makes the heap keep
    freed blocks and hand them out again: 4-7 % off a Gatys step at 256²
    (docs/benchmarks.md). Peak memory is unchanged; memory freed after the
    peak stays with the process until it exits. Raising only the trim
    threshold is much worse: it turns off glibc's adaptive mmap threshold.

    The ``numstyle`` command calls this once at start for its iterative
    commands (``gatys``, ``train``, ``sr-train``, ``experiments``, ``bench``)
    unless a memory budget is given: there the same shapes come back every
    step. Not for one-pass ``stylize``/``upscale``: a 512 -> 2048 px upscale
    measured 3 % slower with it and 8 % higher in peak memory (the heap
    fragments). ``cli.main(argv)`` called from Python never calls it, since a
    long-lived process would keep its peak forever. Returns True when
    applied; False off glibc, where it does nothing.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3                       # glibc's <malloc.h>
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(M_MMAP_THRESHOLD, HEAP_KEEP_BYTES) == 1 and mallopt(M_TRIM_THRESHOLD, HEAP_KEEP_BYTES) == 1
