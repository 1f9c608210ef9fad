"""``numstyle experiments``: the papers' experiments, each as a labelled figure and its numbers.

    numstyle experiments --list
    numstyle experiments content_reconstruction --out out/experiments
        [--quick] [--size N] [--iters N]

Each experiment writes ``DIR/NAME.png`` (a labelled grid) and ``DIR/NAME.json``
(its settings, final losses and wall-clock times). Every Gatys run here
optimises the pixels with L-BFGS-B (unless it compares optimisers) with
content weight 1, no total variation term, and average pooling.

Layer names are ours: the paper's "conv4_2" is the output after Caffe's
in-place ReLU, which is our ``relu4_2``, so the experiments use ``relu`` names.
The Johnson experiment is in :mod:`numstyle.commands.experiments_johnson`.
"""
import json
import os
import platform
import sys
import time

import numpy as np

from .. import gatys
from ..config import GATYS
from ..data import sample_image
from ..batch import Task, failures_message, run_batch, where_from_args
from ..errors import NumstyleError
from ..files import atomic_path, check_input, check_outputs
from ..image import deprocess, image_size, load_image, preprocess, resize, save_image
from ..vgg import BLOCKS
from ..weights import load_vgg, resolve_vgg
from . import figures
from .args import HelpFormatter, positive_int
from .experiments_johnson import johnson_layers
from .figures import figure, stack
from .batches import add_cluster_arguments
from .report import add_json_argument, reported

FULL = dict(size=128, iters=150, train_size=128, train_iters=300, batch_size=4)
QUICK = dict(size=32, iters=2, train_size=32, train_iters=2,
             batch_size=1)  # CI: seconds, not minutes
STYLE_WEIGHT = 1e3  # alpha/beta = 1e-3, as in the paper's figures
RATIOS = (1e-1, 1e-2, 1e-3, 1e-4)                        # alpha/beta, with alpha = 1


def add_parser(sub):
    p = sub.add_parser(
        "experiments", help="run one of the papers' experiments: a figure and its numbers",
        description="Reproduce an experiment of Gatys et al. or Johnson et al.: writes "
                    "DIR/NAME.png "
        "(a labelled grid) and DIR/NAME.json (settings, losses, wall-clock times).",
        formatter_class=HelpFormatter)
    p.add_argument("name", nargs="?", metavar="NAME", help="experiment name (see --list)")
    p.add_argument("--list", action="store_true",
                   help="print the experiment names, one per line (--json: a JSON list)")
    p.add_argument("--out", metavar="DIR", default="out/experiments", help="output folder")
    p.add_argument("--quick", action="store_true", help="tiny images and 2 iterations (for CI)")
    p.add_argument(
        "--size", type=positive_int,
        help=f"longer side of the images, px (default: {FULL['size']}, "
        f"quick {QUICK['size']})")
    p.add_argument(
        "--iters", type=positive_int,
        help=f"optimiser iterations per run (default: {FULL['iters']}, "
        f"quick {QUICK['iters']})")
    p.add_argument("--model", choices=["vgg19", "vgg16"],
                   help="network (default: vgg19, or vgg16 when only its weights are found)")
    p.add_argument("--weights", metavar="PATH",
                   help="Keras notop .h5 weight file (default: searched)")
    p.add_argument("--content", metavar="PATH",
                   help="content photo (default: the sample tubingen.jpg)")
    p.add_argument("--style", metavar="PATH",
                   help="style image (default: the sample starry_night.jpg)")
    p.add_argument("--data", metavar="DIR", help="training photos for johnson_layers "
                                                 "(default: $NUMSTYLE_DATA/datasets/photos)")
    p.add_argument("--train-iters", type=positive_int,
                   help=f"training iterations per network in johnson_layers "
                        f"(default: {FULL['train_iters']}, quick {QUICK['train_iters']})")
    p.add_argument("--reference", action="store_true",
                   help="run the reference engine only, no fast path (as NUMSTYLE_REFERENCE=1)")
    add_cluster_arguments(p)
    add_json_argument(p, "one JSON object per file written (the figure, its numbers), then a "
                         "summary,")
    p.set_defaults(run=run, iterative=True)
    return p


