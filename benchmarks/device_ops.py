"""Count the device operations (a proxy for GPU kernel launches) of numstyle's three timed steps.

Without a GPU: runs each step with ``tests/fakecupy.py`` standing in for CuPy
(NumPy underneath; random weights of the real shapes) and prints one JSON
object per step (counted on a warm call): operations, host <-> device copies
and scalar reads; then the device L-BFGS's own operations per iteration.
docs/gpu.md explains why the count matters and what the figures were.

    python benchmarks/device_ops.py --size 512
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import fakecupy  # noqa: E402

from numstyle import gatys, image, lbfgs, train, transformer, vgg  # noqa: E402


def counted(step):
    """The counts of a warm call (a first call's one-off allocations are not per step)."""
    step()
    for key in fakecupy.LOG:
        fakecupy.LOG[key] = 0
    step()
    return dict(fakecupy.LOG)


def lbfgs_iteration(objective, x, iters=12):
    """The device L-BFGS's own operations per iteration (L1)-(L5), the objective's left out."""
    inside = []

    def fun(z):
        before = fakecupy.LOG["ops"]
        result = objective(z)
        inside.append(fakecupy.LOG["ops"] - before)
        return result

    lo, hi = (fakecupy.asarray(b.astype(np.float32)) for b in image.pixel_bounds(x.shape))
    for key in fakecupy.LOG:
        fakecupy.LOG[key] = 0
    lbfgs.minimize(fun, x, iters, lo, hi)
    return {"ops": round((fakecupy.LOG["ops"] - sum(inside)) / iters), "evaluations": len(inside),
            "iterations": iters}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=512,
                   help="image side for Gatys and stylise (training: 256)")
    args = p.parse_args()
    cp, rng, S = fakecupy.install(), np.random.default_rng(0), args.size

    def photos(n, s, lo, hi):
        return cp.asarray(rng.uniform(lo, hi, (n, 3, s, s)).astype(np.float32))

    vgg19 = {k: (cp.asarray(w), cp.asarray(b))
             for k, (w, b) in vgg.random_params("vgg19", seed=1).items()}
    objective = gatys.make_objective(vgg19, "vgg19", content=photos(1, S, -100, 100),
                                     styles=[photos(1, S, -100, 100)], tv_weight=1e-3)
    x = photos(1, S, -100, 100)
    print(json.dumps({"step": "gatys objective evaluation", "model": "vgg19", "size": S,
                      **counted(lambda: objective(x))}))
    print(json.dumps({"step": "device L-BFGS iteration, objective excluded", "size": S,
                      **lbfgs_iteration(objective, x)}))

    spec = transformer.style_spec()
    net = train.params_to(transformer.init_params(spec), "gpu")
    photo = photos(1, S, -1, 1)
    print(json.dumps({"step": "stylize", "size": S, **counted(
        lambda: transformer.transformer_forward(net, photo, spec, train=False,
                                                keep_caches=False))}))

    vgg16 = {k: (cp.asarray(w), cp.asarray(b))
             for k, (w, b) in vgg.random_params("vgg16", seed=1).items()}
    loss = train.PerceptualLoss(vgg16, photos(1, 256, 0, 255), "relu2_2",
                                ["relu1_2", "relu2_2", "relu3_3", "relu4_3"], 1.0, 5.0, 1e-6)
    params, batch = train.params_to(transformer.init_params(spec), "gpu"), photos(4, 256, 0, 255)
    print(json.dumps({"step": "training iteration", "size": 256, "batch_size": 4, **counted(
        lambda: train.network_step(params, spec, "instance", {}, batch, loss))}))


if __name__ == "__main__":
    main()
