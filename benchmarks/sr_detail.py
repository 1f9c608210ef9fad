"""How sharp is a super-resolution model's output? Fine detail and edges against the photo's.

PSNR rewards a blur that sits between the possible answers; a sharper network loses PSNR and wins
detail. This script measures the detail (issue 20's comparison of the pixel-loss and feature-loss
networks):

- **fine detail**: the RMS of the Laplacian of the output's luma, over the photo's;
- **edges**: the RMS of the luma's gradient (central differences), over the photo's;
- **fine error**: the RMS of the Laplacian of the error (output less photo), over bicubic's: below
  1 the detail drawn is the photo's, above 1 it is detail the photo does not have (a fine hatch,
  or texture of the wrong kind), which a finer-detail ratio alone would count as a gain;
- **grid**: (Q4) of :func:`numstyle.metrics.checkerboard` with period ``--scale``, in luma levels
  (mean and max over the images; not a ratio).

Before the RMS each map has its mean over each pixel phase mod ``--scale`` removed (what (Q4)
measures), so that a grid -- which a Laplacian amplifies -- is not counted as detail. The borders
(``--scale`` px, as ``sr-eval``) are shaved; 1.0 means as much detail as the photo, bicubic's is
far lower. Inputs are made as ``numstyle sr-eval`` makes them (modcrop, the model's degradation
(SR1)); the output is the saved 8-bit image.

    NUMSTYLE_DATA=../shared python benchmarks/sr_detail.py --model sr_x4_pixel \\
        --model sr_x4_feature --set Set5 --set Set14

Prints, per set, the mean over its images of each ratio (and the grid's mean and max), for each
model, for bicubic and for the photo itself.
"""
import argparse
import glob
import json
import os

import numpy as np
from scipy.ndimage import laplace

from numstyle import models, sr
from numstyle.commands.sr import find_test_set
from numstyle.image import load_image
from numstyle.metrics import checkerboard, rgb_to_y, shave


def without_phases(a, period):
    """``a`` (H, W) less its mean over each pixel phase mod ``period`` (the grid of (Q4))."""
    out = a.copy()
    for i in range(period):
        for j in range(period):
            out[i::period, j::period] -= a[i::period, j::period].mean()
    return out


def rms(a):
    return float(np.sqrt(np.mean(a * a)))


def detail(rgb, period, border):
    """(Laplacian, edges) of ``rgb``'s luma, grid removed, border shaved: the Laplacian's map
    (H - 2 border, W - 2 border), whose RMS is the fine detail, and the gradient's RMS."""
    y = rgb_to_y(np.asarray(rgb, np.float64))                                  # (H, W)
    gy, gx = np.gradient(y)                                                    # (H, W) each
    lap = shave(without_phases(laplace(y, mode="reflect"), period), border)
    grad = np.hypot(shave(without_phases(gx, period), border),
                    shave(without_phases(gy, period), border))
    return lap, rms(grad)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", action="append", required=True, help="model file or shipped name")
    p.add_argument("--set", dest="sets", action="append", required=True,
                   help="test set folder or name (Set5, Set14, BSD68)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args()
    loaded = {name: models.load_model(name, expect="sr") for name in args.model}
    scales = {config["scale"] for _, config, _ in loaded.values()}
    if len(scales) != 1:
        raise SystemExit("give models of one scale")
    scale = scales.pop()
    blurs = {m: config.get("blur", 1.0) for m, (_, config, _) in loaded.items()}
    results = {}
    for name in args.sets:
        files = sorted(glob.glob(os.path.join(find_test_set(name), "*")))
        ratios = {m: [] for m in ["photo", "bicubic"] + args.model}
        for path in files:
            hr = sr.modcrop(load_image(path, what="test image"), scale)
            lap_ref, edges_ref = detail(hr, scale, scale)
            lrs = {b: sr.degrade(hr, scale, b) for b in blurs.values()}   # (SR1), once per blur
            outs = {m: sr.upscale_array(params, config, state, lrs[blurs[m]])
                    for m, (params, config, state) in loaded.items()}
            outs["bicubic"] = sr.bicubic(lrs[blurs[args.model[0]]], hr.shape[:2])
            outs["photo"] = hr                                        # the reference row: 1, 1
            rows = {}
            for m, out in outs.items():
                out = np.clip(out, 0, 255).round()                  # the saved 8-bit image
                lap, edges = detail(out, scale, scale)
                rows[m] = [rms(lap) / rms(lap_ref), edges / edges_ref, checkerboard(out, scale),
                           rms(lap - lap_ref)]                  # the Laplacian of the error
            for m, row in rows.items():
                row[3] /= rows["bicubic"][3]                                     # over bicubic's
                ratios[m].append(row)
        results[os.path.basename(os.path.normpath(name))] = {
            m: dict(zip(("fine_detail", "edges", "grid", "fine_error"),
                        np.mean(r, axis=0).round(3).tolist()),
                    grid_max=round(float(np.max(np.array(r)[:, 2])), 3), images=len(r))
            for m, r in ratios.items()}
    if args.json:
        print(json.dumps(results))
        return
    for s, rows in results.items():
        n = rows["photo"]["images"]
        print(f"{s}: fine detail / edges, over the photo's; fine error, over bicubic's; "
              f"grid (Q4), mean / max ({n} images)")
        for m, r in rows.items():
            print(f"  {m:<28s} {r['fine_detail']:.3f}  {r['edges']:.3f}  {r['fine_error']:.3f}"
                  f"  {r['grid']:.2f} / {r['grid_max']:.2f}")


if __name__ == "__main__":
    main()