def run(args):
    """``--list``: the names, one per line (``--json``: one JSON list of names and descriptions);
    else the experiment."""
    if not args.list:
        return run_experiment(args)
    if args.json:
        print(json.dumps([{"name": name, "description": description}
                          for name, (_, description) in EXPERIMENTS.items()]))
    else:
        print("\n".join(EXPERIMENTS))
    return 0


@reported
def run_experiment(args):
    if args.name is None:
        raise NumstyleError("give an experiment name (numstyle experiments --list shows them)")
    if args.name not in EXPERIMENTS:
        raise NumstyleError(
            f"unknown experiment {args.name!r}: choose from {', '.join(EXPERIMENTS)}")
    func, description = EXPERIMENTS[args.name]
    for path, what in ((args.content, "content image"), (args.style, "style image")):
        if path:
            image_size(path, what)  # a regular, readable image: refused now, not in the lab
    if args.weights:
        check_input(args.weights, "weight file")
    files = [os.path.join(args.out, args.name + ext) for ext in (".png", ".json")]
    check_outputs(files, [args.content, args.style, args.weights],
                  [args.out])  # before minutes of optimising, not after
    start = time.perf_counter()
    print(f"experiment {args.name}: {description}", flush=True)
    lab = Lab(args)
    fig, results = func(lab)
    png = save_image(os.path.join(args.out, args.name + ".png"), fig)
    record = {
        "experiment": args.name,
        "description": description,
        "settings": lab.settings(),
        "results": results,
        "wall_clock_s": time.perf_counter() - start,
        "figure": os.path.basename(png),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count()
        }
    }
    path = write_json(os.path.join(args.out, args.name + ".json"), record)
    print(f"{args.name}: {record['wall_clock_s']:.1f} s wall-clock; wrote {png} and {path}")
    return [{"out": png, "experiment": args.name, "kind": "figure"},
            {"out": path, "experiment": args.name, "kind": "numbers",
             "wall_clock_s": record["wall_clock_s"]}]


