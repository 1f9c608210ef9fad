"""PyTorch reference timing for Johnson et al.'s transformer: one training step or one stylization.

The network is numstyle's ``style_spec(width=(32, 64, 128), n_res=5)``: input
(N, 3, H, W) in [-1, 1]; every conv is ReflectionPad2d(k // 2) + Conv2d without
bias, then a norm (InstanceNorm2d(affine=True, eps=1e-5), or BatchNorm2d with
--norm batch) and a ReLU:

* c1 3->32 k9 s1, c2 32->64 k3 s2, c3 64->128 k3 s2
* r1..r5: x + norm(conv3x3(relu(norm(conv3x3(x))))), no ReLU after the sum
* u1 128->64, u2 64->32: ConvTranspose2d(k3, s2, padding 1, output_padding 1, no bias)
  + norm + ReLU; with --upsample nearest: Upsample(x2, nearest) + ReflectionPad2d(1)
  + Conv2d(k3, no bias) + norm + ReLU (numstyle's ``style_spec(..., upsample='nearest')``,
  PyTorch's fast_neural_style UpsampleConvLayer)
* c4 32->3 k9 with bias (reflection pad 4), output 127.5 * (tanh + 1), RGB 0..255

--mode train times ONE whole training iteration on a random batch (--batch-size
photos, RGB 0..255): transformer forward, the perceptual loss, backward, and a
torch.optim.Adam(lr=1e-3) step.  The loss is numstyle's PerceptualLoss: VGG16
(3x3 convs + ReLU, 2x2 max pooling or --pool avg, input BGR minus the Caffe mean)
up to relu4_3; content at relu2_2, weight * sum((F - P)^2) / (N C H W), with P from a
no-grad VGG pass over the batch itself inside the timed step; style at relu1_2,
relu2_2, relu3_3, relu4_3, weight * sum((G - Gs)^2) / N with G = psi psi^T / (CHW)
per image (Gs from a random style image, before timing); weight * squared total
variation / N.  VGG weights come from a Keras "notop" HDF5 file (--weights) or are
random He-normal; they never require grad.

--mode stylize times ONE forward pass of the transformer in eval mode under
torch.no_grad() on a single (1, 3, size, size) image, and also reports fps.

    python benchmarks/torch_johnson.py --mode train --size 256 --batch-size 4 --runs 3 \
        --warmup 1 --threads 2 --norm instance --pool max --weights vgg16_notop.h5 [--device cuda]
    python benchmarks/torch_johnson.py --mode stylize --size 512 --runs 5

Prints one JSON object on stdout.  ``numstyle bench train|stylize --compare-torch``
runs this file in a subprocess.  It never imports numstyle, numstyle never
imports it: torch is never a numstyle dependency.
"""
import argparse
import json
import resource
import statistics
import time

import torch
import torch.nn as nn

VGG16_BLOCKS, VGG_CHANNELS = [2, 2, 3, 3], [64, 128, 256, 512]        # up to block4_conv3 / relu4_3
MEAN_BGR = [103.939, 116.779, 123.68]
CONTENT_LAYER, STYLE_LAYERS = "relu2_2", ["relu1_2", "relu2_2", "relu3_3", "relu4_3"]
CONTENT_WEIGHT, STYLE_WEIGHT, TV_WEIGHT = 1.0, 5.0, 1e-6


def load_weights(specs, path, device):
    """{keras name: (weight (out, in, 3, 3), bias)} from a Keras notop HDF5 file, or He-normal."""
    params = {}
    if path:
        import h5py
        with h5py.File(path, "r") as f:
            for name, cin, cout, _ in specs:
                g = f[name]  # weight_names are paths relative to the layer group
                kname, bname = [w.decode() for w in g.attrs["weight_names"]]
                kernel = torch.from_numpy(g[kname][()]).float()  # (3, 3, in, out)
                if tuple(kernel.shape) != (3, 3, cin, cout):
                    raise SystemExit(f"{name}: unexpected kernel shape {tuple(kernel.shape)}")
                params[name] = (kernel.permute(3, 2, 0, 1).contiguous(),
                                torch.from_numpy(g[bname][()]).float())
    else:
        gen = torch.Generator().manual_seed(0)
        for name, cin, cout, _ in specs:
            params[name] = (torch.randn(cout, cin, 3, 3, generator=gen) * (2.0 / (9 * cin)) ** 0.5,
                            torch.zeros(cout))
    return {k: (w.to(device), b.to(device)) for k, (w, b) in params.items()}


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


