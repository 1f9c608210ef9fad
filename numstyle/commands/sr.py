"""``numstyle sr-train``, ``numstyle upscale`` and ``numstyle sr-eval``: super-resolution (Johnson
et al.)."""
import glob
import json
import os

import numpy as np

from .. import models, sr, train, weights
from ..backend import check_device, to_device
from ..config import SR
from ..data import search_dirs
from ..errors import ImageError, NumstyleError
from ..image import IMAGE_EXTS, load_image
from ..metrics import y_psnr_ssim
from ..models import shipped_models
from .args import (HelpFormatter, add_bit_depth_argument, add_common_arguments,
                   add_tiling_arguments, non_negative, non_negative_int, positive_float,
                   positive_int)
from .batches import add_batch_arguments, check_finite_output
from .johnson import (add_upsample_argument, check_kind, chosen_settings, run_stylize,
                      run_training)
from .report import add_json_argument, reported


def add_parsers(sub):
    d = SR
    p = sub.add_parser(
        "sr-train", help="train a super-resolution network (x2, x4, x8)",
        description="Train Johnson et al.'s super-resolution network on photos degraded on the fly "
        "(Gaussian blur, bicubic downsampling).", formatter_class=HelpFormatter)
    p.add_argument("--scale", type=int, choices=[2, 4, 8], default=d.scale, help="upscaling factor")
    p.add_argument("--loss", choices=["pixel", "feature"], default=d.loss,
                   help="per-pixel MSE, or VGG16 relu2_2 feature reconstruction (+ TV)")
    p.add_argument("--data", metavar="DIR", required=True,
                   help="folder of training photos (searched recursively)")
    p.add_argument("--out", metavar="MODEL.h5", required=True, help="model file")
    p.add_argument("--size", type=positive_int, default=d.size,
                   help="high-resolution crop size, px, a multiple of --scale (paper: 288)")
    p.add_argument("--batch-size", type=positive_int, default=d.batch_size,
                   help="crops per iteration")
    p.add_argument("--iters", type=positive_int, default=d.iters, help="training iterations")
    p.add_argument("--lr", type=positive_float, help=f"Adam learning rate (default: {d.lr:g})")
    p.add_argument("--blur", type=non_negative, default=d.blur,
                   help="Gaussian blur sigma before downsampling")
    p.add_argument("--tv-weight", type=non_negative, default=d.tv_weight,
                   help="total variation weight (feature loss)")
    p.add_argument("--phase-weight", type=non_negative,
                   help="weight of the phase penalty of the error (PH3) (feature loss), which "
                   "pulls its mean over each pixel phase mod --scale together (the grid) "
                   f"(default: {d.phase_weight:g} with --loss feature)")
    p.add_argument("--block-weight", type=non_negative,
                   help="weight of the block means (LR1) (feature loss): the output's mean over "
                   "each --scale x --scale block against the photo's (its colours and brightness) "
                   f"(default: {d.block_weight:g} with --loss feature)")
    p.add_argument("--pixel-weight", type=non_negative,
                   help="weight of the per-pixel loss (SR3) added to the feature loss (SR4) "
                   f"(default: {d.pixel_weight:g} with --loss feature)")
    p.add_argument("--content-layer", default=d.content_layer, metavar="NAME",
                   help="VGG16 layer of the feature loss")
    p.add_argument("--pool", choices=["max", "avg"],
                   help="VGG16's pooling in the feature loss: max (the classification network's, "
                   f"the paper's) or average (default: {d.pool})")
    p.add_argument("--norm", choices=["batch", "instance"], default=d.norm,
                   help="normalisation (paper: batch)")
    p.add_argument("--width", type=positive_int, default=d.width, help="channels")
    p.add_argument("--n-res", type=positive_int, default=d.n_res, help="residual blocks")
    add_upsample_argument(p, None, d.upsample)
    p.add_argument(
        "--no-skip", action="store_true", help="predict the image itself, as the paper (default: "
        "the difference from bicubic)")
    p.add_argument("--seed", type=non_negative_int, default=d.seed,
                   help="seed of the initial weights and the crops")
    p.add_argument("--checkpoint-every", type=non_negative_int, default=d.checkpoint_every,
                   metavar="N",
                   help="write <out>.ckpt.h5 every N iterations (0: only when interrupted)")
    p.add_argument("--resume", metavar="CHECKPOINT",
                   help="continue a training from its checkpoint (--lr, --upsample and the "
                   "feature loss's weights, left unset, are the checkpoint's)")
    p.add_argument("--weights", metavar="PATH",
                   help="VGG16 weights for the feature loss (default: searched)")
    p.add_argument("--half", action="store_true", help="store the model's parameters as float16")
    add_common_arguments(p)
    add_json_argument(p, "the model written as one JSON object, then a summary,")
    p.set_defaults(run=run_sr_train, iterative=True)

    u = sub.add_parser(
        "upscale", help="enlarge images with a super-resolution model",
        description="Enlarge images of any size and mode with a trained super-resolution model.",
        formatter_class=HelpFormatter)
    u.add_argument(
        "--model", required=True, metavar="MODEL.h5|NAME",
        help=f"model file, or a shipped model's name ({', '.join(shipped_models('sr'))})")
    u.add_argument("inputs", nargs="+", metavar="INPUT", help="images")
    u.add_argument("--out", metavar="PATH|DIR",
                   help="output file (one input) or folder (default: out/, the files named "
                        "<input>_<model>_x<scale>)")
    u.add_argument(
        "--match-histogram", action="store_true",
        help="match each channel's histogram to the input's (the paper's post-processing for the "
        "feature-loss network)")
    u.add_argument("--size", type=positive_int, help="first resize the input's longer side to N px")
    add_bit_depth_argument(u)
    add_tiling_arguments(u)
    add_common_arguments(u)
    add_batch_arguments(u)
    u.set_defaults(run=run_upscale)

    e = sub.add_parser(
        "sr-eval", help="PSNR and SSIM of a super-resolution model beside bicubic",
        description="PSNR/SSIM on the Y channel, border cropped by the scale, on each test set; "
        "low-resolution inputs made with the model's own degradation.",
        formatter_class=HelpFormatter)
    e.add_argument("--model", required=True, metavar="MODEL.h5|NAME",
                   help="model file or shipped name")
    e.add_argument(
        "--set", dest="sets", action="append", required=True, metavar="DIR|NAME", help=
        "a folder of images, or the name of one in $NUMSTYLE_DATA/datasets/sr (Set5, Set14, BSD68)")
    e.add_argument("--blur", type=non_negative,
                   help="blur sigma of the degradation (default: the model's)")
    e.add_argument("--match-histogram", action="store_true",
                   help="apply the histogram matching first")
    e.add_argument("--device", choices=["cpu", "gpu"], default="cpu",
                   help="cpu (NumPy) or gpu (CuPy)")
    e.add_argument("--reference", action="store_true",
                   help="run the reference engine only (NUMSTYLE_REFERENCE=1)")
    e.add_argument("--json", action="store_true", help="one JSON object, keyed by set name")
    e.set_defaults(run=run_sr_eval)


