"""The figures of docs/johnson.md: a style image, photos the network never saw, and its outputs.

    python examples/figure_johnson.py [--model starry_night] [--size 384]
        [--out docs/figures/johnson_starry_night.png]
    python examples/figure_johnson.py --model a.h5 --model b.h5 --out compare.png
        # one row per model

With several models the photos come once, then one row of outputs per model: led by its style
image when the models have different styles, else labelled with what differs between their
settings (normalisation, content layer, up-sampling ...), each output with its checkerboard
(Q4), also printed.
"""
import argparse
import os
import sys
import time

import numpy as np

from _common import run
from numstyle import image, metrics, models
from numstyle.data import sample_image, search_dirs
from numstyle.commands.figures import grid
from numstyle.stylize import stylize_array


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", action="append",
                    help="style model file or shipped name (repeat to compare)")
    ap.add_argument("--size", type=int, default=384, help="longer side of the photos")
    ap.add_argument("--out", default="docs/figures/johnson_starry_night.png")
    args = ap.parse_args()
    names = args.model or ["starry_night"]
    loaded = [models.load_model(m, expect="style") for m in names]
    photos = [p for p in (os.path.join(d, n) for d in search_dirs("images/content")
                          for n in ("tubingen.jpg", "chicago.jpg", "golden_gate.jpg"))
              if os.path.isfile(p)]
    photos = ([image.load_image(p, args.size) for p in photos]
              or [image.load_image(sample_image("tubingen.jpg"), args.size)])
    config = loaded[0][1]
    style = _style_image(config, args.size, photos[0])
    if len(loaded) == 1:
        panels, labels = [style], [f"style: {config.get('style')}"]
        for photo in photos:
            out, dt = _stylize(loaded[0], photo)
            panels += [photo, out]
            labels += ["photo", f"stylised in {dt:.2f} s (CPU)"]
        s = config.get("settings", {})
        title = (f"{os.path.basename(models.resolve_model_path(names[0]))}: {s.get('iters')} "
                 f"iterations, batch {s.get('batch_size')} of {s.get('size')} px, style weight "
                 f"{s.get('style_weight')}")
        image.save_image(args.out, grid(panels, labels, title=title))
    elif len({m[1].get("style") for m in loaded}) > 1:
        # different styles: each row starts with its own
        panels, labels = [np.full_like(photos[0], 255)] + photos, [""] + ["photo"] * len(photos)
        for name, model in zip(names, loaded):
            panels += ([_style_image(model[1], args.size, photos[0])]
                       + [_stylize(model, photo)[0] for photo in photos])
            labels += [f"{os.path.basename(name)}: style"] + [""] * len(photos)
        image.save_image(args.out, grid(panels, labels, cols=len(photos) + 1,
                                        title="shipped style networks, on photos they never saw"))
    else:
        panels, labels = [style] + photos, ["style"] + ["photo"] * len(photos)
        for name, model in zip(names, loaded):
            row = [_stylize(model, photo)[0] for photo in photos]
            panels += [np.full_like(photos[0], 255)] + row
            checkerboard = [metrics.checkerboard(out) for out in row]  # (Q4)
            labels += [_differences(model[1], [m[1] for m in loaded]) or os.path.basename(name)]
            labels += [f"checkerboard (Q4) {cb:.1f}" for cb in checkerboard]
            print(f"{name}: checkerboard (Q4), luma levels: "
                  + ", ".join(f"{cb:.1f}" for cb in checkerboard))
        image.save_image(args.out, grid(panels, labels, cols=len(photos) + 1,
                                        title="the same training, one setting changed per row"))
    print(f"wrote {args.out}")


def _style_image(config, size, like):
    """The model's style image from the sample folders, or black when it is not found."""
    name = config.get("style", "")
    path = next((os.path.join(d, name) for d in search_dirs("images/style")
                 if os.path.isfile(os.path.join(d, name))), None)
    return image.load_image(path, size) if path else np.zeros_like(like)


def _stylize(model, photo):
    params, config, state = model
    t0 = time.perf_counter()
    out = stylize_array(params, config, state, photo)
    return np.clip(out, 0, 255), time.perf_counter() - t0


def _differences(config, configs):
    """The settings of ``config`` that are not the same in every one of ``configs``."""
    flat = lambda c: {  # noqa: E731
        **models.CONFIG_DEFAULTS, **{k: v for k, v in c.items() if k != "settings"},
        **c.get("settings", {})}
    mine, others = flat(config), [flat(c) for c in configs]
    keys = [k for k in mine
            if any(o.get(k) != mine[k] for o in others) and k not in ("seed_hash", "style_sha256")]
    return ", ".join(f"{k} {mine[k]}" for k in keys)


if __name__ == "__main__":
    sys.exit(run(main, "examples/figure_johnson.py"))
