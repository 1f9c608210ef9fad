"""``numstyle bench``: time the engine, report medians and peak memory.

- ``gatys``: one Gatys objective evaluation -- forward to conv5_1, content
  loss at conv4_2, style losses at conv1_1 ... conv5_1, the input-gradient
  backward, targets precomputed;
- ``train``: one Johnson training iteration (transformer, VGG16 perceptual
  loss, backward, Adam) on a batch of ``--batch-size`` images;
- ``stylize``: one forward pass of the style network on one image.

``--compare-torch`` runs the same step in PyTorch (benchmarks/torch_*.py, in
a subprocess, only where torch happens to be installed), alternating with
numstyle, and prints the ratio. Speed targets live here, never in timed tests.
"""
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

from .. import gatys, settings, train, transformer, weights
from ..config import TRAIN, WIDTHS
from ..backend import check_device, gpu_name, synchronize, to_device
from ..errors import NumstyleError
from ..fast import winograd_numba
from ..optim import adam
from ..vgg import BLOCKS, conv_shapes, deepest, layer_names, pools_before, random_params
from .args import HelpFormatter, add_common_arguments, positive_int, three_widths

BENCH_CONTENT = "conv4_2"
BENCH_STYLE = ["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"]
BENCH_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "benchmarks")


def add_parser(sub):
    p = sub.add_parser(
        "bench", help="time the engine (medians, GFLOP/s, peak memory)",
        description="Benchmarks. Report medians of several runs and compare with a reference "
        "measured in the same run.", formatter_class=HelpFormatter)
    p.add_argument("what", choices=["gatys", "train", "stylize"], help="which step to time")
    p.add_argument("--model", choices=sorted(BLOCKS), default="vgg16", help="network")
    p.add_argument("--size", type=positive_int, help="image side, px (default: 256; stylize 512)")
    p.add_argument("--batch-size", type=positive_int, default=4, help="train: images per iteration")
    p.add_argument("--norm", choices=["instance", "batch"], default="instance",
                   help="train/stylize: normalisation")
    p.add_argument("--upsample", choices=["transposed", "nearest"], default="transposed",
                   help="train/stylize: the style network's up-sampling layers")
    p.add_argument("--width", type=three_widths, default=list(TRAIN.width), metavar="A,B,C|NAME",
                   help="train/stylize: the style network's channels, or "
                   + " or ".join(f"{k} ({','.join(map(str, v))})" for k, v in WIDTHS.items()))
    p.add_argument("--runs", type=positive_int, default=5, help="timed runs (after one warm-up)")
    p.add_argument("--pool", choices=["avg", "max"], default="avg", help="pooling")
    p.add_argument(
        "--weights", metavar="PATH",
        help="weight file (default: the real one if found, else random "
        "weights of the same shapes -- timing does not depend on values)")
    add_common_arguments(p)
    p.add_argument("--layers", action="store_true",
                   help="gatys: print a per-layer timing table (VGG's layers, both ways)")
    p.add_argument("--compare-torch", action="store_true",
                   help="time the same step in PyTorch, if installed")
    p.add_argument(
        "--rounds", type=positive_int, default=3,
        help="with --compare-torch: alternate PyTorch and numstyle this many times; the ratio is "
        "the median of the per-round ratios, so machine drift cancels")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run, iterative=True)


def run(args):
    check_device(args.device)
    if args.layers and args.what != "gatys":
        raise NumstyleError(f"--layers times VGG's layers: it is for bench gatys, not {args.what}")
    if args.size is None:
        args.size = 512 if args.what == "stylize" else 256
    measure = {
        "gatys": lambda: bench_gatys(args.model, args.size, args.runs, args.pool, args.weights,
                                     args.device),
        "train": lambda: bench_train(args),
        "stylize": lambda: bench_stylize(args)
    }[args.what]
    if not args.compare_torch:
        result = measure()
    else:
        rounds = []
        for _ in range(args.rounds):  # A B A B ...: each ratio from neighbouring runs
            reference = torch_reference(args)
            if "error" in reference:
                break
            rounds.append((reference, measure()))
        result = merge_rounds(rounds, args) if rounds else dict(measure(), torch=reference)
    if args.layers and args.what == "gatys":
        result["layers"] = bench_gatys(args.model, args.size, args.runs, args.pool, args.weights,
                                       args.device, per_layer=True)["layers"]
    if args.json:
        print(json.dumps(result))
    else:
        print_report(result)
    return 0


