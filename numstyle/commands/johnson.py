"""``numstyle train`` and ``numstyle stylize``: Johnson et al.'s feed-forward style transfer."""
import argparse
import os
import time

from .. import models, styles, train, transformer, weights
from ..backend import check_device, to_device
from ..color import match_color, restore_chroma
from ..config import TRAIN, WIDTHS
from ..dataset import Batches, list_images
from ..errors import NumstyleError
from ..files import check_extension, check_input, check_outputs
from ..image import image_size, load_image, resized_shape
from ..interrupt import stopped_word
from ..models import CONFIG_DEFAULTS, setting, shipped_models
from ..stylize import stylize_array
from ..tiles import (format_bytes, largest_fitting, memory_limit, network_bytes,
                     plan_network_tiles)
from ..vgg import FORWARD_BYTES_PER_PIXEL, deepest, min_input_size
from .args import (HelpFormatter, Parser, add_bit_depth_argument, add_common_arguments,
                   add_tiling_arguments, default_out, layer_list, non_negative, non_negative_int,
                   positive_float, positive_int, three_widths)
from .batches import add_batch_arguments, finish, stylize_batch
from .media import frame_names, input_kind, is_video
from .report import Report, add_json_argument, reported


def add_parsers(sub):
    add_train_parser(sub)
    add_stylize_parser(sub)


def parse_train(argv):
    """``numstyle train ARGV`` parsed alone (``experiments johnson_layers`` trains this way)."""
    sub = Parser(prog="numstyle").add_subparsers(parser_class=Parser)
    add_train_parser(sub)
    return sub.choices["train"].parse_args(argv)


def add_train_parser(sub):
    d = TRAIN
    p = sub.add_parser(
        "train", help="train a feed-forward style network (Johnson et al.)",
        description="Train a transformer network with perceptual losses on VGG16 so that "
        "stylising an image is one forward pass.", formatter_class=HelpFormatter)
    p.add_argument("--style", metavar="PATH", nargs="+",
                   help="the style image; several train one conditional network (one norm scale "
                   "and shift per style, each batch one style's in turn)")
    p.add_argument("--add-style", metavar="PATH",
                   help="add this style to the trained network of --resume MODEL, training only "
                   "its norm scales and shifts")
    p.add_argument("--data", metavar="DIR", required=True,
                   help="folder of training photos (searched recursively)")
    p.add_argument("--out", metavar="MODEL.h5", help="model file (default: out/<style>.h5)")
    p.add_argument("--size", type=positive_int, default=d.size, help="training crop size, px")
    p.add_argument("--style-size", type=positive_int,
                   help="longer side of the style image (default: --size)")
    p.add_argument("--batch-size", type=positive_int, default=d.batch_size,
                   help="images per iteration")
    p.add_argument("--iters", type=positive_int, default=d.iters, help="training iterations")
    p.add_argument("--lr", type=positive_float, default=d.lr, help="Adam learning rate")
    p.add_argument("--content-weight", type=non_negative, default=d.content_weight, help="lambda_c")
    p.add_argument("--style-weight", type=non_negative, nargs="+", default=d.style_weight,
                   metavar="W", help="lambda_s: one, or one per --style")
    p.add_argument("--tv-weight", type=non_negative, default=d.tv_weight, help="lambda_TV")
    p.add_argument("--phase-weight", type=non_negative, default=d.phase_weight,
                   help="lambda_P: weight of the phase penalty (PH1), which pulls the output's "
                   "mean over each pixel phase mod 4 together (the network's grid)")
    p.add_argument("--content-layer", default=d.content_layer, metavar="NAME",
                   help="VGG16 content layer")
    p.add_argument("--style-layers", type=layer_list, default=list(d.style_layers),
                   metavar="A,B,...", help="VGG16 style layers")
    p.add_argument("--norm", choices=["instance", "batch"], default=d.norm,
                   help="normalisation layers")
    p.add_argument("--width", type=three_widths, default=list(d.width), metavar="A,B,C|NAME",
                   help="channels of the three down-sampling convolutions, or "
                   + " or ".join(f"{k} ({','.join(map(str, v))})" for k, v in WIDTHS.items()))
    p.add_argument("--n-res", type=positive_int, default=d.n_res, help="residual blocks")
    add_upsample_argument(p, d.upsample)
    p.add_argument("--seed", type=non_negative_int, default=d.seed,
                   help="seed of the initial weights and the batches")
    p.add_argument("--checkpoint-every", type=non_negative_int, default=d.checkpoint_every,
                   metavar="N",
                   help="write <out>.ckpt.h5 every N iterations (0: only when interrupted)")
    p.add_argument("--resume", metavar="CHECKPOINT",
                   help="continue a training from its checkpoint (with --add-style: a model file "
                   "or checkpoint)")
    p.add_argument("--weights", metavar="PATH", help="VGG16 weights (default: searched)")
    p.add_argument("--half", action="store_true", help="store the model's parameters as float16")
    add_common_arguments(p)
    add_json_argument(p, "the model written as one JSON object, then a summary,")
    p.set_defaults(run=run_train, iterative=True, command="train")


