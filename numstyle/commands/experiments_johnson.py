"""``numstyle experiments johnson_layers``: which VGG16 layer should Johnson's content loss use?

Three style networks are trained by ``numstyle train`` itself with the same style
image, photos, schedule and seed, differing only in the content layer (relu2_2,
relu3_3, relu4_3); each then stylises the same photo, one it was not trained on.
Every result is also scored by the perceptual loss with each of the three
content layers (unweighted terms), so the numbers compare like with like.
"""
import os
import time

import numpy as np

from ..config import TRAIN
from ..data import search_dirs
from ..errors import NumstyleError
from ..models import load_model
from ..train import PerceptualLoss
from ..weights import load_vgg, resolve_vgg
from .figures import figure
from ..stylize import stylize_array
from .johnson import parse_train

LAYERS = ("relu2_2", "relu3_3", "relu4_3")
QUICK_NETWORK = ["--width", "4,6,8", "--n-res", "1"]                 # a tiny transformer for CI


def johnson_layers(lab):
    """Train one network per content layer, stylise a photo with each, score all three alike."""
    args, preset = lab.args, lab.preset
    data, weights = args.data or photos_folder(), vgg16_weights(args.weights)
    iters = args.train_iters or preset["train_iters"]
    folder = os.path.join(args.out, "johnson_layers_models")
    common = [
        "--style", lab.style_path, "--data", data, "--size",
        str(preset["train_size"]), "--batch-size",
        str(preset["batch_size"]), "--iters",
        str(iters), "--checkpoint-every", "0", "--weights", weights
    ] + (QUICK_NETWORK + ["--no-progress"] if lab.quick else [])
    lab.extra.update(
        model="vgg16", weights=weights, data=data, train_size=preset["train_size"],
        batch_size=preset["batch_size"], train_iters=iters, models=folder,
        network=("width 4,6,8, 1 residual block" if lab.quick
                 else "width 32,64,128, 5 residual blocks") + f", {TRAIN.upsample} up-sampling",
        train_defaults={
            k: getattr(TRAIN, k)
            for k in ("lr", "content_weight", "style_weight", "tv_weight", "phase_weight")
        }, style_layers=list(TRAIN.style_layers),
        scoring="PerceptualLoss with unit weights, tv 0, max pooling")
    vgg = load_vgg(weights, "vgg16")
    photo = lab.content.transpose(2, 0, 1)[None].astype(np.float32)  # (1, 3, H, W) RGB 0..255
    style = lab.style.transpose(2, 0, 1)[None].astype(np.float32)
    judges = {
        name: PerceptualLoss(vgg, style, content_layer=name, content_weight=1.0, style_weight=1.0,
                             tv_weight=0.0)
        for name in LAYERS
    }
    row, runs = [(lab.style, "style"), (lab.content, "photo")], []
    for layer in LAYERS:
        model_path = os.path.join(folder, f"{layer}.h5")
        train_args = parse_train(common + ["--content-layer", layer, "--out", model_path])
        t0 = time.perf_counter()
        train_args.run(train_args)
        train_s = time.perf_counter() - t0
        params, config, state = load_model(model_path, expect="style")
        t0 = time.perf_counter()
        y = np.clip(stylize_array(params, config, state, lab.content), 0, 255)          # (H, W, 3)
        stylize_s = time.perf_counter() - t0
        scores = score(judges, y, photo)
        runs.append({
            "content_layer": layer,
            "model": model_path,
            "train_iterations": iters,
            "train_s": train_s,
            "stylize_s": stylize_s,
            "scores": scores
        })
        print(f"  content {layer}: trained in {train_s:.1f} s, stylised in {stylize_s:.2f} s; "
              f"style {scores['style']:.4g}", flush=True)
        row.append((y, f"content {layer}\n{iters} it, {train_s:.0f} s"))
    return figure([row], "Johnson et al.: content layer of the perceptual loss"), {
        "layers": list(LAYERS),
        "runs": runs
    }


def score(judges, y, photo):
    """Distances of one stylised image: content at each judge's layer, and the (shared) style."""
    y = y.transpose(2, 0, 1)[None].astype(np.float32)
    scores = {}
    for name, loss in judges.items():
        parts, _ = loss(y, photo)
        scores[f"content_{name}"], scores["style"] = float(parts["content"]), float(parts["style"])
    return scores


def photos_folder():
    """$NUMSTYLE_DATA/datasets/photos (or the cache's); a one-line error when there is none."""
    for d in search_dirs("datasets/photos"):
        if os.path.isdir(d):
            return d
    raise NumstyleError(
        "no training photos found for johnson_layers: pass --data DIR (any folder of images), "
        "or set NUMSTYLE_DATA to a folder with datasets/photos")


def vgg16_weights(path):
    """Johnson's loss network is VGG16: ``--weights`` when it holds VGG16, else VGG16 found as
    usual."""
    if path is not None:
        if resolve_vgg(None, path)[0] == "vgg16":  # checks the file exists
            return path
        print(f"numstyle: {path} is not VGG16; johnson_layers looks for VGG16 weights instead")
    return resolve_vgg("vgg16")[1]
