"""PyTorch reference timing for one Gatys style-transfer objective evaluation.

Measures the wall time of ONE evaluation of the Gatys et al. loss and its
gradient w.r.t. the input image: a VGG16/VGG19 forward pass up to conv5_1, then
``total.backward()``.  All features are pre-ReLU conv outputs:

* content loss at conv4_2: 0.5 * sum((F - P)^2)
* style loss at conv1_1..conv5_1 (0.2 each): sum((G - A)^2) / (4 N^2 M^2),
  G = F F^T with F reshaped to (N channels, M = H*W)
* total = 1 * content + 1000 * style

Targets P and A come from random images, computed before timing.  Weights never
require grad.  They are read from a Keras "notop" HDF5 file (--weights) or are
random He-normal of the same shapes.  Prints one JSON object on stdout:

    python benchmarks/torch_gatys.py --model vgg16 --size 256 --runs 5 \
        --warmup 1 --threads 2 --pool avg --weights vgg16_notop.h5 [--device cuda] [--layers]

``--layers`` adds ``"layers"``: each layer (conv, ReLU, pool, named as ``numstyle bench gatys
--layers`` names them) timed alone on its real input from the image's forward pass, forward and
backward (the input's gradient only, as the objective needs), median of ``--runs``.

``numstyle bench gatys --compare-torch`` runs this file in a subprocess.  It never
imports numstyle, numstyle never imports it: torch is never a numstyle dependency.
"""
import argparse
import json
import resource
import statistics
import time

import torch
import torch.nn.functional as nnf

BLOCKS = {"vgg16": [2, 2, 3, 3, 3], "vgg19": [2, 2, 4, 4, 4]}
CHANNELS = [64, 128, 256, 512, 512]
CONTENT_LAYER = "block4_conv2"
STYLE_LAYERS = ["block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1"]
LAST_LAYER = "block5_conv1"
CONTENT_WEIGHT, STYLE_WEIGHT, STYLE_LAYER_WEIGHT = 1.0, 1000.0, 0.2


def layer_specs(model):
    """[(keras_name, in_channels, out_channels, is_last_in_block)] up to conv5_1."""
    specs, cin = [], 3
    for b, (n, cout) in enumerate(zip(BLOCKS[model], CHANNELS), start=1):
        for i in range(1, n + 1):
            specs.append((f"block{b}_conv{i}", cin, cout, i == n))
            cin = cout
            if specs[-1][0] == LAST_LAYER:
                return specs
    return specs


def load_weights(specs, path, device):
    """{name: (weight (out,in,3,3), bias)} from a file or random He-normal."""
    params = {}
    if path:
        import h5py
        with h5py.File(path, "r") as f:
            names = {n.decode() for n in f.attrs["layer_names"]}
            for name, cin, cout, _ in specs:
                if name not in names:
                    raise SystemExit(f"layer {name} not found in {path}")
                g = f[name]  # weight_names are paths relative to the layer group
                kname, bname = [w.decode() for w in g.attrs["weight_names"]]
                kernel = torch.from_numpy(g[kname][()]).float()  # (3,3,in,out)
                bias = torch.from_numpy(g[bname][()]).float()
                if tuple(kernel.shape) != (3, 3, cin, cout):
                    raise SystemExit(f"{name}: unexpected kernel shape {tuple(kernel.shape)}")
                params[name] = (kernel.permute(3, 2, 0, 1).contiguous(), bias)
    else:
        gen = torch.Generator().manual_seed(0)
        for name, cin, cout, _ in specs:
            w = torch.randn(cout, cin, 3, 3, generator=gen) * (2.0 / (9 * cin)) ** 0.5
            params[name] = (w, torch.zeros(cout))
    return {k: (w.to(device), b.to(device)) for k, (w, b) in params.items()}


def features(x, specs, params, pool):
    """Pre-ReLU outputs of the content and style layers."""
    wanted, out = set(STYLE_LAYERS) | {CONTENT_LAYER}, {}
    pool_fn = nnf.avg_pool2d if pool == "avg" else nnf.max_pool2d
    for name, _, _, last_in_block in specs:
        w, b = params[name]
        x = nnf.conv2d(x, w, b, padding=1)
        if name in wanted:
            out[name] = x
        if name == LAST_LAYER:
            break
        x = torch.relu(x)
        if last_in_block:
            x = pool_fn(x, 2, 2)
    return out


def gram(f):
    f = f.reshape(f.shape[1], -1)  # (N channels, M = H*W); batch is 1
    return f @ f.t()


