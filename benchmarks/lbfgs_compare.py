"""SciPy's L-BFGS-B against numstyle's projected L-BFGS (numstyle/lbfgs.py) on one Gatys run.

Same objective (VGG16, content + style + TV at the defaults), same start (the
content image), both on the CPU; prints per optimiser the loss after 10, 25,
50, 100, 200, 300 iterations, the evaluations and the wall time. Needs the VGG16
weights and the sample images (NUMSTYLE_DATA=../shared on our machines).

    NUMSTYLE_DATA=../shared python benchmarks/lbfgs_compare.py --size 256 --iters 200

``--overhead`` instead times each optimiser's own work per iteration, outside
the objective: a boxed quadratic with as many variables as a ``--size`` image
(a cheap objective, so what is left is the optimiser).
"""
import argparse
import time

import numpy as np

from numstyle import data, gatys, image, lbfgs, weights
from numstyle.fast import memory, parallel


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--iters", type=int, default=100)
    p.add_argument("--content", default="tubingen.jpg")
    p.add_argument("--style", default="starry_night.jpg")
    p.add_argument("--overhead", action="store_true",
                   help="time the optimisers alone on a quadratic")
    args = p.parse_args()
    if args.overhead:
        return overhead(args.size, args.iters)
    parallel.bands_take_the_cores()
    memory.keep_freed_memory()
    params = weights.load_vgg(weights.find_vgg("vgg16"), "vgg16")
    content = image.preprocess(image.load_image(data.sample_image(args.content), args.size))
    style = image.preprocess(image.load_image(data.sample_image(args.style), args.size))
    objective = gatys.make_objective(params, "vgg16", content=content, styles=[style],
                                     tv_weight=1e-3)
    for optimizer in ("lbfgs", "lbfgs-device"):
        objective.evaluations = 0
        start = time.perf_counter()
        _, history = gatys.optimize(objective, content.copy(), args.iters, optimizer,
                                    progress=False)
        seconds = time.perf_counter() - start
        marks = " ".join(f"{i}: {history[i - 1]['total']:.4g}" for i in (10, 25, 50, 100, 200, 300)
                         if i <= len(history))
        print(f"{optimizer:13s} {args.size}px: {len(history)} iterations, "
              f"{objective.evaluations} evaluations, {seconds:.1f} s; loss after {marks}",
              flush=True)


def overhead(size, iters):
    """Milliseconds per iteration spent outside the objective, for both optimisers."""
    from scipy.optimize import Bounds, minimize

    n = 3 * size * size
    rng = np.random.default_rng(0)
    target, curvature = rng.uniform(-100, 100, n), rng.uniform(0.5, 2, n)
    lo, hi = np.full(n, -120.0), np.full(n, 135.0)
    spent = {"objective": 0.0}

    def f(x):
        t = time.perf_counter()
        d = x - target
        g = curvature * d
        value = 0.5 * float(d @ g)
        spent["objective"] += time.perf_counter() - t
        return value, g

    runs = {"lbfgs": lambda: minimize(f, np.zeros(n), jac=True, method="L-BFGS-B",
                                      bounds=Bounds(lo, hi),
                                      options={"maxiter": iters, "maxfun": 2 * iters + 20,
                                               "ftol": 0, "gtol": 0}),
            "lbfgs-device": lambda: lbfgs.minimize(f, np.zeros(n), iters, lo, hi)}
    for name, run in runs.items():
        spent["objective"] = 0.0
        start = time.perf_counter()
        run()
        own = time.perf_counter() - start - spent["objective"]
        print(f"{name:13s} {size}px ({n} variables): {1e3 * own / iters:.1f} ms per iteration "
              "of its own", flush=True)


if __name__ == "__main__":
    main()