def merge_rounds(rounds, args):
    """Pool the timings of all rounds; the ratio is the median of the per-round ratios."""
    result = rounds[-1][1]
    times = [t for _, r in rounds for t in r["times_s"]]
    result.update(times_s=times, median_s=statistics.median(times), min_s=min(times),
                  max_s=max(times), runs=len(times))
    if args.what == "gatys":
        result["gflops"] = gatys_flops(args.model, args.size) / result["median_s"] / 1e9
    torch_times = [t for ref, _ in rounds for t in ref["times_s"]]
    result["torch"] = dict(rounds[-1][0], times_s=torch_times,
                           median_s=statistics.median(torch_times),
                           peak_rss_mb=max(ref["peak_rss_mb"] for ref, _ in rounds))
    result["round_ratios"] = [r["median_s"] / ref["median_s"] for ref, r in rounds]
    result["ratio_vs_torch"] = statistics.median(result["round_ratios"])
    return result


def timed(fn, runs):
    """Warm up once, then time ``runs`` calls (GPU work waited for): the list of seconds."""
    fn()
    times = []
    for _ in range(runs):
        synchronize()
        t0 = time.perf_counter()
        fn()
        synchronize()
        times.append(time.perf_counter() - t0)
    return times


def summary(times, **fields):
    now = settings.get()
    result = dict(fields, times_s=times, median_s=statistics.median(times), min_s=min(times),
                  max_s=max(times), runs=len(times), peak_rss_mb=peak_rss_mb(),
                  numpy=np.__version__, threads=now.threads, reference=now.reference,
                  winograd=now.winograd, compiled=winograd_numba.available())
    if fields.get("device") == "gpu":                   # and the other settings gpu_session.sh A/Bs
        result.update(gpu=gpu_name(), fused_kernels=now.fused,
                      cupy_tf32=os.environ.get("CUPY_TF32", "0") == "1")
    return result


def bench_train(args):
    """One Johnson training iteration: transformer + VGG16 perceptual loss + backward + Adam."""
    path = args.weights or weights.find_vgg("vgg16")
    upto = deepest("vgg16", [TRAIN.content_layer, *TRAIN.style_layers])
    vgg = (weights.load_vgg(path, "vgg16", upto=upto) if path
           else random_params("vgg16", seed=0, upto=upto))
    vgg = {k: (to_device(w, args.device), to_device(b, args.device)) for k, (w, b) in vgg.items()}
    rng = np.random.default_rng(0)
    img = lambda n: to_device(
        rng.uniform(0, 255,
                    (n, 3, args.size, args.size)).astype(np.float32), args.device)  # noqa: E731
    loss = train.PerceptualLoss(vgg, img(1))
    spec = transformer.style_spec(tuple(args.width), upsample=args.upsample)
    params = train.params_to(transformer.init_params(spec), args.device)
    state = transformer.init_state(params, args.norm)
    batch = img(args.batch_size)
    adam_state = {}

    def iteration():
        _, grads = train.network_step(params, spec, args.norm, state, batch, loss)
        for key in params:
            params[key], adam_state[key] = adam(params[key], grads[key], adam_state.get(key, {}))

    return summary(timed(iteration, args.runs), bench="train", size=args.size,
                   batch_size=args.batch_size, norm=args.norm, upsample=args.upsample,
                   width=list(args.width), device=args.device, weights=path or "random")


def bench_stylize(args):
    """One forward pass of the style network (inference mode) on one image."""
    spec = transformer.style_spec(tuple(args.width), upsample=args.upsample)
    params = train.params_to(transformer.init_params(spec), args.device)
    state = transformer.init_state(params, args.norm)
    x = to_device(
        np.random.default_rng(0).uniform(-1, 1, (1, 3, args.size, args.size)).astype(np.float32),
        args.device)
    times = timed(lambda: transformer.transformer_forward(params, x, spec, args.norm, train=False,
                                                          state=state, keep_caches=False),
                  args.runs)  # as `stylize` runs it
    result = summary(times, bench="stylize", size=args.size, norm=args.norm, upsample=args.upsample,
                     width=list(args.width), device=args.device)
    result["fps"] = 1.0 / result["median_s"]
    y, _ = transformer.transformer_forward(params, x, spec, args.norm, train=False, state=state,
                                           keep_caches=False)
    result["output_mean_abs"] = float(
        abs(y).mean())  # the same network and image every run: compares settings
    return result