def add_stylize_parser(sub):
    s = sub.add_parser(
        "stylize", help="stylise images with a trained network (one forward pass)",
        description="Stylise images, or the frames of an animated GIF, with a trained model.",
        formatter_class=HelpFormatter)
    s.add_argument(
        "--model", required=True, metavar="MODEL.h5|NAME",
        help="model file, or a shipped model's name "
        f"({', '.join(shipped_models('style'))})")
    s.add_argument(
        "inputs", nargs="+", metavar="INPUT",
        help="images, animated GIFs, videos (the video extra) or folders of frames; each comes "
             "back "
        "in its own form")
    s.add_argument("--out", metavar="PATH|DIR",
                   help="output file (one input) or folder (default: out/, the files named "
                        "<input>_<model>_stylized)")
    s.add_argument("--style", metavar="I|I:W,J:W",
                   help="a network of several styles: the style (index or name; default: 0), or "
                   "a blend of their norm scales and shifts, e.g. 0:0.5,2:0.5 (`numstyle models` "
                   "lists each network's styles)")
    s.add_argument("--size", type=positive_int,
                   help="resize so the longer side is N px (default: keep)")
    s.add_argument(
        "--deflicker", type=fraction, default=0.0, metavar="S",
        help="videos: blend each frame towards the previous output where the input did not change "
        "(0 off, 0.8 strong)")
    s.add_argument(
        "--preserve-colors", choices=["none", "luminance", "histogram"], default="none",
        help="keep the photo's colours: its chroma under the stylised luminance, or the stylised "
        "image's colour statistics matched to the photo's")
    s.add_argument(
        "--strength", type=fraction, default=1.0, metavar="S",
        help="how much style: 0 gives the photo, 1 the full stylised image; in between a linear "
        "mix of the two in pixel space, after --preserve-colors")
    add_bit_depth_argument(s)
    add_tiling_arguments(s)
    add_common_arguments(s)
    add_batch_arguments(s)
    s.set_defaults(run=run_stylize)


def add_upsample_argument(p, default, default_text=None):
    p.add_argument(
        "--upsample", choices=["transposed", "nearest"], default=default,
        help="x2 up-sampling layers: stride-1/2 transposed convolutions (the paper's), or "
        "nearest-neighbour repetition then a 3x3 convolution, run as four 2x2 convolutions of the "
        "small "
        "image (no period-2 checkerboard; +6%% multiplies for the style network, +19%% for x4 "
        "super-resolution)" + (f" (default: {default_text})" if default_text else ""))


def fraction(text):
    """argparse type: a number in [0, 1]."""
    v = non_negative(text)
    if v > 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text!r}")
    return v


