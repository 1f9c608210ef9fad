"""numstyle.parallel: bands on threads give the serial result, errors surface, nesting is safe."""
import threading

import numpy as np
import pytest

from numstyle import naive, settings
from numstyle.fast import parallel
from numstyle.fast import conv, winograd


def test_every_band_runs_once_on_the_pool(monkeypatch):
    monkeypatch.setenv("NUMSTYLE_THREADS", "2")
    settings.reload()
    seen, names = [], set()

    def work(band):
        seen.append(band)
        names.add(threading.current_thread().name)

    parallel.for_each_band(work, [(i, i + 1) for i in range(7)])
    assert sorted(seen) == [(i, i + 1) for i in range(7)]
    assert all(name.startswith("numstyle-band") for name in names), names


def test_one_thread_runs_bands_in_order_on_the_caller(monkeypatch):
    monkeypatch.setenv("NUMSTYLE_THREADS", "1")
    settings.reload()
    seen = []
    parallel.for_each_band(lambda band: seen.append((band, threading.current_thread().name)),
                           [3, 1, 2])
    assert seen == [(3, threading.current_thread().name), (1, threading.current_thread().name),
                    (2, threading.current_thread().name)]


def test_a_band_error_reaches_the_caller(monkeypatch):
    monkeypatch.setenv("NUMSTYLE_THREADS", "2")
    settings.reload()

    def work(band):
        if band == 2:
            raise ValueError("band 2 failed")

    with pytest.raises(ValueError, match="band 2 failed"):
        parallel.for_each_band(work, [0, 1, 2, 3])


def test_nested_bands_run_serially_without_deadlock(monkeypatch):
    monkeypatch.setenv("NUMSTYLE_THREADS", "2")
    settings.reload()
    out = np.zeros((4, 4))

    def inner(ij):
        out[ij] += 1

    parallel.for_each_band(lambda i: parallel.for_each_band(inner, [(i, j) for j in range(4)]),
                           range(4))
    np.testing.assert_array_equal(out, 1)


def test_no_overlap_runs_neighbours_in_separate_rounds(monkeypatch):
    # bands 0..5 where band k and k+1 share a row: no two neighbours may be in flight together
    monkeypatch.setenv("NUMSTYLE_THREADS", "2")
    settings.reload()
    current = []
    parallel.for_each_band_no_overlap(current.append, list(range(6)))
    # the even bands all run before any odd band
    evens, odds = current[:3], current[3:]
    assert sorted(evens) == [0, 2, 4] and sorted(odds) == [1, 3, 5], current