def norm_layer(kind, c):
    return (nn.InstanceNorm2d(c, eps=1e-5, affine=True) if kind == "instance"
            else nn.BatchNorm2d(c, eps=1e-5))


def conv_block(cin, cout, k, stride, norm, relu=True):
    layers = [nn.ReflectionPad2d(k // 2), nn.Conv2d(cin, cout, k, stride, bias=False),
              norm_layer(norm, cout)]
    return nn.Sequential(*layers, nn.ReLU()) if relu else nn.Sequential(*layers)


class Residual(nn.Module):
    def __init__(self, c, norm):
        super().__init__()
        self.branch = nn.Sequential(conv_block(c, c, 3, 1, norm),
                                    conv_block(c, c, 3, 1, norm, relu=False))

    def forward(self, x):
        return x + self.branch(x)


class Transformer(nn.Module):
    """numstyle's style_spec((32, 64, 128), n_res=5), He-normal init like init_params."""

    def __init__(self, norm="instance", width=(32, 64, 128), n_res=5, upsample="transposed"):
        super().__init__()
        a, b, c = width
        up = lambda cin, cout: nn.Sequential(  # noqa: E731
            nn.ConvTranspose2d(cin, cout, 3, 2, padding=1, output_padding=1, bias=False),
            norm_layer(norm, cout), nn.ReLU())
        if upsample == "nearest":
            up = lambda cin, cout: nn.Sequential(  # noqa: E731
                nn.Upsample(scale_factor=2, mode="nearest"), conv_block(cin, cout, 3, 1, norm))
        self.body = nn.Sequential(
            conv_block(3, a, 9, 1, norm), conv_block(a, b, 3, 2, norm),
            conv_block(b, c, 3, 2, norm),
            *[Residual(c, norm) for _ in range(n_res)], up(c, b), up(b, a),
            nn.ReflectionPad2d(4), nn.Conv2d(a, 3, 9, bias=True))
        gen = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                    cin = (m.weight.shape[0] if isinstance(m, nn.ConvTranspose2d)
                           else m.weight.shape[1])
                    fan_in = cin * m.weight.shape[2] * m.weight.shape[3]
                    m.weight.copy_(torch.randn(m.weight.shape, generator=gen)
                                   * (2.0 / fan_in) ** 0.5)
                    if m.bias is not None:
                        m.bias.zero_()
            self.body[-1].weight.mul_(0.1)  # start near mid-grey output

    def forward(self, x):
        y = 127.5 * (torch.tanh(self.body(x)) + 1.0)
        return y[:, :, :x.shape[2], :x.shape[3]]  # odd sizes: crop the overshoot


def vgg_features(rgb, specs, params, pool):
    """ReLU outputs of VGG16 up to relu4_3 for RGB 0..255: {'relu1_1': ..., 'relu4_3': ...}."""
    x = rgb.flip(1) - torch.tensor(MEAN_BGR, device=rgb.device).reshape(1, 3, 1, 1)
    out = {}
    for name, _, _, last_in_block in specs:
        w, b = params[name]
        x = torch.relu(nn.functional.conv2d(x, w, b, padding=1))
        block, conv = name[len("block"):].split("_conv")
        out[f"relu{block}_{conv}"] = x
        if name == specs[-1][0]:
            break
        if last_in_block:
            x = (nn.functional.avg_pool2d if pool == "avg" else nn.functional.max_pool2d)(x, 2, 2)
    return out


def gram(f):
    n, c, h, w = f.shape
    psi = f.reshape(n, c, h * w)
    return psi @ psi.transpose(1, 2) / (c * h * w)


def perceptual_loss(y_hat, batch, specs, params, pool, style_grams):
    n = y_hat.shape[0]
    with torch.no_grad():
        target = vgg_features(batch, specs, params, pool)[CONTENT_LAYER]
    feats = vgg_features(y_hat, specs, params, pool)
    content = CONTENT_WEIGHT * ((feats[CONTENT_LAYER] - target) ** 2).sum() / target.numel()
    style = sum(STYLE_WEIGHT * ((gram(feats[k]) - style_grams[k]) ** 2).sum() / n
                for k in STYLE_LAYERS)
    tv = (((y_hat[:, :, 1:, :] - y_hat[:, :, :-1, :]) ** 2).sum()
          + ((y_hat[:, :, :, 1:] - y_hat[:, :, :, :-1]) ** 2).sum())
    return content + style + TV_WEIGHT * tv / n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mode", choices=["train", "stylize"], default="train")
    ap.add_argument("--size", type=int, default=None,
                    help="default: 256 for train, 512 for stylize")
    ap.add_argument("--batch-size", type=int, default=4, help="train only; stylize uses one image")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--norm", choices=["instance", "batch"], default="instance")
    ap.add_argument("--upsample", choices=["transposed", "nearest"], default="transposed")
    ap.add_argument("--width", default="32,64,128",
                    help="channels of the three down-sampling convolutions (slim: 16,32,64)")
    ap.add_argument("--pool", choices=["max", "avg"], default="max",
                    help="VGG pooling (train only)")
    ap.add_argument("--weights", default=None,
                    help="Keras VGG16 notop HDF5 file (train only; default: random)")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--tf32", choices=["on", "off"], default="off",
                    help="cuda: TF32 tensor cores for convolutions and matmuls (PyTorch's own "
                         "default turns them on for cuDNN convolutions only); off: float32 "
                         "throughout, as numstyle without CUPY_TF32=1")
    args = ap.parse_args()
    size = args.size or (256 if args.mode == "train" else 512)
    batch_size = args.batch_size if args.mode == "train" else 1

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda requested but torch.cuda.is_available() is False")
    torch.set_num_threads(args.threads)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = args.tf32 == "on"
    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    width = tuple(int(c) for c in args.width.split(","))
    net = Transformer(args.norm, width=width, upsample=args.upsample).to(dev)
    gen = torch.Generator().manual_seed(1)
    batch = (torch.rand((batch_size, 3, size, size), generator=gen) * 255.0).to(dev)    # RGB 0..255
    # input in [-1, 1]
    x = batch / 127.5 - 1.0

    if args.mode == "train":
        specs, cin = [], 3
        for b, (n, cout) in enumerate(zip(VGG16_BLOCKS, VGG_CHANNELS), start=1):
            for i in range(1, n + 1):
                specs.append((f"block{b}_conv{i}", cin, cout, i == n))
                cin = cout
        params = load_weights(specs, args.weights, dev)                 # plain tensors: no grad
        style_img = (torch.rand((1, 3, size, size), generator=gen) * 255.0).to(dev)
        with torch.no_grad():
            style_grams = {k: gram(v)
                           for k, v in vgg_features(style_img, specs, params, args.pool).items()
                           if k in STYLE_LAYERS}
        net.train()
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)

        def step():
            opt.zero_grad(set_to_none=True)
            loss = perceptual_loss(net(x), batch, specs, params, args.pool, style_grams)
            loss.backward()
            opt.step()
            return loss
    else:
        net.eval()

        def step():
            with torch.no_grad():
                return net(x)

    times, loss = [], None
    for i in range(args.warmup + args.runs):
        sync()
        t0 = time.perf_counter()
        out = step()
        sync()
        t1 = time.perf_counter()
        if args.mode == "train":
            loss = out.item()
        if i >= args.warmup:
            times.append(t1 - t0)

    median = statistics.median(times) if times else None
    result = {
        "framework": "torch", "torch_version": torch.__version__, "mode": args.mode, "size": size,
        "batch_size": batch_size, "norm": args.norm, "upsample": args.upsample,
        "width": list(width),
        "device": args.device, "threads": args.threads,
        "runs": args.runs, "warmup": args.warmup, "times_s": times, "median_s": median,
        "params": sum(p.numel() for p in net.parameters()), "peak_rss_mb": peak_rss_mb(),
    }
    if args.mode == "train":
        result.update(pool=args.pool, weights=args.weights or "random", loss=loss)
    else:
        result["fps"] = 1.0 / median if median else None
    if dev.type == "cuda":
        result["tf32"] = args.tf32 == "on"
        result["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    print(json.dumps(result))


if __name__ == "__main__":
    main()
