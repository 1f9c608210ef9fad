"""Preconditioned L-BFGS-B for Gatys: does a change of variables converge faster? (issue 22)

L-BFGS-B starts each iteration from the scaled identity as its inverse Hessian. Optimising
``z`` with ``x = x0 + P z`` instead starts it from ``P P^T`` in pixel space: with ``P`` a
symmetric spectral filter, low (``--p`` > 0) or high (``--p`` < 0) spatial frequencies move
farther per iteration. The filter, unit mean power over the frequency grid:

.. math::  \\hat P(f) \\propto \\left(1 + (f / f_0)^2\\right)^{-p/2}, \\qquad
           \\nabla_z L = P^\\top \\nabla_x L = P \\nabla_x L

``z`` is unbounded (the pixel box is not a box in ``z``); the result is clipped to 0..255 and its
loss reported as ``final_clipped``. ``--f0 0`` is the plain run, bounded as ``numstyle gatys``.

    NUMSTYLE_THREADS=1 NUMSTYLE_DATA=/work/shared python benchmarks/gatys_precond.py \\
        --iters 100 --f0 0.05 --p 1

Prints one JSON object: G1 and wall time after 25/50/100/150/200/300 iterations, the final loss,
clipped and not. The numbers in docs/benchmarks.md ("Gatys coarse to fine", what did not pay).
"""
import argparse
import json
import time

import numpy as np
from scipy.optimize import Bounds, minimize

from numstyle import gatys, image, weights
from numstyle.data import sample_image

MARKS = (25, 50, 100, 150, 200, 300)


def spectral_filter(shape, f0, p):
    """``z -> P z`` for (1, 3, H, W) float64 arrays; the identity for ``f0 = 0``."""
    H, W = shape[2:]
    if f0 <= 0:
        return lambda z: z
    f = np.hypot(np.fft.fftfreq(H)[:, None], np.fft.rfftfreq(W)[None, :])     # (H, W/2+1)
    S = (1 + (f / f0) ** 2) ** (-p / 2)
    S /= np.sqrt(np.mean(S ** 2))                                              # unit mean power
    return lambda z: np.fft.irfft2(np.fft.rfft2(z) * S, s=(H, W))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pair", default="tubingen:starry_night", help="CONTENT:STYLE sample names")
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--f0", type=float, default=0.0, help="corner frequency, cycles/px (0: none)")
    ap.add_argument("--p", type=float, default=1.0, help="exponent: > 0 low-pass, < 0 high-pass")
    args = ap.parse_args()
    content_name, style_name = args.pair.split(":")
    model, path = weights.resolve_vgg()
    params = weights.load_vgg(path, model)
    content, style = (image.preprocess(image.load_image(sample_image(n + ".jpg"), size=args.size))
                      for n in (content_name, style_name))
    objective = gatys.make_objective(params, model, content=content, styles=[style])   # (G1)
    shape, x0 = objective.shape, content.astype(np.float64)                 # (1, 3, H, W)
    lo, hi = image.pixel_bounds(shape)
    P = spectral_filter(shape, args.f0, args.p)
    marks, latest, start = {}, {"f": None, "it": 0}, time.perf_counter()

    def fun(z):
        f, g = objective((x0 + P(z.reshape(shape))).astype(np.float32))
        latest["f"] = float(f)
        return float(f), P(g.astype(np.float64)).ravel()                    # P^T = P

    def after_iteration(_):
        latest["it"] += 1
        if latest["it"] in MARKS:
            marks[latest["it"]] = [latest["f"], time.perf_counter() - start]

    bounds = Bounds((lo - x0).ravel(), (hi - x0).ravel()) if args.f0 <= 0 else None
    res = minimize(fun, np.zeros(x0.size), jac=True, method="L-BFGS-B", bounds=bounds,
                   callback=after_iteration, options={"maxiter": args.iters, "ftol": 0,
                                                      "gtol": 0, "maxfun": 2 * args.iters + 20})
    x = np.clip(x0 + P(res.x.reshape(shape)), lo, hi)
    clipped, _ = objective(x.astype(np.float32))
    print(json.dumps(dict(vars(args), marks=marks, final=latest["f"],
                          final_clipped=float(clipped), evaluations=int(res.nfev),
                          seconds=time.perf_counter() - start)))


if __name__ == "__main__":
    main()
