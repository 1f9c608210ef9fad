"""Run the papers' experiments: one labelled figure (PNG) and its numbers (JSON) each,
in out/experiments/.

    python examples/experiments.py            # all of them, CPU-sized (see the estimate below)
    python examples/experiments.py --quick    # all, tiny: a smoke test in well under a minute
    python examples/experiments.py --only texture_synthesis  # one of them
    python examples/experiments.py --size 192 --iters 200 --model vgg16

Every other flag goes to ``numstyle experiments`` (--size, --iters, --model, --weights, --content,
--style, --data, --train-iters, --quick, --out). The names, in order, are those of
``numstyle experiments --list``. Defaults: the sample images, VGG found like ``numstyle gatys``,
128 px, 150 L-BFGS iterations per run; johnson_layers trains three networks for 300 iterations
each on $NUMSTYLE_DATA/datasets/photos.

Reading on: numstyle/experiments.py (one function per experiment), numstyle/experiments_johnson.py.
"""
import argparse
import sys
import time

from numstyle.cli import main
from numstyle.commands.experiments import EXPERIMENTS


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], add_help=False)
    ap.add_argument("--only", action="append", choices=list(EXPERIMENTS), metavar="NAME",
                    help="run only this experiment (may be repeated)")
    ap.add_argument("--out", default="out/experiments", help="output folder")
    ap.add_argument("-h", "--help", action="store_true")
    known, rest = ap.parse_known_args()
    if known.help:
        ap.print_help()
        print("\nother flags are those of `numstyle experiments`:\n")
        sys.exit(main(["experiments", "--help"], prog="examples/experiments.py"))
    start, failed = time.perf_counter(), []
    for name in known.only or list(EXPERIMENTS):
        code = main(["experiments", name, "--out", known.out] + rest,
                    prog="examples/experiments.py")
        if code:
            failed.append(name)
    print(f"{len(known.only or EXPERIMENTS) - len(failed)} experiment(s) done in "
          f"{time.perf_counter() - start:.0f} s; figures and numbers in {known.out}/"
          + (f"; failed: {', '.join(failed)}" if failed else ""))
    sys.exit(1 if failed else 0)