class Lab:
    """What the experiments share: settings, the images, the network (loaded when first needed),
    ``run``."""

    def __init__(self, args):
        preset = QUICK if args.quick else FULL
        self.args, self.quick = args, args.quick
        self.size, self.iters = args.size or preset["size"], args.iters or preset["iters"]
        self.preset = preset
        self.content_path = args.content or sample_image("tubingen.jpg")
        self.style_path = args.style or sample_image("starry_night.jpg")
        self.content = load_image(self.content_path, self.size,
                                  "content image")  # (H, W, 3) RGB 0..255
        self.style = load_image(self.style_path, self.size, "style image")
        self._vgg, self.extra = None, {}

    @property
    def vgg(self):
        """``(model, path, params)`` resolved like ``numstyle gatys``, loaded once."""
        if self._vgg is None:
            model, path = resolve_vgg(self.args.model, self.args.weights)
            self._vgg = model, path, load_vgg(path, model)
        return self._vgg

    def settings(self):
        s = {
            "quick": self.quick,
            "size": self.size,
            "iters": self.iters,
            "content": self.content_path,
            "style": self.style_path,
            "content_hw": list(self.content.shape[:2]),
            "style_hw": list(self.style.shape[:2])
        }
        if self._vgg is not None:
            s.update(model=self._vgg[0], weights=self._vgg[1], content_weight=1.0,
                     default_style_weight=STYLE_WEIGHT, tv_weight=0.0, default_pool="avg",
                     default_content_layer=GATYS.content_layer,
                     default_style_layers=list(GATYS.style_layers),
                     noise="128 + 64 N(0, 1), clipped")
        return dict(s, **self.extra)

    def runs(self, specs):
        """Several Gatys optimisations ``[(label, {keyword: value}), ...]`` (see :meth:`run_here`)
        as one batch -- in this process, or on a cluster with ``--workers`` / ``--scheduler``, the
        lab (images, weights) sent to each worker once; their results in order."""
        self.vgg                                     # loaded here, once
        tasks = [Task(label, lab_run, (label, kw)) for label, kw in specs]

        def said(i, result):
            record = result[1]
            print(f"  {record['label']}: loss {record['loss']['total']:.5g} after "
                  f"{record['iterations']} iterations, {record['time_s']:.1f} s", flush=True)

        bar = len(tasks) > 1 and sys.stderr.isatty()   # a log file: the lines above suffice
        outcome = run_batch(tasks, self, where_from_args(self.args), True, bar, "runs", said)
        if outcome.failed:
            raise NumstyleError(failures_message(outcome, len(tasks), "runs"))
        return [outcome.results[i] for i in range(len(tasks))]

    def run(self, label, **kw):
        """One run of :meth:`run_here`, as :meth:`runs` does it."""
        return self.runs([(label, kw)])[0]

    def run_here(self, label, content=False, style=False, init="noise", seed=0,
                 content_layer=GATYS.content_layer, style_layers=GATYS.style_layers,
                 style_weight=STYLE_WEIGHT, pool="avg", optimizer="lbfgs"):
        """One Gatys optimisation; returns ``(result uint8 RGB, record, history)``."""
        model, _, params = self.vgg
        objective = gatys.make_objective(params, model,
                                         content=preprocess(self.content) if content else None,
                                         styles=[preprocess(self.style)] if style else [],
                                         pool=pool, content_layer=content_layer,
                                         style_layers=style_layers, content_weight=1.0,
                                         style_weight=style_weight if style else 0.0, tv_weight=0.0)
        x0 = self.initial(init, objective.shape[2:], seed)
        t0 = time.perf_counter()
        x, history = gatys.optimize(objective, preprocess(x0), self.iters, optimizer,
                                    progress=False)
        seconds = time.perf_counter() - t0
        last = history[-1] if history else objective.last
        record = {
            "label": label,
            "init": init,
            "seed": seed,
            "content_layer": content_layer if content else None,
            "style_layers": list(style_layers) if style else None,
            "style_weight": style_weight if style else 0.0,
            "pool": pool,
            "optimizer": optimizer,
            "iterations": len(history),
            "evaluations": objective.evaluations,
            "time_s": seconds,
            "loss": {
                k: float(last[k])
                for k in ("total", "content", "style", "tv")
            }
        }
        return deprocess(x), record, history

    def initial(self, init, hw, seed):
        """Starting image (H, W, 3) RGB 0..255: noise, content, style, black, or a 1-px
        checkerboard."""
        if init == "noise":
            rng = np.random.default_rng(seed)
            return np.clip(128.0 + 64.0 * rng.standard_normal((*hw, 3)), 0, 255).astype(np.float32)
        if init in ("content", "style"):
            return resize(self.content if init == "content" else self.style, shape=tuple(hw))
        if init == "black":
            return np.zeros((*hw, 3), np.float32)
        if init == "checkerboard":
            board = (np.indices(tuple(hw)).sum(axis=0) % 2) * 255.0
            return np.repeat(board[:, :, None], 3, axis=2).astype(np.float32)
        raise NumstyleError(f"unknown init {init!r}")


# ---------------------------------------------------------------- the experiments, in order

def content_reconstruction(lab):
    layers = ["relu1_2", "relu2_2"] + [last_relu(lab.vgg[0], b) for b in (3, 4, 5)]
    runs = lab.runs([(name, dict(content=True, content_layer=name)) for name in layers])
    row = [(lab.content, "content")] + [(x, name) for name, (x, _, _) in zip(layers, runs)]
    return (figure([row], "Content reconstruction from white noise (content loss only)"),
            {"layers": layers, "runs": [r for _, r, _ in runs]})


