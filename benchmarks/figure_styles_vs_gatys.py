"""Each style of the shipped networks beside a Gatys result of the same photo and painting.

    python benchmarks/figure_styles_vs_gatys.py --photo tubingen.jpg --gatys DIR \
        --out docs/figures/johnson_vs_gatys.jpg \
        starry_night composition_vii shipwreck woman_with_hat

One row per model name: the painting, ``numstyle gatys`` (``DIR/<photo>_<style>.png``, made
beforehand with ``numstyle gatys --content PHOTO --style ... --each-style --out DIR/``), and the
network's output; each panel labelled. The network stylises at the Gatys result's size.
"""
import argparse
import os

import numpy as np
from PIL import Image

from numstyle import models
from numstyle.image import load_image
from numstyle.sheet import contact_sheet
from numstyle.stylize import stylize_array


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+", help="style model files or shipped names")
    ap.add_argument("--photo", required=True)
    ap.add_argument("--gatys", required=True, help="folder of the Gatys results")
    data = os.environ.get("NUMSTYLE_DATA", ".")
    ap.add_argument("--paintings", default=os.path.join(data, "images", "style"),
                    help="folder of the paintings, <style>.jpg "
                         "(default: $NUMSTYLE_DATA/images/style)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    stem = os.path.splitext(os.path.basename(args.photo))[0]
    tiles, labels = [], []
    for name in args.models:
        params, config, state = models.load_model(name, expect="style")
        style = os.path.splitext(config["style"])[0]
        gatys_path = os.path.join(args.gatys, f"{stem}_{style}.png")
        gatys = np.asarray(Image.open(gatys_path).convert("RGB"))   # (h, w, 3)
        h, w = gatys.shape[:2]
        painting = load_image(os.path.join(args.paintings, f"{style}.jpg"), max(h, w))
        canvas = np.zeros_like(gatys)
        canvas[:painting.shape[0], :painting.shape[1]] = painting[:h, :w]
        net = stylize_array(params, config, state, load_image(args.photo, max(h, w)), "cpu")
        tiles += [canvas, gatys, np.clip(net, 0, 255).round().astype(np.uint8)]
        labels += [style, f"Gatys ({style})", f"network {os.path.basename(name)}"]
    sheet, _ = contact_sheet(tiles, labels, 3)
    Image.fromarray(sheet).save(args.out, quality=88)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
