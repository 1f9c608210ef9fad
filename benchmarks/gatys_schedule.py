"""Gatys coarse-to-fine schedules against one scale: time-to-loss at the output size (issue 22).

For each photo/painting pair and each schedule, runs the whole optimisation
through the API (targets at each size, enlargement, L-BFGS-B), recording the
wall time of every iteration. Losses are G1 with the same weights and layers
**at the output size**: at the last scale (the output size, all style layers)
that is the optimiser's own loss; an earlier scale's snapshots (every
``--eval-every`` iterations and its last) are enlarged the way the next scale
would start and evaluated there afterwards, outside the timed run.

Time-to-loss: for each target loss (the reference schedule's loss after
``--marks`` iterations and at its end), the wall time at which a schedule first
reaches it. Schedules alternate within a round (``--rounds``, the order
reversed every other round), so a shared machine's drift falls on all of them.

    NUMSTYLE_THREADS=1 NUMSTYLE_DATA=/work/shared python benchmarks/gatys_schedule.py \\
        --pairs tubingen:starry_night,chicago:composition_vii --size 384 \\
        --schedule old=384:300 --schedule new=288:40,384:105/balance=content/detail=1 \\
        --json out/sched.json --images out/sched
    python benchmarks/gatys_schedule.py --replot out/sched.json --images out/sched \\
        --figure loss.png --pictures side_by_side.jpg

The numbers and figures of docs/benchmarks.md ("Gatys coarse to fine") come from these two commands.

A schedule is ``NAME=S1:N1,S2:N2,...[/option...]`` with sizes as longer sides in
px (the last one should be ``--size``); ``NAME=default`` is
numstyle.schedule.default_schedule. Options:

``up=uint8|lanczos|bicubic``
    Enlargement: ``uint8`` is the deprocessed image rounded to 8 bits and
    enlarged with Lanczos (what numstyle gatys did before issue 22); the others
    resample the float image (numstyle.schedule.resample). Default lanczos.
``detail=D``
    Start each enlarged scale from ``up(x) + D (c - up(down(c)))`` (CF1 of
    numstyle.schedule): the content photo's detail that the coarser scale could
    not hold, added back. Default 0.
``early=L1+L2+...``
    Style layers at every scale but the last (each keeps its weight 1/5).
``balance=content`` / ``balance=content+tv``
    At each scale but the last, multiply the content (and TV) weight by
    pixels(output) / pixels(scale): the content loss (C1) is a sum over
    positions and the style loss (S3) is normalised, so a coarse scale would
    otherwise weigh style ~(output/size)^2 times more than G1 does.
``m=K``
    L-BFGS-B history (maxcor), default 10 (numstyle gatys's).
``opt=lbfgs|lbfgs-device``
    The optimiser (numstyle.gatys.optimize), default lbfgs (SciPy's L-BFGS-B).
``start=content|color``
    The first scale's start: the photo (numstyle gatys's default), or the photo with the
    painting's colour mean and covariance (CC2 of numstyle.color.match_color).
``avg=D``
    Also evaluate (afterwards) an exponential moving average of the last
    scale's iterates with decay D (a running mean of the image).

Pair names are files in $NUMSTYLE_DATA/images/{content,style} (or paths).
"""
import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from numstyle import color, gatys, schedule, weights  # noqa: E402
from numstyle.config import GATYS  # noqa: E402
from numstyle.fast import memory, parallel  # noqa: E402
from numstyle.image import (MEAN_BGR, deprocess, load_image, preprocess, resize,  # noqa: E402
                            save_image)

LAYERS = list(GATYS.style_layers)


def parse_schedule(text, size):
    """``NAME=S1:N1,...[/opt=v...]`` -> dict(name, sizes, iters, up, detail, early, avg)."""
    name, _, spec = text.partition("=")
    parts = spec.split("/")
    if parts[0] == "default":
        sizes, iters = schedule.default_schedule(size)
    else:
        pairs = [p.split(":") for p in parts[0].split(",")]
        sizes, iters = [int(s) for s, _ in pairs], [int(n) for _, n in pairs]
    sched = dict(name=name, sizes=sizes, iters=iters, up="lanczos", detail=0.0, early=None,
                 avg=None, balance="", maxcor=10, optimizer="lbfgs",
                 start="content")
    for opt in parts[1:]:
        k, _, v = opt.partition("=")
        if k == "up":
            sched["up"] = v
        elif k == "detail":
            sched["detail"] = float(v)
        elif k == "early":
            sched["early"] = v.split("+")
        elif k == "avg":
            sched["avg"] = float(v)
        elif k == "balance":
            sched["balance"] = v
        elif k == "m":
            sched["maxcor"] = int(v)
        elif k == "opt":
            sched["optimizer"] = v
        elif k == "start" and v in ("content", "color"):
            sched["start"] = v
        else:
            raise SystemExit(f"unknown schedule option {k!r} in {text!r}")
    return sched


