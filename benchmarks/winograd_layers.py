"""Per-layer timing of a VGG 3x3 convolution three ways: im2col, Winograd F(2x2, 3x3), F(4x4, 3x3).

    python benchmarks/winograd_layers.py [SIZE]

Prints forward and input-gradient milliseconds (median of 5) for the layer
shapes of VGG16 at SIZE x SIZE (default 256), random float32 weights.
"""
import sys
import time

import numpy as np

from numstyle.fast import conv, winograd


def median_ms(f, n=5):
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1e3


def main(size=256):
    rng = np.random.default_rng(0)
    shapes = [("conv1_2", 64, 64, size), ("conv2_1", 64, 128, size // 2),
              ("conv2_2", 128, 128, size // 2), ("conv3_2", 256, 256, size // 4),
              ("conv4_1", 256, 512, size // 8), ("conv4_2", 512, 512, size // 8),
              ("conv5_1", 512, 512, size // 16)]
    print(f"{'layer':8s}  {'im2col fwd/bwd':>16s}  {'F(2x2) fwd/bwd':>16s}  "
          f"{'F(4x4) fwd/bwd':>16s}   (ms)")
    for name, C, F, H in shapes:
        x = rng.standard_normal((1, C, H, H)).astype(np.float32)
        w = (rng.standard_normal((F, C, 3, 3)) * 0.03).astype(np.float32)
        y, cache = conv.conv2d_forward(x, w, None, 1, 1)
        dy = np.ones_like(y)
        row = [(median_ms(lambda: conv.conv2d_forward(x, w, None, 1, 1)),
                median_ms(lambda: conv.conv2d_backward(dy, cache, weight_grad=False)))]
        for m in (2, 4):
            w_hat = winograd.transform_kernel(w, m)
            _, wcache = winograd.winograd_conv3x3_forward(x, w, None, w_hat)
            row.append((median_ms(lambda: winograd.winograd_conv3x3_forward(x, w, None, w_hat)),
                        median_ms(lambda: winograd.winograd_conv3x3_backward(dy, wcache,
                                                                             weight_grad=False))))
        print(f"{name:8s}  " + "  ".join(f"{f:7.1f} / {b:6.1f}" for f, b in row), flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 256)
