"""Memory habits of the CPU fast paths: reused work buffers, and a heap that keeps freed blocks.

Neither changes a result; both change how often the operating system is asked
for memory (page faults are a measurable part of a step at these sizes).
"""
import ctypes
import threading

import numpy as np

from ..backend import get_xp

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
        _scratch.pop(key, None)  # free the old one before allocating the larger one
        _scratch[key] = buf = xp.empty(size, dtype=dtype)
    return buf[:size].reshape(shape)


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
    return mallopt(M_MMAP_THRESHOLD, HEAP_KEEP_BYTES) == 1 and mallopt(
        M_TRIM_THRESHOLD, HEAP_KEEP_BYTES) == 1
