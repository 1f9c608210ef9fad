"""Time each step of one compiled Winograd convolution (numstyle/fast/winograd_numba.py): the
input transform (W3), the GEMMs (W4) and the output transform (W5) over the image's bands, then
the whole ``convolve``; medians of 5, in ms.

    NUMSTYLE_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/winograd_steps.py 64 256 4

    python benchmarks/winograd_steps.py 64 256 4 128   # bands of 128 tiles instead of BAND_TILES

Arguments: channels (in = out), image side, m of F(m x m, 3x3), optionally the tiles per band
(``winograd_numba.BAND_TILES``: the cache a band's buffers fill). Needs Numba (numstyle[fast]).
"""
import sys

import numpy as np

from numstyle.fast import winograd_numba
from numstyle.fast.winograd import transform_kernel
from winograd_layers import median_ms   # benchmarks/: run as a script, this folder is on the path


def main(argv=None):
    argv = [int(a) for a in (argv or sys.argv[1:])]
    C, S, m = argv[:3]
    if len(argv) > 3:
        winograd_numba.BAND_TILES = argv[3]                     # the whole convolution's too
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, C, S, S)).astype(np.float32)
    w_hat = transform_kernel(rng.standard_normal((C, C, 3, 3)).astype(np.float32), m)
    winograd_numba.convolve(x, w_hat)                           # compile or load the kernels
    a, th = m + 2, -(-S // m)
    tw = th
    rows = max(1, winograd_numba.BAND_TILES // tw)              # tile rows per band
    V = np.empty((a * a, 1, C, rows * tw), np.float32)          # (a^2, N, C, t)
    M = np.empty((a * a, 1, C, rows * tw), np.float32)          # (a^2, N, F, t)
    y, bias = np.empty((1, C, S, S), np.float32), np.zeros(C, np.float32)
    input_transform, output_transform = winograd_numba.KERNELS[m]
    bands = [(i0, min(th, i0 + rows)) for i0 in range(0, th, rows)]

    def inputs():
        for i0, i1 in bands:
            input_transform(x, None, 1, i0, i1, tw, 0, C, V[..., :(i1 - i0) * tw])   # (W3)

    def products():
        for _ in bands:
            np.matmul(w_hat[:, None], V, out=M)  # (a^2,1,F,C) @ (a^2,1,C,t)           (W4)

    def outputs():
        for i0, i1 in bands:
            output_transform(M[..., :(i1 - i0) * tw], bias, None, i0, i1, tw, 0, C, y)  # (W5)

    t_in, t_gemm, t_out = median_ms(inputs), median_ms(products), median_ms(outputs)
    t_all = median_ms(lambda: winograd_numba.convolve(x, w_hat))
    flops = 2 * a * a * C * C * th * tw
    print(f"{C}->{C} at {S}^2, F({m}x{m}, 3x3): input {t_in:.1f} ms, GEMMs {t_gemm:.1f} ms "
          f"({flops / t_gemm / 1e6:.0f} GFLOP/s), output {t_out:.1f} ms, whole {t_all:.1f} ms")


if __name__ == "__main__":
    main()
