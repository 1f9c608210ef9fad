"""Johnson et al.'s comparison: how many L-BFGS iterations does Gatys' optimisation need to reach
the loss that the trained network achieves in one forward pass?

    python examples/compare_johnson_gatys.py [--model weights/starry_night.h5] [--size 256]
        [--iters 300]

For each photo the network never saw (the sample content images), the loss (J6) -- the very loss
the network was trained on, with its settings read from the model file -- is computed for the
network's output; then the pixels of a white-noise image are optimised with L-BFGS-B on the same
loss, and the first iteration whose loss is at or below the network's is reported, with both times.
The paper found 50-100 iterations (Fig. 5 there) and a ~1000x speed ratio on a GPU.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

from _common import run
from numstyle import gatys, image, models, train, weights
from numstyle.data import sample_image, search_dirs
from numstyle.stylize import stylize_array


class PixelObjective(gatys.Objective):
    """Johnson's loss (J6) of an image against a photo, over the pixels in VGG space.

    An objective for ``gatys.optimize``."""

    def __init__(self, loss, photo_rgb):
        self.loss, self.photo = loss, photo_rgb[None].transpose(0, 3, 1, 2).astype(np.float32)
        self.shape, self.params = self.photo.shape, {"conv1_1": (self.photo, None)}
        self.last, self.evaluations, self.xp = {}, 0, np

    def __call__(self, x):
        rgb = x[:, ::-1] + image.MEAN_BGR[::-1].reshape(1, 3, 1, 1)       # VGG space -> RGB (I1)
        parts, dy = self.loss(rgb, self.photo)
        self.evaluations += 1
        self.last = parts
        return parts["total"], np.ascontiguousarray(dy[:, ::-1])          # back to VGG space (I1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="starry_night", help="style model file or shipped name")
    ap.add_argument("--size", type=int, default=256, help="longer side of the photos")
    ap.add_argument("--iters", type=int, default=300, help="L-BFGS iterations at most")
    ap.add_argument("--photos", nargs="*", help="photos (default: the sample content images)")
    ap.add_argument("--out", default="out/compare_johnson_gatys.json", help="results (JSON)")
    args = ap.parse_args()

    params, config, state = models.load_model(args.model, expect="style")
    s = config["settings"]
    style = image.load_image(_style_path(config), s.get("style_size") or s["size"])
    model, path = weights.resolve_vgg("vgg16")
    loss = train.PerceptualLoss(weights.load_vgg(path, model),
                                style.transpose(2, 0, 1)[None].copy(), s["content_layer"],
                                s["style_layers"], s["content_weight"], s["style_weight"],
                                s["tv_weight"], phase_weight=s.get("phase_weight", 0.0))
    photos = args.photos or _sample_photos()
    rows = []
    for p in photos:
        photo = image.load_image(p, args.size)
        t0 = time.perf_counter()
        y = stylize_array(params, config, state, photo)
        t_net = time.perf_counter() - t0
        target = loss(y.transpose(2, 0, 1)[None].astype(np.float32),
                      photo.transpose(2, 0, 1)[None].astype(np.float32))[0]["total"]
        obj = PixelObjective(loss, photo)
        noise = np.random.default_rng(0).uniform(0, 255, photo.shape).astype(np.float32)
        t0 = time.perf_counter()
        _, history = gatys.optimize(obj, image.preprocess(noise), args.iters, progress=False)
        reached = next((i + 1 for i, h in enumerate(history) if h["total"] <= target), None)
        t_reach = history[reached - 1]["time"] if reached else None
        rows.append({"photo": os.path.basename(p), "network_loss": target,
                     "lbfgs_iterations_to_match": reached,
                     "network_s": t_net, "lbfgs_s_to_match": t_reach,
                     "speed_ratio": (t_reach / t_net) if reached else None,
                     "lbfgs_final_loss": history[-1]["total"]})
        when = ('%.1f s, %.0fx slower' % (t_reach, t_reach / t_net) if reached
                else 'not within ' + str(args.iters))
        print(f"{os.path.basename(p)}: network loss {target:.4g} in {t_net:.2f} s; "
              f"L-BFGS reaches it at iteration {reached} ({when})")
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(rows, f, indent=1)
    print(f"wrote {args.out}")


def _style_path(config):
    for d in search_dirs("images/style"):
        candidate = os.path.join(d, config.get("style", ""))
        if os.path.isfile(candidate):
            return candidate
    return sample_image("starry_night.jpg")


def _sample_photos():
    found = [p for p in (os.path.join(d, n) for d in search_dirs("images/content")
                         for n in ("tubingen.jpg", "chicago.jpg", "golden_gate.jpg"))
             if os.path.isfile(p)]
    return found or [sample_image("tubingen.jpg")]


if __name__ == "__main__":
    sys.exit(run(main, "examples/compare_johnson_gatys.py"))