def gatys_flops(model, size):
    """Multiply-adds x2 of the convolutions to conv5_1, forward plus input-gradient backward."""
    total = 0
    for name, (F, C, kh, kw) in conv_shapes(model).items():
        side = size >> pools_before(name)
        total += 2 * F * C * kh * kw * side * side
        if name == "conv5_1":
            break
    return 2 * total   # the input-gradient backward costs what the forward does


def bench_gatys(model, size, runs, pool="avg", weights_path=None, device="cpu", per_layer=False):
    """Time one Gatys objective evaluation; return a dict of figures."""
    path = weights_path or weights.find_vgg(model)
    upto = deepest(model, [BENCH_CONTENT, *BENCH_STYLE])
    params = (weights.load_vgg(path, model, upto=upto) if path    # as PyTorch's script: no
              else random_params(model, seed=0, upto=upto))       # layer past the deepest tap
    params = {k: (to_device(w, device), to_device(b, device)) for k, (w, b) in params.items()}
    rng = np.random.default_rng(1)
    img = lambda: to_device(rng.uniform(-120, 120, (1, 3, size, size)).astype(np.float32), device
                            )  # noqa: E731
    obj = gatys.make_objective(params, model, content=img(), styles=[img()], pool=pool,
                               content_layer=BENCH_CONTENT, style_layers=BENCH_STYLE)
    x = img()
    times = timed(lambda: obj(x), runs)
    result = summary(times, bench="gatys", model=model, size=size, pool=pool, device=device,
                     weights=path or "random")
    result["loss"] = float(obj(x)[0])  # the same weights and images every run: compares settings
    result["gflops"] = gatys_flops(model, size) / result["median_s"] / 1e9
    if per_layer:
        result["layers"] = layer_profile(obj, x, runs)
    return result