@reported
def run_train(args):
    if args.add_style:
        return run_add_style(args)
    if not args.style:
        raise NumstyleError("give --style (one or more style images), or --add-style with "
                            "--resume MODEL to add a style to a trained network")
    paths = list(args.style)
    several = len(paths) > 1
    if several and args.norm != "instance":
        raise NumstyleError("several styles in one network need --norm instance (one scale and "
                            "shift per style; batch norm's running statistics would be shared)")
    for path in paths:      # readable images (a FIFO is never opened), before they are hashed
        image_size(path, "style image")
    out = args.out or default_out(None, paths).replace(".png", ".h5")
    config = {
        "kind": "style",
        "norm": args.norm,
        "width": list(args.width),
        "n_res": args.n_res,
        "upsample": args.upsample,
        "settings": chosen_settings(
            args, ("size", "style_size", "batch_size", "iters", "lr", "content_weight",
                   "style_weight", "tv_weight", "phase_weight", "content_layer",
                   "style_layers", "seed"))
    }
    if several:
        config["styles"] = [styles.style_entry(p) for p in paths]
    else:
        config.update(style_sha256=styles.style_entry(paths[0])["sha256"],
                      style=os.path.basename(paths[0]))
    style_weight = per_style(args.style_weight, len(paths), "--style-weight")

    def make_step(spec, state, loss):
        if several:
            return lambda p, b: train.network_step(p, spec, config["norm"], state, b[0], loss,
                                                   mix=b[1])
        return lambda p, batch: train.network_step(p, spec, config["norm"], state, batch, loss)

    return run_training(args, config, out, style_loss(args, paths, style_weight), make_step,
                        transform=None, inputs=paths, style_hw=style_shape(args, paths),
                        wrap=(lambda b: train.StyleCycle(b, len(paths))) if several else None)