@pytest.mark.parametrize("m", [2, 4])
def test_threaded_winograd_equals_serial(m, rng, monkeypatch):
    # many bands (one tile row each), threaded vs serial: the same numbers up to
    # float32 summation order
    monkeypatch.setattr(parallel, "WINOGRAD_BAND_BYTES", 1)
    x = rng.standard_normal((2, 5, 23, 17)).astype(np.float32)
    w = rng.standard_normal((6, 5, 3, 3)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    d = rng.standard_normal((2, 6, 23, 17)).astype(np.float32)
    results = []
    for threads in ("1", "2"):
        monkeypatch.setenv("NUMSTYLE_THREADS", threads)
        settings.reload()
        y, cache = winograd.winograd_conv3x3_forward(x, w, b, winograd.transform_kernel(w, m))
        results.append((y,) + winograd.winograd_conv3x3_backward(d, cache))
    for serial, threaded, name in zip(*results, ("y", "dx", "dw", "db")):
        np.testing.assert_allclose(threaded, serial, rtol=1e-5, atol=1e-5, err_msg=f"{name} m={m}")


# 1 row per band (thin: serial); 1-2 rows; 9 rows
@pytest.mark.parametrize("band_bytes", [1, 6000, 400000])
@pytest.mark.parametrize("F, C, k, stride", [(5, 4, 3, 2), (3, 8, 9, 1), (8, 3, 9, 1)])
def test_threaded_im2col_conv_equals_serial(F, C, k, stride, band_bytes, rng, monkeypatch):
    # forward (CV1 or CV5-read-backwards), input gradient by col2im (CV2) or (CV5),
    # weight gradient (CV3)/(CV6)
    monkeypatch.setattr(conv, "BAND_BYTES", band_bytes)
    x = rng.standard_normal((2, C, 19, 21)).astype(np.float32)
    w = rng.standard_normal((F, C, k, k)).astype(np.float32)
    results = []
    for threads in ("1", "2"):
        monkeypatch.setenv("NUMSTYLE_THREADS", threads)
        settings.reload()
        y, cache = conv.conv2d_forward(x, w, None, stride, k // 2)
        d = np.linspace(-1, 1, y.size, dtype=np.float32).reshape(y.shape)
        results.append((y,) + conv.conv2d_backward(d, cache))
    for serial, threaded, name in zip(*results, ("y", "dx", "dw", "db")):
        np.testing.assert_allclose(threaded, serial, rtol=1e-5, atol=1e-4,
                                   err_msg=f"{name} F={F} C={C} k={k}")


def test_col2im_bands_in_parallel_when_neighbours_keep_them_apart(rng, monkeypatch):
    # stride-2 3x3 input gradient in one-row bands: band k+1 (2 padded rows)
    # separates k and k+2's windows
    monkeypatch.setattr(conv, "BAND_BYTES", 1)
    monkeypatch.setenv("NUMSTYLE_THREADS", "2")
    settings.reload()
    calls = []
    real = parallel.for_each_band_no_overlap
    monkeypatch.setattr(conv, "for_each_band_no_overlap",
                        lambda *a: (calls.append(len(a[1])), real(*a)))
    dout = rng.standard_normal((1, 5, 8, 8)).astype(np.float32)
    w = rng.standard_normal((5, 4, 3, 3)).astype(np.float32)
    dx = conv.conv2d_input_grad(dout, w, (1, 4, 16, 16), 2, 1)
    ref = naive.stamp(dout, w, (1, 4, 16, 16), 2, 1)                  # (CV2) as loops
    assert calls == [8], calls
    np.testing.assert_allclose(dx, ref, rtol=1e-4, atol=1e-4)


def test_keep_freed_memory_is_applied_on_glibc():
    # mallopt returns 1 for each accepted setting; off glibc the call is a no-op that says so
    # (in a child process: the setting would outlive this test and change later
    # tests' memory figures)
    import platform
    import subprocess
    import sys

    code = "from numstyle.fast.memory import keep_freed_memory; print(keep_freed_memory())"
    applied = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True).stdout.strip()
    assert applied == str(platform.libc_ver()[0] == "glibc"), \
        f"applied={applied}, libc={platform.libc_ver()}"


@pytest.mark.parametrize("shape_a,shape_b", [((2, 37, 300), (2, 300, 37)),      # bands of k
                                             ((1, 64, 4096), (1, 4096, 64)),    # (a Gram)
                                             ((1, 64, 64), (1, 64, 4096)),      # of columns
                                             ((2, 50, 60), (1, 60, 70)),        # of rows,
                                             ((1, 1, 20), (1, 20, 30)),         # one row
                                             ((3, 5, 7), (3, 7, 2))])           # one call
def test_banded_matmul_equals_matmul(shape_a, shape_b, rng, monkeypatch):
    # bands of k (partial products summed), of columns or of rows across the pool (or, for the
    # small case, one plain call) give a @ b to float32 round-off
    monkeypatch.setenv("NUMSTYLE_THREADS", "2")
    settings.reload()
    monkeypatch.setattr(parallel, "MATMUL_MIN_FLOPS", 1000)
    a = rng.standard_normal(shape_a).astype(np.float32)
    b = rng.standard_normal(shape_b).astype(np.float32)
    np.testing.assert_allclose(parallel.matmul(a, b), a @ b, rtol=1e-5, atol=1e-4,
                               err_msg=f"{shape_a} @ {shape_b}")


@pytest.mark.parametrize("total,row_bytes,band_bytes,halves,expected", [
    (32, 1 << 20, 8 << 20, False, 4),   # 4 bands of 8 rows fit the limit; already a multiple of 2
    (27, 1 << 20, 8 << 20, False, 4),   # 4 bands needed (7, 7, 6, 7 rows), not 8 + 8 + 8 + 3
    (10, 1 << 20, 64 << 20, False, 2),  # fits in one band, but two cores: two bands of 5
    (10, 1 << 20, 64 << 20, True, 4),   # even and odd bands as two rounds:
                                        # two bands per core each round
    (40, 1 << 20, 8 << 20, True, 8),    # 5 bands needed: 8, so that neither round
                                        # leaves a core idle
    (10, 100, 64 << 20, False, 1),      # the whole is small: one band, no hand-off
    (1, 1 << 20, 8 << 20, False, 1),    # one row cannot be split
])
def test_split_rows_covers_every_row_in_even_bands(total, row_bytes, band_bytes, halves, expected,
                                                   monkeypatch):
    monkeypatch.setenv("NUMSTYLE_THREADS", "2")
    settings.reload()
    bands = parallel.split_rows(total, row_bytes, band_bytes, halves=halves)
    sizes = [r1 - r0 for r0, r1 in bands]
    assert len(bands) == expected, bands
    assert (bands[0][0] == 0 and bands[-1][1] == total
            and all(a[1] == b[0] for a, b in zip(bands, bands[1:]))), bands
    assert max(sizes) - min(sizes) <= 1 and max(sizes) * row_bytes <= max(band_bytes, row_bytes), \
        sizes


@pytest.mark.parametrize("threads", ["1", "2"])
def test_the_command_keeps_blas_on_one_thread_even_with_one_band_thread(threads):
    """NUMSTYLE_THREADS=1 means one core: BLAS must not spread a job over the others (run in a fresh
    process: the limit lasts for the process)."""
    import os
    import subprocess
    import sys
    code = ("from numstyle.fast.parallel import bands_take_the_cores\n"
            "from threadpoolctl import threadpool_info\n"
            "applied = bands_take_the_cores()\n"
            "print(applied, max(p['num_threads'] for p in threadpool_info()"
            " if p['user_api'] == 'blas'))")
    env = dict(os.environ, NUMSTYLE_THREADS=threads)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout
    applied, blas_threads = out.split()
    if (os.cpu_count() or 1) > 1:
        assert applied == "True" and blas_threads == "1", out
