"""Flicker on a static scene, before and after numstyle's two remedies (VD1), measured by (VD2).

    python examples/video_flicker.py   # writes out/flicker/flicker.png and flicker.json
    python examples/video_flicker.py --frames 12 --size 512 --gatys-size 192

A still photo is filmed for a few frames: each frame is the photo plus fresh sensor noise (Gaussian,
sigma 3 grey levels) and JPEG compression -- nothing in the scene moves, so every change between
consecutive stylised frames is flicker the method added. Four runs:

* the shipped style network, each frame on its own, then with ``--deflicker 0.8`` (VD1);
* Gatys (L-BFGS-B) with each frame started from its own noise, then from the previous frame's
  result.

The figure shows one stylised frame per run and the change to the next frame (x8); the JSON holds
the flicker of each (VD2, mean absolute change on 0..255) beside the input's own.
Reading on: numstyle/commands/media.py (deflicker, flicker), numstyle/commands/gatys.py (run_video).
"""
import argparse
import io
import json
import os
import sys
import time

import numpy as np
from PIL import Image

from _common import run
from numstyle import gatys, models
from numstyle.data import sample_image
from numstyle.commands.figures import grid
from numstyle.files import atomic_path
from numstyle.image import deprocess, load_image, preprocess, resize, save_image
from numstyle.stylize import stylize_array
from numstyle.commands.media import deflicker, flicker
from numstyle.weights import load_vgg, resolve_vgg


def static_clip(photo, frames, sigma, seed=0):
    """``frames`` noisy JPEG-compressed copies of one photo: a static scene as a camera films it."""
    rng = np.random.default_rng(seed)
    clip = []
    for _ in range(frames):
        noisy = np.clip(photo + rng.normal(0, sigma, photo.shape), 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(noisy).save(buf, "JPEG", quality=90)
        clip.append(np.asarray(Image.open(buf), dtype=np.float32))
    return clip


def network_runs(clip, model, strength):
    params, config, state = models.load_model(model, expect="style")
    plain = [np.clip(stylize_array(params, config, state, f), 0, 255) for f in clip]
    held, prev = [], None
    for f, out in zip(clip, plain):
        out = out if prev is None else deflicker(prev[0], prev[1], f, out, strength)      # (VD1)
        prev = (f, out)
        held.append(out)
    return plain, held


def gatys_runs(clip, style, iters, weights_arg):
    model, path = resolve_vgg(None, weights_arg)
    params = load_vgg(path, model)
    runs = {"own noise": [], "previous result": []}
    for name, chained in (("own noise", False), ("previous result", True)):
        prev = None
        for t, frame in enumerate(clip):
            obj = gatys.make_objective(params, model, content=preprocess(frame),
                                       styles=[preprocess(style)], tv_weight=1e-3)
            if chained and prev is not None:
                x0 = prev  # the remedy: same strokes
            else:
                x0 = np.clip(128 + 64 * np.random.default_rng(t).standard_normal(frame.shape),
                             0, 255)
            x, _ = gatys.optimize(obj, preprocess(x0.astype(np.float32)), iters, progress=False)
            prev = deprocess(x).astype(np.float32)
            runs[name].append(prev)
    return model, runs


def change(a, b):
    """|b - a| x 8, as an image (the flicker one frame adds)."""
    return np.clip(8 * np.abs(b.astype(np.float32) - a.astype(np.float32)), 0, 255)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photo", help="the still photo (default: the sample content image)")
    ap.add_argument("--style",
                    help="style image of the Gatys runs (default: the sample style image)")
    ap.add_argument("--model", default="starry_night", help="style network (file or shipped name)")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--size", type=int, default=384, help="frame size for the network, px")
    ap.add_argument("--gatys-size", type=int, default=160, help="frame size for Gatys, px")
    ap.add_argument("--gatys-iters", type=int, default=60, help="L-BFGS-B iterations per frame")
    ap.add_argument("--deflicker", type=float, default=0.8)
    ap.add_argument("--sigma", type=float, default=3.0, help="sensor noise, grey levels")
    ap.add_argument("--weights", help="VGG weights for Gatys (default: searched)")
    ap.add_argument("--out", default="out/flicker")
    args = ap.parse_args()

    start = time.perf_counter()
    photo = load_image(args.photo or sample_image("tubingen.jpg"), None, "photo")
    style = load_image(args.style or sample_image("starry_night.jpg"), args.gatys_size,
                       "style image")
    clip = static_clip(resize(photo, longer_side=args.size), args.frames, args.sigma)
    small = [resize(f, longer_side=args.gatys_size) for f in clip]
    plain, held = network_runs(clip, args.model, args.deflicker)
    vgg_model, g = gatys_runs(small, style, args.gatys_iters, args.weights)

    numbers = {"frames": args.frames, "noise_sigma": args.sigma, "input": flicker(clip),
               "input_small": flicker(small), "network": flicker(plain),
               f"network_deflicker_{args.deflicker}": flicker(held),
               "gatys_own_noise": flicker(g["own noise"]),
               "gatys_previous_result": flicker(g["previous result"]),
               "network_size": args.size, "gatys_size": args.gatys_size,
               "gatys_iters": args.gatys_iters, "gatys_model": vgg_model, "model": args.model,
               "seconds": round(time.perf_counter() - start, 1)}
    rows = [(clip, "input"), (plain, "network"), (held, f"network, --deflicker {args.deflicker}"),
            (g["own noise"], "Gatys, each frame from noise"),
            (g["previous result"], "Gatys, from previous result")]
    keys = ["input", "network", f"network_deflicker_{args.deflicker}", "gatys_own_noise",
            "gatys_previous_result"]
    cells, labels = [], []
    for (frames, label), key in zip(rows, keys):
        cells += [frames[1], change(frames[1], frames[2])]
        labels += [label, f"change to next x8 (flicker {numbers[key]:.2f})"]
    os.makedirs(args.out, exist_ok=True)
    cell = clip[0].shape[:2]
    figure = grid([resize(np.asarray(c, np.float32), shape=cell) for c in cells], labels, cols=2,
                  title="flicker on a static scene (VD2: mean |frame t - frame t-1|, 0..255)")
    save_image(os.path.join(args.out, "flicker.png"), figure)
    with atomic_path(os.path.join(args.out, "flicker.json")) as tmp, open(tmp, "w") as f:
        json.dump(numbers, f, indent=1)
    for k, v in numbers.items():
        print(f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}")
    print(f"wrote {args.out}/flicker.png and flicker.json")


if __name__ == "__main__":
    sys.exit(run(main, "examples/video_flicker.py"))