def reconstruction_seeds(lab):
    layer = last_relu(lab.vgg[0], 3)
    (a, ra, _), (b, rb, _) = lab.runs([(f"{layer} seed {s}", dict(content=True,
                                                                   content_layer=layer, seed=s))
                                       for s in (0, 1)])
    diff = np.abs(a.astype(np.float64) - b.astype(np.float64))                 # (H, W, 3), 0..255
    hw = a.shape[:2]
    start_diff = np.abs(lab.initial("noise", hw, 0) - lab.initial("noise", hw, 1)).mean()
    gain = 255.0 / max(diff.max(), 1e-9)  # the difference, stretched
    row = [(lab.content, "content"), (a, "seed 0"), (b, "seed 1"),
           (gain * diff, f"|difference| x{gain:.3g}")]
    return (figure([row], f"Content reconstruction at {layer} from two noise seeds"), {
        "layer": layer,
        "mean_abs_diff": float(diff.mean()),
        "mean_abs_diff_of_starting_noise": float(start_diff),
        "runs": [ra, rb]
    })


def texture_synthesis(lab):
    sets = style_layer_sets()
    rows, runs = [], []
    every = lab.runs([(f"seed {seed} {span(s)}", dict(style=True, style_layers=s, seed=seed))
                      for seed in (0, 1) for s in sets])
    for seed in (0, 1):
        done = every[seed * len(sets):(seed + 1) * len(sets)]
        rows.append([(lab.style, "style")] + [(x, f"seed {seed}\n{span(s)}")
                                              for s, (x, _, _) in zip(sets, done)])
        runs += [r for _, r, _ in done]
    return (figure(rows, "Texture synthesis (style loss only) from style layers up to each block"),
            {"style_layer_sets": sets, "seeds": [0, 1], "runs": runs})


def style_sweeps(lab):
    model = lab.vgg[0]
    sweeps = {"content_layer": [dict(content_layer=f"relu{b}_2") for b in range(1, 6)],
              "style_layers": [dict(style_layers=s) for s in style_layer_sets()],
              "ratio": [dict(style_weight=1.0 / r) for r in RATIOS]}
    labels = {
        "content_layer": lambda kw: kw["content_layer"],
        "style_layers": lambda kw: span(kw["style_layers"]),
        "ratio": lambda kw: f"a/b = {1.0 / kw['style_weight']:.0e}"
    }
    rows, results = [], {"model": model}
    specs = [(f"{labels[sweep](kw)} from {init}", dict(kw, content=True, style=True, init=init))
             for sweep, configs in sweeps.items() for init in ("noise", "content")
             for kw in configs]
    every = iter(lab.runs(specs))
    for sweep, configs in sweeps.items():
        results[sweep] = []
        for init in ("noise", "content"):
            done = [next(every) for _ in configs]
            rows.append([(x, f"{labels[sweep](kw)}\nfrom {init}, {r['time_s']:.1f} s")
                         for kw, (x, r, _) in zip(configs, done)])
            results[sweep] += [r for _, r, _ in done]
    every = [r for sweep in sweeps for r in results[sweep]]
    results["mean_time_s"] = {
        init: float(np.mean([r["time_s"] for r in every if r["init"] == init]))
        for init in ("noise", "content")
    }
    title = ("Style transfer sweeps: content layer, style layers, a/b; "
             "from noise and from the content")
    return figure(rows, title), results


def initialisation(lab):
    inits = ["noise", "content", "style", "black", "checkerboard"]
    done = lab.runs([(init, dict(content=True, style=True, init=init)) for init in inits])
    target = 1.05 * max(r["loss"]["total"] for _, r, _ in done)  # a loss every start reaches
    for _, r, history in done:
        hit = next((i for i, h in enumerate(history) if h["total"] <= target), None)
        r["iterations_to_target"] = None if hit is None else hit + 1
        r["seconds_to_target"] = None if hit is None else history[hit]["time"]
        r["total_per_iteration"] = [h["total"] for h in history]
    hw = done[0][0].shape[:2]
    starts = [(lab.initial(init, hw, 0), f"start: {init}") for init in inits]
    ends = [(x, f"{r['label']}: final {r['loss']['total']:.3g}\n" +
             (f"target at it {r['iterations_to_target']}"
              if r["iterations_to_target"] else "target not reached")) for x, r, _ in done]
    return (figure(
        [starts, ends],
        f"Initialisation: iterations to reach 1.05 x the worst final loss ({target:.4g})"), {
            "target_loss": target,
            "target_rule": "1.05 x the highest final total loss (every start reaches it)",
            "runs": [r for _, r, _ in done]
        })


