"""How much can a *linear* filter on the bicubic enlargement gain over bicubic? (issue 20)

The fitted filter is the best sharpening that needs no learning beyond least squares; a trained
super-resolution network that does no better than it has learned nothing nonlinear.

    NUMSTYLE_DATA=../shared python benchmarks/sr_linear_ceiling.py --scale 8 --k 9 --json

For each training photo (every other one of ``$NUMSTYLE_DATA/datasets/photos``, sorted), the
degradation of ``numstyle sr-train`` (SR1) and Pillow's bicubic enlargement give ``up``; a k x k
filter ``K`` and a bias ``c`` on the luma of ``up`` are fitted by least squares to the photo's luma,
from random pixels of every photo:

.. math::  \\min_{K, c} \\sum_p \\big(Y_{hr}(p) - (K * Y_{up})(p) - c\\big)^2

On Set5/Set14/BSD68 (the ``numstyle sr-eval`` protocol: modcrop, (SR1), Y PSNR with the border
shaved, the 8-bit output) the change of luma is added to R, G and B alike (scaled so that Y moves
by it, (Q1) being linear), and PSNR is compared with bicubic's.
"""
import argparse
import glob
import json
import os

import numpy as np
from scipy.ndimage import correlate

from numstyle import sr
from numstyle.dataset import list_images
from numstyle.image import load_image
from numstyle.metrics import rgb_to_y, y_psnr_ssim

Y_PER_RGB = float(rgb_to_y(np.ones(3)) - rgb_to_y(np.zeros(3)))  # (Q1): Y's change per level of RGB


def patches(y, k, rows, cols):
    """(n, k*k) windows of ``y`` (H, W), reflect-padded, centred on (rows, cols)."""
    r = k // 2
    padded = np.pad(y, r, mode="reflect")
    di, dj = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")             # (k, k)
    return padded[rows[:, None] + di.ravel(), cols[:, None] + dj.ravel()]      # (n, k*k)


def fit(files, scale, k, per_photo, sigma, rng):
    """Least-squares filter (k, k) and bias on the luma of the bicubic enlargement."""
    A, b = [], []
    for path in files:
        hr = sr.modcrop(load_image(path), scale)
        up = np.clip(sr.bicubic(sr.degrade(hr, scale, sigma), hr.shape[:2]), 0, 255)
        y_up, y_hr = rgb_to_y(up), rgb_to_y(hr)
        rows = rng.integers(0, y_up.shape[0], per_photo)
        cols = rng.integers(0, y_up.shape[1], per_photo)
        A.append(patches(y_up, k, rows, cols))
        b.append(y_hr[rows, cols])
    A = np.concatenate(A)                                                       # (n, k*k)
    A = np.hstack([A, np.ones((len(A), 1))])                                    # (n, k*k + 1)
    coef, *_ = np.linalg.lstsq(A, np.concatenate(b), rcond=None)
    return coef[:-1].reshape(k, k), coef[-1]


def evaluate(folder, scale, K, c, sigma):
    """Mean Y PSNR (filtered, bicubic) over a test set."""
    rows = []
    for path in sorted(glob.glob(os.path.join(folder, "*.png"))):
        hr = sr.modcrop(load_image(path), scale)
        bic = np.clip(sr.bicubic(sr.degrade(hr, scale, sigma), hr.shape[:2]), 0, 255)
        y_bic = rgb_to_y(bic)
        dy = correlate(y_bic, K, mode="reflect") + c - y_bic                   # luma change
        out = np.clip(bic + dy[..., None] / Y_PER_RGB, 0, 255).round()
        rows.append((y_psnr_ssim(out, hr, scale)[0], y_psnr_ssim(bic.round(), hr, scale)[0]))
    return np.mean(rows, axis=0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=int, default=8)
    ap.add_argument("--k", type=int, default=9, help="filter size, odd")
    ap.add_argument("--per-photo", type=int, default=4000, help="random pixels per photo")
    ap.add_argument("--blur", type=float, default=1.0, help="sigma of (SR1)")
    ap.add_argument("--sets", default="Set5,Set14,BSD68")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    data = os.environ.get("NUMSTYLE_DATA", "../shared")
    files = list_images(os.path.join(data, "datasets", "photos"))[::2]          # sorted
    K, c = fit(files, args.scale, args.k, args.per_photo, args.blur, np.random.default_rng(0))
    result = {"scale": args.scale, "k": args.k, "photos": len(files), "sets": {}}
    for name in args.sets.split(","):
        filtered, bicubic = evaluate(os.path.join(data, "datasets", "sr", name), args.scale, K, c,
                                     args.blur)
        result["sets"][name] = {"psnr": round(float(filtered), 3),
                                "bicubic_psnr": round(float(bicubic), 3),
                                "gain_db": round(float(filtered - bicubic), 3)}
    if args.json:
        print(json.dumps(result))
    else:
        for name, r in result["sets"].items():
            print(f"x{args.scale} k={args.k} {name:<6} linear {r['psnr']:.2f} dB, bicubic "
                  f"{r['bicubic_psnr']:.2f} dB, gain {r['gain_db']:+.2f} dB")


if __name__ == "__main__":
    main()