def find_image(name, kind):
    if os.path.isfile(name):
        return name
    root = os.environ.get("NUMSTYLE_DATA",
                          os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
    for sub in (f"images/{kind}", "datasets/photos"):
        for ext in ("", ".jpg", ".png"):
            p = os.path.join(root, sub, name + ext)
            if os.path.isfile(p):
                return p
    raise SystemExit(f"{kind} image not found: {name}")


def objective_at(params, content_full, style_full, size, layers=None, balance=1.0,
                 balance_tv=False):
    """The G1 objective at ``size`` (CLI defaults: weights, content layer; style at the same size).

    ``balance`` multiplies the content weight (and with ``balance_tv`` the TV weight): the terms
    that grow with the pixels, where the style loss does not (S3)."""
    content = resize(content_full, longer_side=size)
    style = resize(style_full, longer_side=size)
    layers = layers or LAYERS
    tv_weight = GATYS.tv_weight * (balance if balance_tv else 1.0)
    return gatys.make_objective(params, "vgg16", content=preprocess(content),
                                styles=[preprocess(style)], style_layers=layers,
                                style_layer_weights=[1.0 / len(LAYERS)] * len(layers),
                                content_weight=GATYS.content_weight * balance,
                                style_weight=GATYS.style_weight, tv_weight=tv_weight), content


def to_rgb(x):
    """Preprocessed (1, 3, H, W) -> float RGB (H, W, 3), not rounded: the inverse of preprocess."""
    return (np.asarray(x, dtype=np.float32)[0].transpose(1, 2, 0) + MEAN_BGR)[:, :, ::-1]


def start_of_scale(x_prev, content_rgb, sched):
    """The next scale's start, preprocessed: (CF1) of numstyle.schedule, or the old 8-bit way."""
    shape = content_rgb.shape[:2]
    if sched["up"] == "uint8":                         # before issue 22: 8-bit RGB, Lanczos
        assert not sched["detail"], "detail= needs a float enlargement"
        return preprocess(resize(deprocess(x_prev).astype(np.float32), shape=shape))
    return preprocess(schedule.start_of_scale(to_rgb(x_prev), shape, content_rgb, sched["detail"],
                                              sched["up"]))


def run_schedule(params, content_full, style_full, sched, eval_every):
    """One timed run. Returns (records, snapshots, x_final, extras)."""
    records, snaps = [], []
    start, cpu0 = time.perf_counter(), time.process_time()
    x, evals_eq = None, 0.0
    n_scales = len(sched["sizes"])
    out_pixels = None
    for k, (size, iters) in enumerate(zip(sched["sizes"], sched["iters"])):
        last = k == n_scales - 1
        layers = sched["early"] if (sched["early"] and not last) else None
        balance = 1.0
        if sched["balance"]:  # content (and TV) weights x pixels(output) / pixels(scale) (CF2)
            balance = schedule.content_balance(
                resize(content_full, longer_side=sched["sizes"][-1]).shape,
                resize(content_full, longer_side=size).shape)
        objective, content_rgb = objective_at(params, content_full, style_full, size, layers,
                                              balance, "tv" in sched["balance"])
        if x is not None:
            x0 = start_of_scale(x, content_rgb, sched)
        elif sched["start"] == "color":   # the photo in the painting's colours (CC2)
            x0 = preprocess(color.match_color(content_rgb, resize(style_full, longer_side=size)))
        else:
            x0 = preprocess(content_rgb)
        ema = {"x": None}

        def callback(it, xk, parts, k=k, size=size, last=last, iters=iters, ema=ema,
                     objective=objective):
            t, cpu = time.perf_counter() - start, time.process_time() - cpu0
            records.append(dict(scale=k, size=size, it=it, t=t, cpu=cpu, loss=parts["total"],
                                content=parts["content"], style=parts["style"], tv=parts["tv"],
                                evals=objective.evaluations))
            if not last and (it % eval_every == 0 or it == iters):
                snaps.append(dict(scale=k, it=it, t=t, cpu=cpu, x=xk.copy()))
            if last and sched["avg"] is not None:
                d = sched["avg"]
                ema["x"] = (xk.astype(np.float64) if ema["x"] is None
                            else d * ema["x"] + (1 - d) * xk)

        x, _ = gatys.optimize(objective, x0, iters, sched["optimizer"], callback=callback,
                              progress=False, maxcor=sched["maxcor"])
        out_pixels = x.shape[2] * x.shape[3]
        evals_eq += objective.evaluations * out_pixels
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu0
    return records, snaps, x, dict(seconds=seconds, cpu=cpu, ema=ema["x"],
                                   evals_eq=evals_eq / out_pixels)


def evaluate_snapshots(reference, content_out, snaps, sched):
    """G1 at the output size of each coarse snapshot, enlarged the way a scale starts (CF1)."""
    out = []
    for s in snaps:
        x = start_of_scale(s["x"], content_out, sched)
        f, _ = reference(x)
        out.append(dict(scale=s["scale"], it=s["it"], t=s["t"], cpu=s["cpu"], loss=float(f)))
    return out


def curve(run, clock="t"):
    """[(time, loss at output size)] in time order.

    Coarse snapshots, then every last-scale iteration. ``clock``: ``t`` (wall) or ``cpu`` (this
    process's CPU time: what a busy shared machine changes least)."""
    last = max(r["scale"] for r in run["records"])
    pts = [(s[clock], s["loss"]) for s in run["snapshots"]]
    pts += [(r[clock], r["loss"]) for r in run["records"] if r["scale"] == last]
    return sorted(pts)


def time_to(pts, target):
    """The first wall time at which the curve is at or below ``target`` (None: never)."""
    for t, f in pts:
        if f <= target:
            return t
    return None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__)
    p.add_argument("--pairs", default="tubingen:starry_night",
                   help="CONTENT:STYLE,... (names or paths)")
    p.add_argument("--size", type=int, default=384, help="output size (longer side), px")
    p.add_argument("--schedule", action="append", default=[],
                   help="NAME=S1:N1,...[/opt...] (repeat)")
    p.add_argument("--reference",
                   help="schedule name whose marks are the targets (default: the first)")
    p.add_argument("--marks", default="100,200",
                   help="reference iterations whose losses are targets too")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--eval-every", type=int, default=25,
                   help="coarse-scale snapshot spacing (iterations)")
    p.add_argument("--json", default="out/gatys_schedule.json", help="where the curves go")
    p.add_argument("--images", help="folder for each run's final image (PNG)")
    p.add_argument("--replot", metavar="JSON",
                   help="no runs: summarise an earlier --json file (and draw --figure)")
    p.add_argument("--figure", metavar="PNG",
                   help="with --replot: loss (relative to the reference's final) "
                        "against wall time, one panel per pair")
    p.add_argument("--pictures", metavar="JPG",
                   help="with --replot and --images: the final images side by side")
    args = p.parse_args(argv)
    if args.replot:
        return replot(args)

    if not args.schedule:
        p.error("give at least one --schedule")
    parallel.bands_take_the_cores()
    memory.keep_freed_memory()
    params = weights.load_vgg(weights.find_vgg("vgg16"), "vgg16")
    scheds = [parse_schedule(s, args.size) for s in args.schedule]
    ref_name = args.reference or scheds[0]["name"]
    marks = [int(m) for m in args.marks.split(",") if m]
    results = dict(size=args.size, threads=os.environ.get("NUMSTYLE_THREADS"), schedules=scheds,
                   runs=[], machine=os.uname().nodename, started=time.strftime("%Y-%m-%d %H:%M:%S"))
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    for rnd in range(args.rounds):
        for pair in args.pairs.split(","):
            c_name, s_name = pair.split(":")
            content_full = load_image(find_image(c_name, "content"), None, "content")
            style_full = load_image(find_image(s_name, "style"), None, "style")
            reference, content_out = objective_at(params, content_full, style_full, args.size)
            order = scheds if rnd % 2 == 0 else scheds[::-1]
            for sched in order:
                records, snaps, x, extra = run_schedule(params, content_full, style_full, sched,
                                                        args.eval_every)
                final, _ = reference(x)
                run = dict(pair=pair, round=rnd, schedule=sched["name"], seconds=extra["seconds"],
                           cpu=extra["cpu"], evals_eq=extra["evals_eq"], final=float(final),
                           records=records,
                           snapshots=evaluate_snapshots(reference, content_out, snaps, sched))
                if extra["ema"] is not None:
                    run["final_avg"] = float(reference(extra["ema"].astype(np.float32))[0])
                saved = np.clip(deprocess(x), 0, 255)
                run["final_uint8"] = float(reference(preprocess(saved.astype(np.float32)))[0])
                if args.images:
                    os.makedirs(args.images, exist_ok=True)
                    name = f"{c_name}_{s_name}_{sched['name']}_r{rnd}.png"
                    save_image(os.path.join(args.images, name), saved)
                results["runs"].append(run)
                print(f"{pair} {sched['name']:>10s} round {rnd}: {run['seconds']:7.1f} s "
                      f"(cpu {run['cpu']:.1f} s), final {run['final']:.5g}"
                      f" (uint8 {run['final_uint8']:.5g}"
                      + (f", avg {run['final_avg']:.5g}" if "final_avg" in run else "")
                      + f"), {run['evals_eq']:.0f} output-size evaluations", flush=True)
                with open(args.json, "w") as f:
                    json.dump(results, f, default=float)
            summarize(results, pair, rnd, ref_name, marks)
    return 0