def resumed_defaults(args):
    """With ``--resume``, the flags left unset take the checkpoint's values: a training goes on as
    it began, also where a default changed since (the learning rate, the up-sampling, the feature
    loss's terms). Flags given must still match it
    (:func:`~numstyle.commands.johnson.check_resume`). Returns the checkpoint (None without
    ``--resume``), read once for the training too."""
    if not args.resume:
        return None
    ckpt = models.load_checkpoint(args.resume)
    saved = ckpt["config"]
    check_kind(args.resume, saved, "sr")   # before its settings are taken as this run's
    if args.upsample is None:
        args.upsample = saved.get("upsample", models.CONFIG_DEFAULTS["upsample"])
    for key in ("lr", "phase_weight", "block_weight", "pixel_weight", "pool"):
        if getattr(args, key) is None:
            setattr(args, key, models.setting(saved.get("settings", {}), key))
    return ckpt


def feature_defaults(args):
    """The loss terms and up-sampling the user left unset: the feature loss's recipe (no grid,
    issue 20) or the pixel loss's, which has neither term (set with the pixel loss: an error);
    and the learning rate, the same for both."""
    feature = args.loss == "feature"
    for flag in ("phase_weight", "block_weight", "pixel_weight"):
        if getattr(args, flag) is None:
            setattr(args, flag, getattr(SR, flag) if feature else 0.0)
        elif getattr(args, flag) and not feature:
            raise NumstyleError(f"--{flag.replace('_', '-')} is a term of the feature loss: add "
                                "--loss feature")
    if args.pool is None:
        args.pool = SR.pool
    elif args.pool != SR.pool and not feature:
        raise NumstyleError("--pool is the feature loss's VGG: add --loss feature")
    if args.upsample is None:
        args.upsample = SR.upsample
    if args.lr is None:
        args.lr = SR.lr