def peak_rss_mb():
    """Peak resident memory of this process in MB: VmHWM on Linux (reset by exec, unlike
    ru_maxrss, which a child inherits from its parent), else ru_maxrss."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # bytes on macOS, KiB elsewhere
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


class Timed:
    """A layer whose forward and backward add their seconds to ``t[(name, 'forward' |
    'backward')]``."""

    def __init__(self, layer, t):
        self.layer, self.t, self.name = layer, t, layer.name

    def forward(self, x):
        return self.clock("forward", self.layer.forward, x)

    def backward(self, dy, cache):
        return self.clock("backward", self.layer.backward, dy, cache)

    def clock(self, direction, fn, *args):
        t0 = time.perf_counter()
        out = fn(*args)
        synchronize(out[0])                             # on a GPU, wait for the layer's kernels
        key = (self.name, direction)
        self.t[key] = self.t.get(key, 0.0) + time.perf_counter() - t0
        return out


def layer_profile(obj, x, runs):
    """Median seconds per layer, forward and backward, over ``runs`` evaluations."""
    net, layers = obj.net, obj.net.layers
    samples = {}
    for _ in range(runs):
        t = {}
        net.layers = [Timed(layer, t) for layer in layers]
        try:
            feats, cache = net.forward(x, obj.layers)
            dfeats = {name: feats[name] * 1e-3 for name in obj.layers}
            net.backward(dfeats, cache)
        finally:
            net.layers = layers
        for k, v in t.items():
            samples.setdefault(k, []).append(v)
    rows = []
    for name in layer_names(obj.net.model):
        f, b = samples.get((name, "forward")), samples.get((name, "backward"))
        if f:
            rows.append({"layer": name, "forward_s": statistics.median(f),
                         "backward_s": statistics.median(b) if b else 0.0})
    return rows


def torch_reference(args):
    """Run the matching benchmarks/torch_*.py in a subprocess (PyTorch is never imported here)."""
    script = os.path.join(BENCH_DIR,
                          "torch_gatys.py" if args.what == "gatys" else "torch_johnson.py")
    if not os.path.isfile(script):
        return {"error": f"{script} not found (it ships with the source checkout)"}
    model = args.model if args.what == "gatys" else "vgg16"
    path = args.weights or weights.find_vgg(model)
    cmd = [sys.executable, script, "--size", str(args.size), "--runs", str(args.runs),
           "--threads", str(settings.get().threads),           # as many as ours: NUMSTYLE_THREADS
           "--device", "cuda" if args.device == "gpu" else "cpu",
           "--tf32", "on" if os.environ.get("CUPY_TF32", "0") == "1" else "off"]  # our arithmetic
    if args.what == "gatys":
        cmd += ["--model", model, "--pool", args.pool]
    else:
        cmd += [
            "--mode", args.what, "--batch-size",
            str(args.batch_size), "--norm", args.norm, "--pool", "max", "--upsample", args.upsample,
            "--width", ",".join(map(str, args.width))
        ]
    if path and args.what != "stylize":
        cmd += ["--weights", path]
    if args.layers and args.what == "gatys":
        cmd += ["--layers"]                          # each layer alone, as layer_profile names them
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["failed"])[-1]
        return {"error": f"PyTorch reference did not run: {last}"}
    return json.loads(r.stdout.strip().splitlines()[-1])


def print_report(r):
    what = {
        "gatys": f"gatys objective, {r.get('model')} {r['size']}x{r['size']} {r.get('pool')} pool",
        "train": f"training iteration, batch {r.get('batch_size')} of {r['size']}x{r['size']}, "
                 f"{r.get('norm')} norm, {r.get('upsample')} up-sampling, width {r.get('width')}",
        "stylize": f"stylize one {r['size']}x{r['size']} image, {r.get('norm')} norm, "
                   f"{r.get('upsample')} up-sampling, width {r.get('width')}"
    }[r["bench"]]
    print(f"{what}, {r['device']}" +
          (f", weights: {os.path.basename(r['weights'])}" if "weights" in r else ""))
    rate = f", {r['gflops']:.0f} GFLOP/s" if "gflops" in r else (
        f", {r['fps']:.2f} images/s" if "fps" in r else "")
    print(f"  numstyle: median {r['median_s']:.3f} s (min {r['min_s']:.3f}, max {r['max_s']:.3f}, "
          f"{r['runs']} runs){rate}, peak RSS {r['peak_rss_mb']:.0f} MB")
    t = r.get("torch")
    if t and "error" not in t:
        print(
            f"  pytorch {t['torch_version']}: median {t['median_s']:.3f} s, peak RSS "
            f"{t['peak_rss_mb']:.0f} MB"
        )
        rounds = ", ".join(f"{x:.2f}" for x in r.get("round_ratios", []))
        print(f"  ratio numstyle / pytorch: {r['ratio_vs_torch']:.2f} (median of rounds: {rounds})")
    elif t:
        print(f"  pytorch: {t['error']}")
    if r.get("layers"):
        print_layers(r["layers"], (t or {}).get("layers"))


def print_layers(ours, theirs=None):
    """The per-layer table: forward and backward ms; beside PyTorch's layers (each timed alone,
    benchmarks/torch_gatys.py --layers) when given, and the ratio of the two sums per row."""
    theirs = {row["layer"]: row for row in theirs or []}
    head = f"  {'layer':<10} {'forward ms':>11} {'backward ms':>12}"
    print(head + (f" {'torch fwd':>10} {'torch bwd':>10} {'ratio':>6}" if theirs else ""))
    for row in ours + [{"layer": "total", "forward_s": sum(r["forward_s"] for r in ours),
                        "backward_s": sum(r["backward_s"] for r in ours)}]:
        line = (f"  {row['layer']:<10} {1e3 * row['forward_s']:>11.1f} "
                f"{1e3 * row['backward_s']:>12.1f}")
        other = theirs.get(row["layer"]) if row["layer"] != "total" else (
            {"forward_s": sum(r["forward_s"] for r in theirs.values()),
             "backward_s": sum(r["backward_s"] for r in theirs.values())} if theirs else None)
        if other:
            both = other["forward_s"] + other["backward_s"]
            ratio = (row["forward_s"] + row["backward_s"]) / both if both > 0 else float("nan")
            line += (f" {1e3 * other['forward_s']:>10.1f} {1e3 * other['backward_s']:>10.1f}"
                     f" {ratio:>6.2f}")
        print(line)