def summarize(results, pair, rnd, ref_name, marks):
    """Time-to-loss of every schedule for the reference's marks, printed."""
    runs = [r for r in results["runs"] if r["pair"] == pair and r["round"] == rnd]
    ref = next((r for r in runs if r["schedule"] == ref_name), None)
    if ref is None:
        return
    last = max(x["scale"] for x in ref["records"])
    ref_last = [x for x in ref["records"] if x["scale"] == last]
    targets = {f"ref@{m}": ref_last[m - 1]["loss"] for m in marks if m <= len(ref_last)}
    targets["ref final"] = ref["final"]
    print(f"  time-to-loss, {pair}, round {rnd} (targets: "
          + ", ".join(f"{k} {v:.5g}" for k, v in targets.items()) + ")")
    for r in runs:
        times = {c: ([time_to(curve(r, c), v) for v in targets.values()] if "cpu" in r
                     else [None] * len(targets))
                 for c in ("t", "cpu")}
        if "cpu" not in r:
            times["t"] = [time_to(curve(r, "t"), v) for v in targets.values()]
        fmt = lambda ts: ", ".join("never" if t is None else f"{t:.1f}" for t in ts)  # noqa: E731
        print(f"  {r['schedule']:>10s}: wall {fmt(times['t'])} s, cpu {fmt(times['cpu'])} s; total "
              f"{r['seconds']:.1f} s ({r['seconds'] / ref['seconds']:.2f} of ref; "
              f"cpu {r.get('cpu', 0) / ref.get('cpu', 1):.2f}, "
              f"evaluations {r['evals_eq'] / ref['evals_eq']:.2f}), final {r['final']:.5g}"
              f" ({r['final'] / ref['final']:.4f} of ref)", flush=True)
        r["time_to"] = dict(zip(targets, times["t"]))
        r["cpu_to"] = dict(zip(targets, times["cpu"]))


