"""Bands of one op on every CPU core.

The convolutions work on an image in bands of rows (so that each band's
buffers stay in cache). On NumPy, a band's work is array loops and a BLAS
GEMM, and both release Python's GIL: two threads working on two bands really
run at once. That parallelises what BLAS alone does not -- im2col copies and
the Winograd transforms, which would otherwise run on one core while the
other waits.

While bands run in parallel each GEMM runs on one BLAS thread (two bands x
two BLAS threads would oversubscribe two cores); outside, BLAS keeps all its
threads. The BLAS thread count is set through ``threadpoolctl``. On CuPy, or
with one core (``NUMSTYLE_THREADS=1``), bands run one after another, exactly
as a plain loop.

Bands must be independent: each writes only its own output rows. Where
neighbouring bands write shared rows (an overlap-add), run the even and the
odd bands as two calls (:func:`for_each_band_no_overlap`).
"""
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

try:  # the BLAS thread switch; without it, bands run one after another
    from threadpoolctl import ThreadpoolController
except ImportError:  # pragma: no cover - threadpoolctl is a dependency
    ThreadpoolController = None

_state = {"pool": None, "workers": 0, "blas": None}
_lock = threading.Lock()


def cpu_threads():
    """Threads used for bands: ``NUMSTYLE_THREADS`` if set, else the CPU count."""
    value = os.environ.get("NUMSTYLE_THREADS")
    return max(1, int(value)) if value else (os.cpu_count() or 1)


def for_each_band(work, bands, xp=np):
    """Call ``work(band)`` for every band, on all cores when ``xp`` is NumPy.

    Exceptions raised by ``work`` propagate to the caller.
    """
    threads = min(cpu_threads(), len(bands))
    if xp is not np or threads < 2 or ThreadpoolController is None or _in_worker():
        for band in bands:
            work(band)
        return
    pool, blas = _pool_and_blas(threads)
    with blas.limit(limits=1, user_api="blas"):
        for _ in pool.map(work, bands):                  # consume: re-raises a band's exception
            pass


def for_each_band_no_overlap(work, bands, xp=np):
    """:func:`for_each_band` for bands that share rows with their neighbours only: even bands, then odd."""
    for_each_band(work, bands[0::2], xp)
    for_each_band(work, bands[1::2], xp)


_local = threading.local()


def _in_worker():
    """True inside a band worker: a nested op runs its bands serially instead of waiting on the pool."""
    return getattr(_local, "worker", False)


def _mark_worker():
    _local.worker = True


def _pool_and_blas(threads):
    """The band thread pool (grown when more threads are asked for) and the BLAS controller, made once."""
    with _lock:
        if _state["workers"] < threads:
            if _state["pool"] is not None:
                _state["pool"].shutdown(wait=True)
            _state["pool"] = ThreadPoolExecutor(threads, thread_name_prefix="numstyle-band", initializer=_mark_worker)
            _state["workers"] = threads
        if _state["blas"] is None:
            _state["blas"] = ThreadpoolController()      # finds the loaded BLAS once (costly)
        return _state["pool"], _state["blas"]
