"""Super-resolution, the paper's figure: bicubic, pixel-loss and feature-loss networks, original.

    python examples/super_resolution.py              # a Set5/Set14 image, the shipped x4 models
    python examples/super_resolution.py --scale 8    # ... the shipped x8 models
    python examples/super_resolution.py --image photo.png --pixel my_pixel.h5
        --feature my_feature.h5

The image is cropped to a multiple of the scale, degraded as in training (Gaussian blur, bicubic
downsampling), and enlarged back by each method; PSNR on Y is printed under each panel, and a
second row shows one 64-px square of every panel 4x enlarged (``--zoom top,left``).
"""
import argparse
import os
import sys

import numpy as np

from _common import run
from numstyle import image, models, sr
from numstyle.data import search_dirs
from numstyle.commands.figures import grid
from numstyle.metrics import y_psnr_ssim


def default_image():
    for d in search_dirs("datasets/sr/Set14") + search_dirs("datasets/sr/Set5"):
        for name in ("comic.png", "butterfly.png", "baby.png"):
            if os.path.isfile(os.path.join(d, name)):
                return os.path.join(d, name)
    from numstyle.data import sample_image
    return sample_image("tubingen.jpg")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--image", default=None,
                    help="a high-resolution image (default: a test-set image)")
    ap.add_argument("--scale", type=int, choices=(4, 8), default=4,
                    help="the shipped models' scale, when --pixel/--feature are not given")
    ap.add_argument("--pixel", default=None,
                    help="pixel-loss model (file or shipped name; default: sr_x<scale>_pixel)")
    ap.add_argument("--feature", default=None,
                    help="feature-loss model (file or shipped name; default: sr_x<scale>_feature)")
    ap.add_argument("--size", type=int, default=256,
                    help="crop the image to at most this side first")
    ap.add_argument("--out", default=None,
                    help="figure path (default: out/super_resolution_x<scale>.png)")
    ap.add_argument("--zoom", default="40,60",
                    help="top,left of a 64-px square shown 4x enlarged in a second row "
                         "('' for none)")
    args = ap.parse_args()
    pixel = args.pixel or f"sr_x{args.scale}_pixel"
    feature = args.feature or f"sr_x{args.scale}_feature"
    out_path = args.out or f"out/super_resolution_x{args.scale}.png"

    path = args.image or default_image()
    hr = image.load_image(path)[:args.size, :args.size]
    networks = {"pixel loss": models.load_model(pixel, expect="sr"),
                "feature loss": models.load_model(feature, expect="sr")}
    scales = {config["scale"] for _, config, _ in networks.values()}
    if len(scales) != 1:
        ap.error(f"{pixel} and {feature} enlarge by different scales")
    scale = scales.pop()
    hr = sr.modcrop(hr, scale)
    panels, labels = [], []
    for name, (params, config, state) in networks.items():
        lr = sr.degrade(hr, scale, config.get("blur", 1.0))
        if not panels:
            bic = np.clip(sr.bicubic(lr, hr.shape[:2]), 0, 255)
            panels.append(bic)
            labels.append(f"bicubic {y_psnr_ssim(bic.round(), hr, scale)[0]:.2f} dB")
        out = sr.upscale_array(params, config, state, lr).round()
        panels.append(out)
        labels.append(f"{name} {y_psnr_ssim(out, hr, scale)[0]:.2f} dB")
    panels.append(hr)
    labels.append("original")
    cols = len(panels)
    if args.zoom:
        # the same square of every panel, 4x, nearest neighbour
        top, left = (int(v) for v in args.zoom.split(","))
        for k in range(cols):
            square = panels[k][top:top + 64, left:left + 64]
            panels.append(np.repeat(np.repeat(square, 4, axis=0), 4, axis=1))
            labels.append(f"zoom: rows {top}-{top + 63}, columns {left}-{left + 63}" if k == 0
                          else "")
    figure = grid(panels, labels, cols=cols,
                  title=f"x{scale} super-resolution of {os.path.basename(path)} (PSNR on Y)")
    image.save_image(out_path, figure)
    print(f"wrote {out_path}")


if __name__ == "__main__":
    sys.exit(run(main, "examples/super_resolution.py"))