def style_shape(args, paths):
    """The largest style image's (H, W) at ``--style-size``, from the headers (no decoding).

    One-line errors first for a crop (``--size``) or a style image too small for the layers of
    the loss: VGG's deepest layer must keep a pixel after its poolings."""
    least = min_input_size("vgg16", [args.content_layer, *args.style_layers])
    if args.size < least:
        raise NumstyleError(f"--size {args.size}: the loss's layers (down to "
                            f"{deepest('vgg16', [args.content_layer, *args.style_layers])}) need "
                            f"crops of at least {least} px")
    size = args.style_size or args.size
    least = min_input_size("vgg16", args.style_layers)
    shapes = []
    for p in paths:
        h0, w0 = image_size(p, "style image")[:2]
        h, w = resized_shape((h0, w0), size)
        if min(h, w) < least:
            fits = -(-least * max(h0, w0) // min(h0, w0))    # ceil: the shorter side >= least
            raise NumstyleError(f"the style image {p} at --style-size {size} is {w}x{h} px; its "
                                f"style layers need at least {least} px on the shorter side: give "
                                f"--style-size {fits} or more")
        shapes.append((h, w))
    return max(shapes, key=lambda hw: hw[0] * hw[1])


def per_style(values, n, flag):
    """One value per style from a flag given once (for all) or once per style."""
    values = values if isinstance(values, (list, tuple)) else [values]
    if len(values) not in (1, n):
        raise NumstyleError(f"{flag}: give one value, or one per style ({n}), not {len(values)}")
    return float(values[0]) if n == 1 else [float(v) for v in values] * (n // len(values))


def style_loss(args, paths, style_weight):
    """``make_loss()`` of a style training: (J6) with one Gram target per style image."""
    def make_loss():
        size = args.style_size or args.size
        rgbs = [load_image(p, size, "style image") for p in paths]
        model, path = weights.resolve_vgg("vgg16", args.weights)
        vgg = {
            k: (to_device(w, args.device), to_device(b, args.device))
            for k, (w, b) in weights.load_vgg(
                path, model, upto=deepest(model, [args.content_layer, *args.style_layers])).items()
        }
        images = [to_device(rgb.transpose(2, 0, 1)[None].copy(), args.device) for rgb in rgbs]
        return train.PerceptualLoss(vgg, images if len(images) > 1 else images[0],
                                    args.content_layer, args.style_layers, args.content_weight,
                                    style_weight, args.tv_weight,
                                    phase_weight=args.phase_weight)
    return make_loss


ADD_STYLE_SETTINGS = ("size", "style_size", "batch_size", "iters", "lr", "content_weight",
                      "style_weight", "tv_weight", "phase_weight", "content_layer", "style_layers",
                      "seed")


def run_add_style(args):
    """``numstyle train --add-style e.jpg --resume MODEL``: a new style's ``gamma``, ``beta`` (one
    row of each norm's (S, C) pair), trained with everything else of MODEL held fixed.

    MODEL is a model file (or a checkpoint) of a style network, conditional or of one style
    (which becomes a conditional network of two); a checkpoint this command wrote for the
    same style continues where it stopped."""
    if args.style:
        raise NumstyleError("give either --style (a new training) or --add-style (a style added "
                            "to the network of --resume), not both")
    if not args.resume:
        raise NumstyleError("--add-style needs --resume MODEL: the trained network to add the "
                            "style to")
    image_size(args.add_style, "style image")           # a readable image, before any work
    entry = styles.style_entry(args.add_style)
    entry["settings"] = chosen_settings(args, ADD_STYLE_SETTINGS)
    base = models.load_any(args.resume, expect="style")
    config = base["config"]
    if config.get("norm") != "instance":
        raise NumstyleError(f"{args.resume} uses {config.get('norm')} norm: styles can be added "
                            "to an instance-norm network only")
    listed = config.get("styles") or [legacy_entry(config)]
    last = listed[-1]
    if base["adam"] is not None and last.get("sha256") == entry["sha256"] and "settings" in last:
        check_added_settings(args.resume, last["settings"], entry["settings"])
        initial = base                                     # an interrupted --add-style: continue
        print(f"resuming from iteration {base['iteration']} of {args.resume}")
    else:
        same = [s["name"] for s in listed if s.get("sha256") == entry["sha256"]]
        if same:
            raise NumstyleError(f"{args.resume} already has the style {args.add_style} (as "
                                f"{same[0]})")
        config = {k: v for k, v in config.items() if k not in ("style", "style_sha256")}
        config["styles"] = listed + [entry]
        initial = {"params": styles.add_row(base["params"]), "adam": {}, "iteration": 0,
                   "state": base["state"], "config": config}
    n = len(initial["config"]["styles"])
    stem = os.path.splitext(os.path.basename(args.resume))[0].replace(".ckpt", "")
    out = args.out or os.path.join("out", f"{stem}+{entry['name']}.h5")

    def make_step(spec, state, loss):
        return lambda p, b: train.network_step(p, spec, "instance", state, b[0], loss, mix=b[1],
                                               frozen_convs=True)

    weight = per_style(args.style_weight, 1, "--style-weight")
    return run_training(args, initial["config"], out, style_loss(args, [args.add_style], weight),
                        make_step, transform=None, inputs=[args.add_style],
                        style_hw=style_shape(args, [args.add_style]),
                        wrap=lambda b: train.StyleCycle(b, n, only=n - 1), initial=initial)


def legacy_entry(config):
    """A network of one style's config as the first entry of a conditional network's styles."""
    file = str(config.get("style") or "style")
    return {"name": os.path.splitext(file)[0], "file": file, "sha256": config.get("style_sha256")}


def check_added_settings(path, saved, now):
    for key in ADD_STYLE_SETTINGS:
        if key != "iters" and setting(saved, key) != setting(now, key):
            raise NumstyleError(
                f"{path} was trained with --{key.replace('_', '-')} {setting(saved, key)}, not "
                f"{setting(now, key)}: pass the same flags to resume (only --iters may change)")


def chosen_settings(args, keys):
    return {k: getattr(args, k) for k in keys}


def run_training(args, config, out, make_loss, make_step, transform, inputs=(), style_hw=None,
                 wrap=None, initial=None, resumed=None):
    """The shared body of ``numstyle train`` and ``numstyle sr-train``: resume, loop, checkpoints,
    model file.

    ``inputs``: files the command reads besides the data, weights and checkpoint (the style
    image), which no output may replace; ``style_hw``: the style image's size, for the memory
    check made before it is loaded; ``wrap``: applied to the batches (a conditional network's
    :class:`~numstyle.train.StyleCycle`); ``initial``: where to start instead of a new network
    or ``--resume`` (``params``, ``adam``, ``iteration``, ``state``, ``config``: a style added
    to a trained network); ``resumed``: the ``--resume`` checkpoint, if the caller has read it.
    """
    start_time = time.perf_counter()
    check_device(args.device)
    ckpt_path = os.path.splitext(out)[0] + ".ckpt.h5"
    images = list_images(args.data)  # only regular files: a FIFO would block the batches
    inputs = list(inputs) + [p for p in (args.weights,) if p] + images
    # before the training, not after it; the checkpoint may replace the one resumed from
    check_outputs([out], inputs + [p for p in (args.resume,) if p])
    check_extension(out, "--out", ".h5")
    check_outputs([ckpt_path], inputs)
    if not args.resume and unfinished(ckpt_path, out):  # an interrupted run's work: keep it
        raise NumstyleError(f"{ckpt_path} holds an unfinished training: continue it with "
                            f"--resume {ckpt_path}, or delete it to start again")
    check_training_memory(args, style_hw)
    spec = models.spec_from_config(config)
    if initial is not None:
        params, adam_state, start, state, config = (initial[k] for k in (
            "params", "adam", "iteration", "state", "config"))
        state = state or transformer.init_state(params, config["norm"])
    else:
        params = transformer.init_params(spec, seed=args.seed, styles=styles.count(config))
        state = transformer.init_state(params, config["norm"])
        adam_state, start = {}, 0
        if args.resume:
            ckpt = resumed or models.load_checkpoint(args.resume)
            check_resume(args.resume, ckpt["config"], config)
            params, adam_state, start, state = ckpt["params"], ckpt["adam"], ckpt[
                "iteration"], ckpt["state"] or state
            config = ckpt["config"] | {"settings": config["settings"]}
            print(f"resuming from iteration {start} of {args.resume}")
    loss = make_loss()
    params, adam_state = train.params_to(params,
                                         args.device), train.adam_to(adam_state, args.device)
    state = {k: {s: to_device(v, args.device) for s, v in st.items()} for k, st in state.items()}
    batches = Batches(args.data, args.size, args.batch_size, seed=args.seed, transform=transform,
                      paths=images)
    n_images = len(batches.paths)
    batches = wrap(batches) if wrap else batches
    print(f"training on {n_images} images from {args.data}: {args.iters} iterations of "
          f"{args.batch_size}x{args.size}x{args.size}, checkpoints in {ckpt_path}")

    saved = {}

    def checkpoint(iteration, p, a):
        models.save_checkpoint(ckpt_path, p, a, iteration, config, state)
        saved["iteration"] = iteration

    try:
        params, adam_state, history = train.fit(params, make_step(spec, state, loss), batches,
                                                args.iters, args.lr, start, adam_state, checkpoint,
                                                args.checkpoint_every, not args.no_progress,
                                                args.command, args.device)
    except KeyboardInterrupt as e:
        if saved:
            print(f"{stopped_word(e)}: wrote {ckpt_path} at iteration {saved['iteration']}; "
                  f"continue with the same command and --resume {ckpt_path}")
        raise
    if args.checkpoint_every:
        checkpoint(args.iters, params, adam_state)
    models.save_model(out, params, config, state, half=args.half)
    if history:
        last = history[-1]
        terms = "".join(f", {k} {last[k]:.4g}" for k in ("content", "style", "tv", "phase", "block")
                        if last.get(k))  # the terms in use
        print(
            f"last iteration's loss: total {last['total']:.5g}{terms}; {len(history)} iterations "
            "in "
            f"{time.perf_counter() - start_time:.1f} s (the progress bar shows a running mean)")
    else:  # resumed at --iters: the checkpoint is exported as the model
        print(
            f"no iterations left: the checkpoint is at iteration {start}, --iters is {args.iters}")
    print(f"wrote {out}")
    return [{"out": out, "checkpoint": ckpt_path if args.checkpoint_every else None,
             "iterations": len(history) if history else 0, "start": start,
             "loss": history[-1] if history else None,
             "seconds": time.perf_counter() - start_time}]


def unfinished(ckpt_path, out):
    """Whether ``ckpt_path`` is an interrupted training's: a finished one writes its model ``out``
    after its last checkpoint, an interrupted one writes no model."""
    if not os.path.exists(ckpt_path):
        return False
    return not os.path.exists(out) or os.path.getmtime(ckpt_path) > os.path.getmtime(out)


# peak RSS per pixel of a batch (256², batch 4: ~1.4 GB; docs/benchmarks.md)
TRAIN_BYTES_PER_PIXEL = 4300


def check_training_memory(args, style_hw=None):
    """Refuse, before anything is allocated, a training this machine's memory (the smallest of
    RAM, ``ulimit -v`` and the cgroup's limit) cannot hold: the batches on the CPU, and the
    style image's Gram pass (``style_hw``), which runs first; say what would fit."""
    limit = memory_limit()
    if limit is None:
        return
    per_crop = TRAIN_BYTES_PER_PIXEL * args.batch_size
    need = per_crop * args.size ** 2
    if args.device == "cpu" and need > limit:
        fits = int((limit / per_crop) ** 0.5)
        raise NumstyleError(
            f"--size {args.size} --batch-size {args.batch_size} needs about "
            f"{format_bytes(need)} of memory, more than this machine's {format_bytes(limit)}: "
            f"train on smaller crops or batches (--size {fits} or less fits)")
    if style_hw is None:
        return
    per_px = FORWARD_BYTES_PER_PIXEL if args.device == "cpu" else 16  # GPU: the host's copies
    style_need = per_px * style_hw[0] * style_hw[1]
    if style_need > limit:
        side = max(style_hw)
        fits = int(side * (limit / style_need) ** 0.5)
        raise NumstyleError(
            f"a {style_hw[1]}x{style_hw[0]} style image (--style-size {side}) needs about "
            f"{format_bytes(style_need)} of memory, more than this machine's "
            f"{format_bytes(limit)}: give --style-size {fits} or less")


RESUME_MUST_MATCH = ("size", "style_size", "batch_size", "lr", "content_weight", "style_weight",
                     "tv_weight", "phase_weight", "content_layer", "style_layers", "seed", "scale",
                     "loss", "blur", "pool", "pixel_weight", "block_weight")


TRAINED_BY = {"style": "numstyle train", "sr": "numstyle sr-train"}   # a config's kind -> command


def check_kind(path, saved, kind):
    """A checkpoint resumes only the kind of training that wrote it (a style network, or a
    super-resolution one)."""
    old = saved.get("kind")
    if old != kind:
        raise NumstyleError(f"{path} is a checkpoint of {TRAINED_BY.get(old, old)}, not of "
                            f"{TRAINED_BY[kind]}: resume it with that command")


def check_resume(path, saved, now):
    """A resumed run must use the checkpoint's style, network and settings (all but --iters):
    the batches and the loss are functions of them, and resuming is exact only if they match."""
    check_kind(path, saved, now["kind"])
    if style_hashes(saved) != style_hashes(now):
        raise NumstyleError(f"{path} was trained with other style images "
                            f"({', '.join(styles.names(saved)) or 'none'}); pass the same --style "
                            "to resume")
    for key in ("kind", "norm", "width", "n_res", "scale", "skip", "upsample"):
        old = saved.get(key, CONFIG_DEFAULTS.get(key))
        if old != now.get(key):
            raise NumstyleError(
                f"{path} has {key} {old}, not {now.get(key)}: pass the same flags to resume")
    for key in RESUME_MUST_MATCH:
        old, new = setting(saved.get("settings", {}), key), setting(now["settings"], key)
        if old != new:
            raise NumstyleError(
                f"{path} was trained with --{key.replace('_', '-')} {old}, not {new}: "
                "pass the same flags to resume (only --iters may change)")


def style_hashes(config):
    """The sha256 of each style image a config was trained with, in order."""
    if styles.count(config):
        return [s.get("sha256") for s in config["styles"]]
    return [config.get("style_sha256")]


def run_stylize(args, expect="style", transform=stylize_array, post=None):
    """Apply a model to every input -- images, GIFs, videos, folders of frames -- frame by frame:
    ``transform(params, config, state, rgb, device)`` (the network's forward pass), run in tiles
    under ``--max-memory`` / ``--tile``, then ``post(rgb, out)`` (colour options).

    Before any work: every input is a regular file Pillow reads (its header), no output is an
    input or a device, and the largest frame fits in memory. The inputs are a batch
    (:func:`numstyle.commands.batches.stylize_batch`): in this process, or on a Dask cluster with
    ``--workers`` / ``--scheduler``; an input that fails is named at the end (non-zero exit)."""
    if post is None and getattr(args, "preserve_colors", "none") != "none":
        post = keep_colors(args.preserve_colors)

    def check(src, spec, scale):
        shapes = input_shapes(src, args.size)
        check_input_size(src, shapes, spec)
        check_stylize_memory(args, src, shapes, spec, scale)

    report = Report(args)
    with report.messages_to_stderr():
        outcome, total, frames = stylize_batch(args, report, expect, transform, post, check)
    return finish(args, report, outcome, total, frames)


def check_input_size(src, shapes, spec):
    """NumstyleError naming ``src`` and the least size if a frame of ``shapes`` (``[(H, W)]``)
    is too small for the network of ``spec`` (its reflection pads)."""
    least = transformer.smallest_input(spec)
    small = [hw for hw in shapes if min(hw) < least]
    if small:
        h, w = small[0]
        raise NumstyleError(f"{src}: {w}x{h} px is too small for the network, which needs "
                            f"at least {least} px on each side")


def input_shapes(src, size):
    """``[(H, W), ...]`` of the frames ``src`` holds once resized to ``size``, from the files'
    headers (a video: ``[]``, known once read); one-line errors for anything unreadable."""
    def resized(hw):
        return resized_shape(hw, size) if size else tuple(hw)

    if os.path.isdir(src):
        names = frame_names(src)
        if not names:
            raise NumstyleError(f"no image frames in folder {src}")
        return [resized(image_size(os.path.join(src, n), "frame")[:2]) for n in names]
    if is_video(src):
        check_input(src, "input video")
        return []
    h, w, n = image_size(src, "input image")
    return [resized((h, w))] * (n if input_kind(src) == "gif" else 1)


def check_stylize_memory(args, src, shapes, spec, scale, tiles=True):
    """Refuse an input whose frames and largest pass this machine's memory (or the
    ``--max-memory`` budget) cannot hold, before it is read; say what would fit.

    ``tiles=False``: a command without ``--max-memory`` / ``--tile`` (``sheet``)."""
    if not shapes:
        return
    h, w = max(shapes, key=lambda hw: hw[0] * hw[1])
    if tiles and args.max_memory:  # the budget's own check (one tile must fit), now, not later
        plan_network_tiles(args.max_memory, h, w, spec, scale, args.tile)
        return
    limit = memory_limit()
    kept = (sum((12 + 3 * scale * scale) * a * b for a, b in shapes) if len(shapes) > 1
            else 0)  # every frame of a GIF or folder is read, and kept as a result
    if limit is None or network_bytes(h, w, spec, scale) + kept <= limit:
        return
    if tiles and args.tile:
        try:
            if plan_network_tiles(limit - kept, h, w, spec, scale, args.tile) is not None:
                return  # in tiles of --tile it fits
        except NumstyleError:
            pass
    side = largest_fitting(lambda s: network_bytes(*resized_shape((h, w), s), spec, scale)
                           + kept * (s / max(h, w)) ** 2, limit, max(h, w))
    advice = f"give --size {side} or less" if side else "give a smaller --size"
    try:
        if tiles:
            plan_network_tiles(limit - kept, h, w, spec, scale)
            advice += f", or --max-memory {format_bytes(limit).replace(' ', '')} to run in tiles"
    except NumstyleError:
        pass
    need = network_bytes(h, w, spec, scale) + kept
    raise NumstyleError(f"{args.command} of {src} at {w}x{h} needs about {format_bytes(need)} of "
                        f"memory, more than the {format_bytes(limit)} this machine has: {advice}")


def keep_colors(mode):
    """``post(rgb, out)`` giving the result the input photo's colours (CC1) or (CC2)."""
    def post(rgb, out):
        return restore_chroma(out, rgb) if mode == "luminance" else match_color(out, rgb)
    return post
