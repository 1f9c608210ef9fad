"""The figure of docs/johnson.md: a style image, photos the network never saw, and its outputs.

    python examples/figure_johnson.py [--model starry_night] [--size 384] [--out docs/figures/johnson_starry_night.png]
"""
import argparse
import os
import sys
import time

from numstyle import image, models
from numstyle.data import sample_image, search_dirs
from numstyle.figures import grid
from numstyle.johnson_cli import stylize_array


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="starry_night", help="style model file or shipped name")
    ap.add_argument("--size", type=int, default=384, help="longer side of the photos")
    ap.add_argument("--out", default="docs/figures/johnson_starry_night.png")
    args = ap.parse_args()
    params, config, state = models.load_model(args.model, expect="style")
    photos = [p for p in (os.path.join(d, n) for d in search_dirs("images/content")
                          for n in ("tubingen.jpg", "chicago.jpg", "golden_gate.jpg")) if os.path.isfile(p)]
    photos = photos or [sample_image("tubingen.jpg")]
    style_path = next((os.path.join(d, config.get("style", "")) for d in search_dirs("images/style")
                       if os.path.isfile(os.path.join(d, config.get("style", "")))), None)
    panels, labels = [], []
    if style_path:
        panels.append(image.load_image(style_path, args.size))
        labels.append(f"style: {config.get('style')}")
    for p in photos:
        photo = image.load_image(p, args.size)
        t0 = time.perf_counter()
        out = stylize_array(params, config, state, photo)
        dt = time.perf_counter() - t0
        panels += [photo, out]
        labels += [os.path.basename(p), f"stylised in {dt:.2f} s (CPU)"]
    s = config.get("settings", {})
    title = (f"{os.path.basename(models.resolve_model_path(args.model))}: {s.get('iters')} iterations, batch "
             f"{s.get('batch_size')} of {s.get('size')} px, style weight {s.get('style_weight')}")
    image.save_image(args.out, grid(panels, labels, title=title))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())
