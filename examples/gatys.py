"""Gatys et al. style transfer through the library, start to end.

    python examples/gatys.py                             # Tubingen in the style of The Starry Night
    python examples/gatys.py me.jpg wave.jpg --size 512  # your photo and painting, longer side 512

Every flag (scales, colour, tiles, the GPU) is on ``numstyle gatys``. Read on downward:
numstyle/gatys.py (the objective, L-BFGS-B), numstyle/vgg.py, numstyle/layers.py (the
convolution's backward), numstyle/losses.py; docs/reading-order.md is the map.
"""
import argparse
import os
import sys

from _common import run
from numstyle import gatys, image, weights
from numstyle.config import GATYS
from numstyle.data import sample_image


def main(content_path=None, style_path=None, size=GATYS.size):
    content_path = content_path or sample_image("tubingen.jpg")
    style_path = style_path or sample_image("starry_night.jpg")
    model, path = weights.resolve_vgg()                       # VGG19, else VGG16 (said in one line)
    deepest = GATYS.style_layers[-1]                          # relu5_1: the loss reads no deeper
    params = weights.load_vgg(path, model, upto=deepest)      # {'conv1_1': (w, b), ...}
    content = image.preprocess(image.load_image(content_path, size=size))  # (1, 3, H, W) BGR - mean
    style = image.preprocess(image.load_image(style_path, size=size))

    objective = gatys.make_objective(params, model, content=content, styles=[style])   # (G1)
    # L-BFGS-B, a progress bar
    x, history = gatys.optimize(objective, content.copy(), iters=GATYS.iters)

    stems = [os.path.splitext(os.path.basename(p))[0] for p in (content_path, style_path)]
    out = image.save_image(os.path.join("out", "_".join(stems) + ".png"), image.deprocess(x))
    last = history[-1]
    print(f"loss: total {last['total']:.4g}, content {last['content']:.4g}, "
          f"style {last['style']:.4g}; {last['time']:.0f} s")
    print(out)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(prog="examples/gatys.py", description=__doc__.splitlines()[0])
    ap.add_argument("content", nargs="?", help="photo (default: Tubingen)")
    ap.add_argument("style", nargs="?", help="painting (default: The Starry Night)")
    ap.add_argument("--size", type=int, default=GATYS.size, help="longer side, px")
    a = ap.parse_args()
    sys.exit(run(lambda: main(a.content, a.style, a.size), "examples/gatys.py"))
