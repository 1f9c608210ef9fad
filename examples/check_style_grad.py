"""Analytic versus numerical gradients, one line per case: the backprop of the style loss, checked.

    python examples/check_style_grad.py

Runs the project's gradient-check table (tests/test_gradcheck.py: the Gram matrix, style loss,
content loss, convolution, pooling, a small VGG, the whole Gatys objective, ...) in float64 with
centred differences and a random non-symmetric upstream gradient, and prints each case's largest
relative error (GC2). Values near 1e-8 are right; 1e-2 or more would be a wrong gradient.
"""
import os
import sys
import zlib

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

from numstyle.gradcheck import check_vjp  # noqa: E402
from test_gradcheck import CASES  # noqa: E402


def main():
    width = max(len(name) for name, _, _ in CASES)
    print(f"{'case':<{width}}  rel_error")
    for name, make, _ in CASES:
        f, vjp, inputs = make(np.random.default_rng(zlib.crc32(name.encode())))
        errors = [e for e in check_vjp(f, vjp, inputs, seed=1) if e is not None]
        print(f"{name:<{width}}  {max(errors):.2e}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