def replot(args):
    """Summaries, the loss-against-time figure and the side-by-side pictures from a --json file."""
    from PIL import Image

    from numstyle.commands.figures import grid, plot

    with open(args.replot) as f:
        results = json.load(f)
    names = [s["name"] for s in results["schedules"]]
    ref_name = args.reference or names[0]
    marks = [int(m) for m in args.marks.split(",") if m]
    pairs = list(dict.fromkeys(r["pair"] for r in results["runs"]))
    panels, pictures, labels = [], [], []
    for rnd in sorted({r["round"] for r in results["runs"]}):
        for pair in pairs:
            summarize(results, pair, rnd, ref_name, marks)
    for pair in pairs:
        runs = [r for r in results["runs"] if r["pair"] == pair and r["round"] == 0]
        ref = next(r for r in runs if r["schedule"] == ref_name)
        series = {}
        for r in runs:
            pts = [(t, f / ref["final"]) for t, f in curve(r) if f <= 1.5 * ref["final"]]
            label = f"{r['schedule']} ({r['seconds']:.0f} s)"
            series[label] = ([t for t, _ in pts], [y for _, y in pts])
        panels.append(plot(series, f"{pair}, {results['size']} px", "wall time, s",
                           "G1 / old final", size=(640, 300)))
        if args.images:
            c_name, s_name = pair.split(":")
            for r in runs:
                pictures.append(np.asarray(Image.open(os.path.join(
                    args.images, f"{c_name}_{s_name}_{r['schedule']}_r0.png")).convert("RGB")))
                labels.append(f"{c_name}, {r['schedule']}: {r['seconds']:.0f} s, "
                              f"G1 {r['final'] / ref['final']:.3f}x")
    if args.figure:
        Image.fromarray(grid(panels, cols=1)).save(args.figure)
        print(f"wrote {args.figure}")
    if args.pictures and pictures:
        cols = len(pictures) // len(pairs)
        Image.fromarray(grid(pictures, labels, cols=cols)).save(args.pictures, quality=80)
        print(f"wrote {args.pictures}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