def pooling(lab):
    done = lab.runs([(f"{pool} pooling", dict(content=True, style=True, pool=pool))
                     for pool in ("avg", "max")])
    row = [(lab.content, "content"), (lab.style, "style")] + [(x, r["label"]) for x, r, _ in done]
    return figure([row], "Average vs max pooling (style transfer from noise)"), {
        "runs": [r for _, r, _ in done]
    }


def loss_curves(lab):
    optimizers = ("lbfgs", "lbfgs-device", "adam")
    done = dict(zip(optimizers, lab.runs([(opt, dict(content=True, style=True, optimizer=opt))
                                          for opt in optimizers])))
    names = {"lbfgs": "L-BFGS-B", "lbfgs-device": "projected L-BFGS", "adam": "Adam"}
    series, curves = {}, {}
    for opt, (_, _, history) in done.items():
        curves[opt] = {
            k: [float(h[k]) for h in history]
            for k in ("total", "content", "style", "time")
        }
        series.update({f"{names[opt]}: {k}": curves[opt][k] for k in ("total", "content", "style")})
    chart = figures.plot(series, "Style transfer from noise: loss per iteration", "iteration",
                         "loss", log_y=True)
    results = [
        (x, f"{names[opt]}: {r['loss']['total']:.4g}\n{r['iterations']} it, {r['time_s']:.1f} s")
        for opt, (x, r, _) in done.items()
    ]
    fig = stack(
        figure([[(chart, "")]], "L-BFGS-B (SciPy) vs projected L-BFGS (numstyle) vs Adam (lr 10)",
               label_height=18), figure([results], None, min_side=256))
    return fig, {"adam_lr": 10.0, "curves": curves, "runs": [r for _, r, _ in done.values()]}


EXPERIMENTS = {
    "content_reconstruction": (content_reconstruction,
                               "content reconstruction from white noise at relu1_2, "
                               "relu2_2 and the last layer of blocks 3-5"),
    "reconstruction_seeds": (reconstruction_seeds,
                             "the block-3 reconstruction from two noise seeds, and how "
                             "much the results differ"),
    "texture_synthesis": (texture_synthesis,
                          "texture synthesis from style layers up to each block, two seeds"),
    "style_sweeps": (
        style_sweeps,
        "style transfer: content layer, style layers and alpha/beta sweeps, from noise "
        "and from the content image, with times"),
    "initialisation": (initialisation,
                       "style transfer from noise, content, style, black and a checkerboard: "
                       "iterations to reach a common loss"),
    "pooling": (pooling, "average vs max pooling, same settings"),
    "loss_curves": (loss_curves,
                    "total/content/style loss per iteration: L-BFGS-B, projected L-BFGS, Adam"),
    "johnson_layers": (johnson_layers,
                       "Johnson et al.: three style networks trained with content layer relu2_2, "
                       "relu3_3 and relu4_3, each stylising the same photo"),
}


# ---------------------------------------------------------------- helpers

def lab_run(lab, label, kw):
    """One run of a batch, where it lands: :meth:`Lab.run_here`."""
    return lab.run_here(label, **kw)


def last_relu(model, block):
    """The last layer of a block: relu3_3 for VGG16, relu3_4 for VGG19."""
    return f"relu{block}_{BLOCKS[model][block - 1]}"


def style_layer_sets():
    """relu1_1; relu1_1, relu2_1; ...; relu1_1 ... relu5_1."""
    return [[f"relu{b}_1" for b in range(1, n + 1)] for n in range(1, 6)]


def span(layers):
    return layers[0] if len(layers) == 1 else f"{layers[0]}..{layers[-1]}"


def write_json(path, obj):
    """Write JSON atomically: a temporary file in the same folder, then rename."""
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(obj, f, indent=1, default=float)
    return path