def objective(x, specs, params, pool, p_content, a_style):
    feats = features(x, specs, params, pool)
    content = 0.5 * ((feats[CONTENT_LAYER] - p_content) ** 2).sum()
    style = 0.0
    for name in STYLE_LAYERS:
        f = feats[name]
        n, m = f.shape[1], f.shape[2] * f.shape[3]
        style = style + (STYLE_LAYER_WEIGHT * ((gram(f) - a_style[name]) ** 2).sum()
                         / (4.0 * n * n * m * m))
    return CONTENT_WEIGHT * content + STYLE_WEIGHT * style


def layer_times(x, specs, params, pool, runs, sync):
    """[{layer, forward_s, backward_s}] of each op of :func:`features`, alone on its real input."""
    pool_fn = nnf.avg_pool2d if pool == "avg" else nnf.max_pool2d
    ops = []
    for b_name, _, _, last_in_block in specs:
        b, i = b_name[5], b_name.split("conv")[1]
        w, bias = params[b_name]
        ops.append((f"conv{b}_{i}", lambda t, w=w, bias=bias: nnf.conv2d(t, w, bias, padding=1)))
        if b_name == LAST_LAYER:
            break
        ops.append((f"relu{b}_{i}", torch.relu))
        if last_in_block:
            ops.append((f"pool{b}", lambda t: pool_fn(t, 2, 2)))
    rows, gen = [], torch.Generator().manual_seed(2)
    for name, op in ops:
        x_in = x.detach().requires_grad_(True)
        forward, backward = [], []
        for _ in range(runs + 1):                              # the first: warm-up
            sync()
            t0 = time.perf_counter()
            y = op(x_in)
            sync()
            t1 = time.perf_counter()
            dy = torch.randn(y.shape, generator=gen).to(y.device)
            sync()
            t2 = time.perf_counter()
            torch.autograd.grad(y, x_in, dy)
            sync()
            forward.append(t1 - t0)
            backward.append(time.perf_counter() - t2)
        rows.append({"layer": name, "forward_s": statistics.median(forward[1:]),
                     "backward_s": statistics.median(backward[1:])})
        x = y.detach()
    return rows


def peak_rss_mb():
    """VmHWM (Linux; reset by exec, unlike ru_maxrss, which a child inherits from its parent)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", choices=sorted(BLOCKS), default="vgg16")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--pool", choices=["avg", "max"], default="avg")
    ap.add_argument("--weights", default=None, help="Keras notop HDF5 file (default: random)")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--layers", action="store_true", help="also time each layer alone")
    ap.add_argument("--tf32", choices=["on", "off"], default="off",
                    help="cuda: TF32 tensor cores for convolutions and matmuls (PyTorch's own "
                         "default turns them on for cuDNN convolutions only); off: float32 "
                         "throughout, as numstyle without CUPY_TF32=1")
    args = ap.parse_args()

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda requested but torch.cuda.is_available() is False")
    torch.set_num_threads(args.threads)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = args.tf32 == "on"
    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    specs = layer_specs(args.model)
    params = load_weights(specs, args.weights, dev)

    # Random "photos": caffe-style mean-subtracted pixel values in [-128, 128).
    gen = torch.Generator().manual_seed(1)
    shape = (1, 3, args.size, args.size)
    content_img, style_img, x0 = (torch.rand(shape, generator=gen) * 255.0 - 128.0
                                  for _ in range(3))
    with torch.no_grad():
        p_content = features(content_img.to(dev), specs, params, args.pool)[CONTENT_LAYER]
        a_style = {k: gram(v)
                   for k, v in features(style_img.to(dev), specs, params, args.pool).items()
                   if k in STYLE_LAYERS}
    x = x0.to(dev).requires_grad_(True)

    times, loss = [], None
    for i in range(args.warmup + args.runs):
        x.grad = None
        sync()
        t0 = time.perf_counter()
        total = objective(x, specs, params, args.pool, p_content, a_style)
        total.backward()
        sync()
        t1 = time.perf_counter()
        loss = total.item()
        if i >= args.warmup:
            times.append(t1 - t0)

    result = {
        "framework": "torch", "torch_version": torch.__version__, "model": args.model,
        "size": args.size, "device": args.device, "threads": args.threads, "runs": args.runs,
        "warmup": args.warmup, "pool": args.pool, "weights": args.weights or "random",
        "loss": loss, "times_s": times, "median_s": statistics.median(times) if times else None,
        "peak_rss_mb": peak_rss_mb(),
    }
    if args.layers:
        result["layers"] = layer_times(x0.to(dev), specs, params, args.pool, args.runs, sync)
    if dev.type == "cuda":
        result["tf32"] = args.tf32 == "on"
        result["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    print(json.dumps(result))


if __name__ == "__main__":
    main()
