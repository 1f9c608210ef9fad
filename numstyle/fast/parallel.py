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

from .. import settings

try:  # the BLAS thread switch; without it, bands run one after another
    from threadpoolctl import ThreadpoolController
except ImportError:  # pragma: no cover - threadpoolctl is a dependency
    ThreadpoolController = None

_state = {"pool": None, "workers": 0, "blas": None}
_lock = threading.Lock()


def cpu_threads():
    """Threads used for bands: ``NUMSTYLE_THREADS`` if set, else the CPU count
    (:mod:`numstyle.settings`)."""
    return settings.get().threads


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


DEVICE_BAND_BYTES = 1 << 30   # on a GPU: bands only bound the work buffers' memory


def split_rows(total, row_bytes, band_bytes, xp=np, halves=False):
    """Bands ``[(r0, r1), ...]`` of ``total`` rows, as even as possible.

    Each band is at most ``band_bytes`` (or one row). On NumPy, unless the whole
    is small (under ``band_bytes / 16``: thread hand-offs would cost more than
    they save), their number is a multiple of :func:`cpu_threads`, so that every
    core gets the same work -- of twice that with ``halves``, for
    :func:`for_each_band_no_overlap`, which runs the even and the odd bands as
    two rounds.

    On a GPU, ``band_bytes`` (sized for a CPU cache) is raised to
    ``DEVICE_BAND_BYTES``: every band costs its own kernel launches, and the
    GPU runs best on the largest pieces, so one band is the rule there.
    """
    if xp is not np:
        band_bytes = max(band_bytes, DEVICE_BAND_BYTES)
    count = -(-total // max(1, band_bytes // max(1, row_bytes)))  # bands needed for the size limit
    threads = cpu_threads() * (2 if halves else 1)
    if xp is np and total >= threads and total * row_bytes * 16 >= band_bytes:
        count = -(-count // threads) * threads  # round up to a multiple of the threads
    count = max(1, min(count, total))
    edges = [total * i // count for i in range(count + 1)]
    return list(zip(edges[:-1], edges[1:]))


# transform-domain bytes per band: a few MB keeps a band in cache (measured best)
WINOGRAD_BAND_BYTES = 4 << 20


def winograd_bands(th, tw, a, channels, N, dtype, xp=np):
    """Split ``th`` Winograd tile rows into bands whose (a^2, N, channels, rows*tw) buffer fits
    ``WINOGRAD_BAND_BYTES`` (:mod:`numstyle.fast.winograd`, :mod:`numstyle.fast.gpu_winograd`)."""
    per_row = a * a * N * channels * tw * dtype.itemsize
    return split_rows(th, per_row, WINOGRAD_BAND_BYTES, xp)


def bands_take_the_cores():
    """Keep BLAS on one thread for the rest of the process.

    When bands run on several cores, they already put every core to work,
    each GEMM on one thread. A GEMM outside the bands (a Gram matrix, a layer
    too small to split) would use all of BLAS's threads -- and OpenBLAS's
    threads then keep spinning for a while after each call, competing with
    the next layer's bands for the same cores. Measured: a Gatys step at 256²
    0.60 s instead of 0.68 s, stylise 256² 0.20 s instead of 0.25 s
    (docs/benchmarks.md). With ``NUMSTYLE_THREADS=1`` on a machine with more
    cores, one thread means one core, BLAS included: two trainings side by
    side, each with BLAS on both cores, took 9 s per iteration instead of ~3.
    The ``numstyle`` command calls this once; returns True when applied.
    """
    if ThreadpoolController is None or (cpu_threads() < 2 and (os.cpu_count() or 1) < 2):
        return False
    _pool_and_blas(cpu_threads())[1].limit(limits=1,
                                           user_api="blas")  # not a context: stays in force
    return True


MATMUL_MIN_FLOPS = 1 << 24   # smaller products run as one call: a thread hand-off would cost more
LONG = 4                     # a dimension this many times the others' is the one split (measured)


def matmul(a, b, xp=np):
    """``a @ b`` for stacked matrices ``(..., n, k) @ (..., k, m)``, on every core.

    For the products outside the convolutions (Gram matrices and their gradients): with BLAS on
    one thread (:func:`bands_take_the_cores`) they would otherwise use one core. Each core takes
    a band of the longest dimension, so that it reads only its share of the larger operand:

    - ``k`` (a Gram matrix (S1): ``k`` is the pixels) -- each core multiplies its columns of
      ``a`` by its rows of ``b``, and the partial products are summed;
    - ``m`` (a Gram gradient (S2): ``m`` is the pixels) -- each core writes its columns;
    - else the result's rows.

    A band of rows would make every core pack the whole of ``b``. Small products, CuPy and one
    thread: plain ``a @ b``.
    """
    n, k, m = a.shape[-2], a.shape[-1], b.shape[-1]
    batch = int(np.prod(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]), dtype=np.int64))
    threads = cpu_threads()
    if xp is not np or threads < 2 or 2 * batch * n * k * m < MATMUL_MIN_FLOPS:
        return a @ b
    shape = np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) + (n, m)
    dtype = np.result_type(a, b)
    if k >= LONG * max(n, m):                              # bands of k: partial products, summed
        parts = xp.empty((threads,) + shape, dtype=dtype)                     # (T, ..., n, m)

        def partial(i):
            s = slice(k * i // threads, k * (i + 1) // threads)
            xp.matmul(a[..., s], b[..., s, :], out=parts[i])  # (..., n, k/T) @ (..., k/T, m)

        for_each_band(partial, list(range(threads)), xp)
        return parts.sum(axis=0)                                                 # (..., n, m)
    columns = m >= LONG * max(n, k)
    out = xp.empty(shape, dtype=dtype)

    def band(cut):
        s = slice(*cut)
        if columns:
            xp.matmul(a, b[..., s], out=out[..., s])       # (..., n, k) @ (..., k, cols)
        else:
            xp.matmul(a[..., s, :], b, out=out[..., s, :])  # (..., rows, k) @ (..., k, m)

    total = m if columns else n
    edges = [total * i // threads for i in range(threads + 1)]
    for_each_band(band, [e for e in zip(edges[:-1], edges[1:]) if e[0] < e[1]], xp)
    return out


def for_each_band_no_overlap(work, bands, xp=np):
    """:func:`for_each_band` for bands that share rows with their neighbours only: even bands, then
    odd."""
    for_each_band(work, bands[0::2], xp)
    for_each_band(work, bands[1::2], xp)


_local = threading.local()


def _in_worker():
    """True inside a band worker: a nested op runs its bands serially instead of waiting on the
    pool."""
    return getattr(_local, "worker", False)


def _mark_worker():
    _local.worker = True


def _pool_and_blas(threads):
    """The band thread pool (grown when more threads are asked for) and the BLAS controller, made
    once."""
    with _lock:
        if _state["workers"] < threads:
            if _state["pool"] is not None:
                _state["pool"].shutdown(wait=True)
            _state["pool"] = ThreadPoolExecutor(threads, thread_name_prefix="numstyle-band",
                                                initializer=_mark_worker)
            _state["workers"] = threads
        if _state["blas"] is None:
            _state["blas"] = ThreadpoolController()      # finds the loaded BLAS once (costly)
        return _state["pool"], _state["blas"]