@reported
def run_sr_train(args):
    resumed = resumed_defaults(args)
    feature_defaults(args)
    config = {
        "kind": "sr",
        "norm": args.norm,
        "width": args.width,
        "n_res": args.n_res,
        "scale": args.scale,
        "upsample": args.upsample,
        "skip": not args.no_skip,
        "loss": args.loss,
        "blur": args.blur,
        "settings": chosen_settings(args, ("size", "batch_size", "iters", "lr", "tv_weight",
                                           "phase_weight", "block_weight", "pixel_weight",
                                           "content_layer", "pool", "seed", "scale", "loss",
                                           "blur"))
    }
    least = (9 // 2 + 1) * args.scale  # the low-resolution crop: more than the 9x9 conv's pad
    if args.size < least:
        raise NumstyleError(
            f"--size {args.size} is too small for x{args.scale}: use at least {least}")
    if args.size % args.scale:
        lower = args.size - args.size % args.scale
        raise NumstyleError(
            f"--size {args.size} is not a multiple of --scale {args.scale}: use {lower} or "
            f"{lower + args.scale}")

    def make_loss():
        if args.loss == "pixel":
            return sr.PixelLoss()
        model, path = weights.resolve_vgg("vgg16", args.weights)
        vgg = {
            k: (to_device(w, args.device), to_device(b, args.device))
            for k, (w, b) in weights.load_vgg(path, model, upto=args.content_layer).items()
        }
        feature = train.PerceptualLoss(vgg, None, args.content_layer, (), 1.0, 0.0, args.tv_weight,
                                       pool=args.pool, phase_weight=args.phase_weight,
                                       phase_period=args.scale,
                                       phase_of_error=True)  # (PH3)
        return sr.BlockMeans(sr.PlusPixels(feature, args.pixel_weight), args.block_weight,
                             args.scale)  # (SR4)

    def make_step(spec, state, loss):
        return lambda p, batch: sr.sr_step(p, spec, config, state, batch, loss)

    return run_training(args, config, args.out, make_loss, make_step,
                        sr.training_pair(args.scale, args.size, args.blur), resumed=resumed)


def run_upscale(args):
    post = (lambda rgb, out: sr.match_histograms(out, rgb)) if args.match_histogram else None
    return run_stylize(args, expect="sr", transform=sr.upscale_array, post=post)


def run_sr_eval(args):
    check_device(args.device)
    params, config, state = models.load_model(args.model, expect="sr")
    params = {k: to_device(v, args.device) for k, v in params.items()}
    state = {k: {s: to_device(v, args.device) for s, v in st.items()} for k, st in state.items()}
    scale = config["scale"]
    blur = config.get("blur", 1.0) if args.blur is None else args.blur
    results = {}
    folders = [find_test_set(name) for name in args.sets]  # all found before any work
    for folder in folders:
        files = sorted(f for f in glob.glob(os.path.join(folder, "*"))
                       if os.path.splitext(f)[1].lower() in IMAGE_EXTS
                       and os.path.isfile(f))  # a FIFO named like an image would block
        if not files:
            raise NumstyleError(f"no images in test set {folder}")
        rows = []
        for path in files:
            full = load_image(path, what="test image")
            hr = sr.modcrop(full, scale)
            too_small = NumstyleError(
                f"test image {path} ({full.shape[1]}x{full.shape[0]}) is too small for the "
                f"x{scale} network: {hr.shape[1] // scale}x{hr.shape[0] // scale} px once "
                f"downscaled by {scale}")
            if min(hr.shape[:2]) == 0:
                raise too_small
            lr = sr.degrade(hr, scale, blur)
            try:
                out = sr.upscale_array(params, config, state, lr, args.device)
            except ImageError:  # the network's padding needs more pixels
                raise too_small from None
            check_finite_output(out, args.model, path)
            if args.match_histogram:
                out = sr.match_histograms(out, lr)
            bic = np.clip(sr.bicubic(lr, hr.shape[:2]), 0, 255)
            out = np.clip(out, 0, 255).round()  # evaluated as the saved 8-bit image
            rows.append(y_psnr_ssim(out, hr, scale) + y_psnr_ssim(bic.round(), hr, scale))
        m = np.mean(rows, axis=0)
        results[os.path.basename(os.path.normpath(folder))] = {
            "psnr": float(m[0]),
            "ssim": float(m[1]),
            "bicubic_psnr": float(m[2]),
            "bicubic_ssim": float(m[3]),
            "images": len(files),
            "scale": scale,
            "blur": blur
        }
    if args.json:
        print(json.dumps(results))
        return 0
    print(
        f"x{scale} {config.get('loss', '?')}-loss model {args.model} (blur sigma {blur}), Y "
        "channel, "
        f"border {scale} px")
    print(
        f"{'set':<10} {'images':>6} {'PSNR':>7} {'SSIM':>7} {'bicubic PSNR':>13} "
        f"{'bicubic SSIM':>13}"
    )
    for name, r in results.items():
        print(
            f"{name:<10} {r['images']:>6} {r['psnr']:>7.2f} {r['ssim']:>7.4f} "
            f"{r['bicubic_psnr']:>13.2f} "
            f"{r['bicubic_ssim']:>13.4f}")
    return 0


def find_test_set(name):
    """The folder of a ``--set``: ``name`` itself if it is a folder, else
    ``$NUMSTYLE_DATA/datasets/sr/<name>`` (and the user cache) for a bare name such as ``Set5``."""
    if os.path.isdir(name):
        return name
    tried = [name]
    if os.sep not in name.rstrip(os.sep):
        for d in search_dirs(os.path.join("datasets", "sr", name)):
            if os.path.isdir(d):
                return d
            tried.append(d)
    if os.path.exists(name):
        raise NumstyleError(f"test set {name} is a file: give a folder of images")
    raise NumstyleError(f"test set not found: {name}" +
                        (f" (looked in {', '.join(tried)})" if tried[1:] else ""))
