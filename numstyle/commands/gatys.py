"""``numstyle gatys``: Gatys et al. style transfer from the command line.

Content reconstruction (no ``--style``) and texture synthesis (no
``--content``) are the same command.
"""
import contextlib
import os
import sys
import time

import numpy as np

from .. import gatys, gatys_tiled
from ..backend import check_device, to_device, to_host
from ..color import luminance_image, match_color, restore_chroma
from ..config import GATYS, PREVIEW
from ..errors import NumstyleError
from ..files import check_input, check_outputs
from ..image import (MEAN_BGR, check_bit_depth, icc_profile, image_format, image_size,
                     load_image, preprocess, resize, resized_shape, save_image, to_bit_depth)
from ..interrupt import StopOnSignal, stopped_word
from ..preview import Preview
from ..schedule import content_balance, default_schedule, start_of_scale
from ..tiles import current_rss, format_bytes, largest_fitting, memory_limit
from ..vgg import FORWARD_BYTES_PER_PIXEL, check_layers, conv_shapes, deepest
from ..weights import load_vgg, resolve_vgg
from .args import (HelpFormatter, add_bit_depth_argument, add_common_arguments,
                   add_tiling_arguments, default_out, file_out, int_list, layer_list, non_negative,
                   non_negative_int, port_number, positive_float, positive_int, weight_list)
from .batches import add_batch_arguments
from .gatys_batch import is_batch, run_batch_of_jobs
from .media import (flicker, frame_names, has_frames, input_kind, is_video, output_path,
                    read_media, write_media, written_files)
from .report import Report


def add_parser(sub):
    p = sub.add_parser(
        "gatys", help="optimise an image's pixels (Gatys et al.)",
        description="Gatys et al. style transfer with L-BFGS-B (or Adam) on VGG features. "
        "Without --style: content reconstruction; without --content: texture synthesis.",
        formatter_class=HelpFormatter)
    add_arguments(p)
    p.set_defaults(run=run, iterative=True)
    return p


def add_arguments(p):
    d = GATYS
    p.add_argument("--content", metavar="PATH", nargs="+",
                   help="content photo (omit for texture synthesis); several: one job each, a "
                        "batch (--workers), with --out a folder")
    p.add_argument("--style", metavar="PATH", nargs="+", default=[],
                   help="style image(s); omit for content reconstruction")
    p.add_argument("--each-style", action="store_true",
                   help="one job per style image (a batch) instead of one blend of them all")
    p.add_argument("--style-blend", metavar="W", nargs="+", type=non_negative,
                   help="blend weight per style image (default: equal)")
    p.add_argument("--out", metavar="PATH",
                   help="output PNG, or a folder to write <content>_<style>.png into "
                        "(default: out/<content>_<style>.png)")
    p.add_argument("--size", type=positive_int, default=d.size,
                   help="longer side of the output, px")
    p.add_argument("--iters", type=int_list, metavar="N|N1,N2,...",
                   help="optimiser iterations: N alone is one scale of N at --size; with --scales, "
                        "one number for every scale or one per scale (default: default_schedule's, "
                        f"{d.iters} at one scale; {d.iters} per scale when only --scales is given)")
    p.add_argument("--model", choices=["vgg19", "vgg16"],
                   help="network (default: vgg19, or vgg16 when only its weights are found)")
    p.add_argument("--weights", metavar="PATH",
                   help="Keras notop .h5 weight file (default: searched, then downloaded)")
    p.add_argument("--pool", choices=["avg", "max"], default=d.pool,
                   help="pooling (the paper prefers avg)")
    p.add_argument("--content-layer", default=d.content_layer, metavar="NAME", help="content layer")
    p.add_argument("--style-layers", type=layer_list, default=list(d.style_layers),
                   metavar="A,B,...", help="style layers")
    p.add_argument("--style-layer-weights", type=weight_list, metavar="w,w,...",
                   help="weight per style layer (default: equal, summing to 1)")
    p.add_argument("--content-weight", type=non_negative, default=d.content_weight, help="alpha")
    p.add_argument("--style-weight", type=non_negative, default=d.style_weight, help="beta")
    p.add_argument("--tv-weight", type=non_negative, default=d.tv_weight,
                   help="total variation weight")
    p.add_argument("--init", default=None, metavar="noise|content|style|PATH",
                   help="starting image (default: content for style transfer, noise otherwise)")
    p.add_argument("--seed", type=non_negative_int, default=d.seed,
                   help="random seed for the noise init")
    p.add_argument(
        "--optimizer", choices=["lbfgs", "lbfgs-device", "adam"], default=None, help=
        "lbfgs: SciPy's L-BFGS-B (on the host); lbfgs-device: numstyle's projected L-BFGS, where "
        "the image is (no host copies; ~10%% faster on the CPU, about as good); adam "
        "(default: lbfgs, or lbfgs-device with --device gpu)")
    p.add_argument("--lr", type=positive_float, default=d.lr, help="Adam step size, pixel units")
    p.add_argument("--print-every", type=non_negative_int, default=0, metavar="N",
                   help="print the losses every N iterations (0: off)")
    p.add_argument("--save-every", type=non_negative_int, default=0, metavar="N",
                   help="save the image every N iterations (0: off)")
    p.add_argument(
        "--preserve-colors", choices=["none", "luminance", "histogram"], default="none",
        help="keep the photo's colours: transfer on luminance only, or match the style image's "
        "colour mean and covariance to the photo's first (Gatys et al.'s 'colour histogram "
        "matching')")
    p.add_argument("--scales", type=int_list, metavar="S1,S2,...",
                   help="coarse to fine: optimise at each size, starting each from the last, "
                        "enlarged with the photo's detail, the content weight scaled to each size "
                        "(overrides --size; default, unless --iters is given: "
                        "numstyle.schedule.default_schedule(--size), one scale; e.g. --scales "
                        "288,384 --iters 40,105 takes half the time)")
    p.add_argument("--style-scale", type=positive_float, default=1.0,
                   help="style image size relative to the output")
    add_bit_depth_argument(p)
    p.add_argument("--preview", nargs="?", type=port_number, const=PREVIEW.port, metavar="PORT",
                   help="watch the run on a page at http://127.0.0.1:PORT/: the current image and "
                        "the loss curves, updated as it runs, then the final picture; it stops "
                        f"with the run (PORT: default {PREVIEW.port}; 0: any free port)")
    add_tiling_arguments(p)
    add_common_arguments(p)
    add_batch_arguments(p)


def run(args):
    """The command: one job as ever, or several (contents x styles) as a batch
    (:mod:`numstyle.commands.gatys_batch`). ``--json`` prints each job's final record, then a
    summary, and nothing else on stdout (every other line: stderr). ``--preview``: one job's."""
    report = Report(args)
    with report.messages_to_stderr():
        if args.each_style and args.style_blend is not None:
            raise NumstyleError("--style-blend blends the styles of one job; --each-style makes "
                                "one job per style: give one or the other")
        if is_batch(args):
            if args.preview is not None:
                raise NumstyleError("--preview watches one job: give one --content and styles "
                                    "blended (no --each-style, --workers or --scheduler)")
            return run_batch_of_jobs(args, report, run_record)
        args.content = args.content[0] if args.content else None
        with open_preview(args.preview) as preview:  # the port: taken (or refused) before work
            report.output(run_record(args, report.start, preview=preview))
    report.summary()
    return 0


def open_preview(port):
    """``--preview``: the run's page (:class:`numstyle.preview.Preview`), its URL on stderr;
    without it, None."""
    if port is None:
        return contextlib.nullcontext()
    preview = Preview(port)
    print(f"preview: {preview.url} (the page updates itself while the run goes on)",
          file=sys.stderr, flush=True)
    return preview


def plan_scales(size, scales, iters):
    """``(sizes, iterations per size)`` from ``--size``, ``--scales``, ``--iters`` (None: unset).

    Neither given: the default schedule (:func:`numstyle.schedule.default_schedule`). ``--iters N``
    alone: one scale of N at ``size``. ``--scales`` alone: ``GATYS.iters`` at each.
    """
    if scales is None and iters is None:
        return default_schedule(size)
    sizes = scales or [size]
    iters = iters or [GATYS.iters]
    if any(b <= a for a, b in zip(sizes, sizes[1:])):
        raise NumstyleError(f"--scales {','.join(map(str, sizes))}: give them coarse to fine "
                            "(smallest first, each larger than the one before)")
    if len(iters) not in (1, len(sizes)):
        raise NumstyleError(f"--iters gives {len(iters)} numbers for {len(sizes)} scale(s): give "
                            "one, or one per scale")
    return list(sizes), list(iters) * len(sizes) if len(iters) == 1 else list(iters)


def run_record(args, start, vgg=None, preview=None):
    """Run; print the summary; return the final record (the ``--json`` object).

    ``vgg``: ``(model, path, params)`` already loaded (a batch's, sent to each worker once).
    ``preview``: the ``--preview`` page (one job's)."""
    if args.content is None and not args.style:
        raise NumstyleError("give --content, --style, or both (see --help)")
    if args.preserve_colors != "none" and (args.content is None or not args.style):
        raise NumstyleError("--preserve-colors needs both --content and --style")
    for flag, value in (("--style-blend", args.style_blend),
                        ("--style-layer-weights", args.style_layer_weights)):
        if value is not None and not args.style:
            raise NumstyleError(f"{flag} needs --style (there is no style image to weight)")
    check_device(args.device)
    if args.optimizer is None:  # SciPy's L-BFGS-B would copy every step to the host
        args.optimizer = "lbfgs-device" if args.device == "gpu" else "lbfgs"
    frames = args.content and has_frames(args.content)
    sizes, iters = plan_scales(args.size, args.scales, args.iters)
    if frames:  # where the result goes, checked before the work
        sizes = [args.size]  # each frame: one scale
        out = output_path(args.content, args.out, "gatys", many=False)
        folder = os.path.isdir(args.content)
        outputs, folders = (written_files(args.content, out), [out]) if folder else ([out], [])
        if args.bit_depth == 16 and not folder:
            raise NumstyleError(f"--bit-depth 16: {args.content} is a {input_kind(args.content)}"
                                ", written with 8 bits; 16 bits are for images and folders of "
                                "frames")
    else:
        out = file_out(args.out, default_out(args.content, args.style))
        image_format(out)
        check_bit_depth(out, args.bit_depth)
        outputs, folders = [out] + saved_every(out, args.save_every, max(iters)), []
    inputs = input_files(args)              # each one checked: a regular file, a readable image
    check_outputs(outputs, inputs, folders)
    model, path = resolve_vgg(args.model, args.weights) if vgg is None else vgg[:2]
    check_memory(args, model, sizes[-1], frames)
    upto = deepest(model, [args.content_layer, *args.style_layers])
    params = {
        k: (to_device(w, args.device), to_device(b, args.device))
        for k, (w, b) in (load_vgg(path, model, upto=upto) if vgg is None else vgg[2]).items()
    }
    if frames:
        return run_video(args, params, model, out, start, preview)
    content_full = load_image(args.content, None, "content image") if args.content else None
    styles_full = [load_image(s, None, "style image") for s in args.style]
    out_hw = (resize(content_full, longer_side=sizes[-1]).shape[:2] if content_full is not None
              else None)
    result, evaluations, iterations = None, 0, 0
    for i, size in enumerate(sizes):                                   # coarse to fine
        content_rgb, styles_rgb = scaled_inputs(content_full, styles_full, size, args.style_scale,
                                                args.preserve_colors)
        shape_rgb = content_rgb if content_rgb is not None else styles_rgb[0]
        if result is None:
            x0 = initial_image(args.init, content_rgb, styles_rgb, shape_rgb.shape[:2], args.seed,
                               size)
        else:                                      # the previous scale's result, enlarged (CF1)
            x0 = start_of_scale(result, shape_rgb.shape[:2], content_rgb)
        if len(sizes) > 1:
            print(f"scale {i + 1}/{len(sizes)}: {shape_rgb.shape[1]}x{shape_rgb.shape[0]}")
        balance = content_balance(out_hw, shape_rgb.shape[:2]) if out_hw else 1.0   # (CF2)
        final_hw = out_hw if i < len(sizes) - 1 else None   # stopped here: written enlarged
        result, last, evals, done = optimize_one_scale(args, params, model, content_rgb,
                                                       styles_rgb, x0, out, iters[i],
                                                       args.content_weight * balance, preview,
                                                       final_hw)
        evaluations, iterations = evaluations + evals, iterations + done
    if args.preserve_colors == "luminance":
        result = restore_chroma(result, content_full)  # (CC1): the photo's chroma put back
    save_image(out, to_bit_depth(result, args.bit_depth), output_profile(args),
               getattr(args, "stamp", None))       # a batch's fingerprint (gatys_batch)
    if preview:
        preview.finish(to_bit_depth(result, 8), out)
    seconds = time.perf_counter() - start
    print(f"final loss: total {last['total']:.6g}, content {last['content']:.6g}, "
          f"style {last['style']:.6g}, tv {last['tv']:.6g}; {evaluations} evaluations, "
          f"{seconds:.1f} s wall-clock ({model}, {result.shape[1]}x{result.shape[0]})")
    print(f"wrote {out}")
    return dict({k: last[k] for k in ("total", "content", "style", "tv")}, iterations=iterations,
                evaluations=evaluations, seconds=seconds, out=out, model=model,
                width=int(result.shape[1]), height=int(result.shape[0]), scales=sizes, iters=iters)


def saved_every(out, every, iters):
    """The images ``--save-every`` writes beside ``out`` (``<out>_0010.png``, ...)."""
    stem, ext = os.path.splitext(out)
    return [f"{stem}_{it:04d}{ext}" for it in range(every, iters + 1, every)] if every else []


def input_files(args):
    """Every file the run reads, each checked now: a regular file (a FIFO would block), and an
    image Pillow can read (its header), so that a bad one fails before the work."""
    files = []
    if args.content and os.path.isdir(args.content):
        names = frame_names(args.content)
        if not names:
            raise NumstyleError(f"no image frames in folder {args.content}")
        files += [args.content] + [os.path.join(args.content, n) for n in names]
    elif args.content and is_video(args.content):
        check_input(args.content, "content video")
        files.append(args.content)
    elif args.content:
        image_size(args.content, "content image")
        files.append(args.content)
    for s in args.style:
        image_size(s, "style image")
    init = args.init if args.init not in (None, "noise", "content", "style") else None
    if init and not os.path.exists(init):
        raise NumstyleError(
            f"--init {init}: not noise, content, style, or an image file that exists")
    if init:
        image_size(init, "init image")
    return files + list(args.style) + [p for p in (init, args.weights) if p]


def check_memory(args, model, size, frames):
    """Refuse, before any image is loaded or resized, a run this machine's memory (or the
    ``--max-memory`` budget) cannot hold, in one line that says what would fit."""
    if frames:
        names = frame_names(args.content) if os.path.isdir(args.content) else []
        if not names:
            return  # a video: its frames' size is known once it is read
        hw = max((resized_shape(image_size(os.path.join(args.content, n), "frame")[:2], size)
                  for n in names), key=lambda s: s[0] * s[1])     # the largest frame
    else:
        source = args.content or args.style[0]
        hw = resized_shape(image_size(source)[:2], size)
    shape = (1, 3, *hw)
    layers = ([args.content_layer] if args.content else []) + (list(args.style_layers)
                                                               if args.style else [])
    check_layers(model, layers)
    content_layer = args.content_layer if args.content else None
    weight_bytes = sum(4 * (int(np.prod(s)) + s[0]) for s in conv_shapes(model).values())
    limit = memory_limit()
    if args.max_memory:  # the budget's own check (one tile must fit), now rather than later
        gatys_tiled.plan_gatys(args.max_memory, shape, model, layers, content_layer,
                               args.optimizer, args.tile, weight_bytes)
        return
    if limit is None:
        return
    check_content_memory(args, model, hw, size, limit, layers, content_layer, weight_bytes)
    styles = [resized_shape(image_size(s)[:2], max(1, round(size * args.style_scale)))
              for s in args.style]
    style_hw = max(styles, key=lambda hw: hw[0] * hw[1], default=(0, 0))
    style_need = FORWARD_BYTES_PER_PIXEL * style_hw[0] * style_hw[1] + current_rss()
    if style_need > limit:  # its Gram matrices are computed whole, before the optimisation
        fits = args.style_scale * ((limit - current_rss()) / (style_need - current_rss())) ** 0.5
        raise NumstyleError(
            f"a {style_hw[1]}x{style_hw[0]} style image needs about {format_bytes(style_need)} "
            f"of memory, more than the {format_bytes(limit)} this machine has: use "
            f"--style-scale {fits:.3g} or less")


def check_content_memory(args, model, hw, size, limit, layers, content_layer, weight_bytes):
    """The optimised image's part of :func:`check_memory`: whole, or in tiles of ``--tile``."""
    shape = (1, 3, *hw)

    def need(hw):
        return gatys_tiled.whole_bytes((1, 3, *hw), model, content_layer, args.optimizer,
                                       weight_bytes)
    if need(hw) <= limit:
        return
    if args.tile:
        try:
            gatys_tiled.plan_gatys(limit, shape, model, layers, content_layer, args.optimizer,
                                   args.tile, weight_bytes)
            return  # in tiles of --tile it fits
        except NumstyleError:
            pass
    fits = largest_fitting(lambda s: need(resized_shape(hw, s)), limit, size)
    advice = f"use --size {fits} or less" if fits else "use a smaller --size"
    try:
        gatys_tiled.plan_gatys(limit, shape, model, layers, content_layer, args.optimizer, None,
                               weight_bytes)
        advice += f", or --max-memory {format_bytes(limit).replace(' ', '')} to run in tiles"
    except NumstyleError:
        pass
    raise NumstyleError(
        f"a {hw[1]}x{hw[0]} Gatys run with {model} needs about {format_bytes(need(hw))} of "
        f"memory, more than the {format_bytes(limit)} this machine has: {advice}")


def run_video(args, params, model, out, start, preview=None):
    """A video or folder of frames, each optimised from the previous frame's result (less flicker).

    Interrupted (Ctrl-C), it writes the frames finished so far, in the output's own form.
    """
    frames, meta = read_media(args.content, args.size)
    styles = [load_image(s, None, "style image") for s in args.style]
    results, prev, iterations, last = [], None, 0, {}
    iters = args.iters[0] if args.iters else GATYS.iters      # each frame: one scale, from the last
    try:
        for t, frame in enumerate(frames):
            content, styles_t = scaled_inputs(frame, styles, max(frame.shape[:2]), args.style_scale,
                                              args.preserve_colors)
            if prev is None or prev.shape[:2] != content.shape[:2]:   # the first, or a cut
                x0 = initial_image(args.init, content, styles_t, content.shape[:2], args.seed,
                                   args.size)
            else:  # start from the last result: same strokes, less flicker
                x0 = prev
            prev, last, _, n = optimize_one_scale(args, params, model, content, styles_t, x0,
                                                  None, iters, preview=preview)
            iterations += n
            result = restore_chroma(prev, frame) if args.preserve_colors == "luminance" else prev
            results.append(to_bit_depth(result, args.bit_depth))
            print(f"frame {t + 1}/{len(frames)}: total {last['total']:.5g}", flush=True)
    except KeyboardInterrupt as e:
        if results:
            done = dict(meta, names=meta["names"][:len(results)]) if "names" in meta else meta
            write_media(out, results, done)
            print(f"{stopped_word(e)}: wrote the {len(results)} finished frame(s) of "
                  f"{len(frames)} to {out}")
        raise
    write_media(out, results, meta)
    if preview:
        preview.finish(results[-1], out)
    seconds, flick = time.perf_counter() - start, flicker(results)
    print(f"wrote {out} ({len(results)} frames, flicker {flick:.2f}, {seconds:.1f} s wall-clock, "
          f"{model})")
    return dict({k: last.get(k) for k in ("total", "content", "style", "tv")},
                iterations=iterations, seconds=seconds, out=out, model=model, frames=len(results),
                flicker=float(flick))


def scaled_inputs(content_full, styles_full, size, style_scale, preserve_colors):
    """Content at longer side ``size``, styles at ``size * style_scale``, colour options applied."""
    content = resize(content_full, longer_side=size) if content_full is not None else None
    styles = [resize(s, longer_side=max(1, round(size * style_scale))) for s in styles_full]
    if preserve_colors == "histogram":
        styles = [match_color(s, content) for s in styles]                      # (CC2)
    elif preserve_colors == "luminance":
        styles = [luminance_image(s, like=content) for s in styles]             # (CC1)
        content = luminance_image(content)
    return content, styles


def optimize_one_scale(args, params, model, content_rgb, styles_rgb, x0, out, iters,
                       content_weight=None, preview=None, final_hw=None):
    """One L-BFGS-B (or Adam) run at one size: ``(RGB result, losses, evaluations, iterations)``.

    The result is float RGB 0..255, not rounded to 8 bits (the next scale starts from it).
    ``content_weight``: alpha at this scale (default ``--content-weight``). ``out``: the image
    file for ``--save-every`` and for the latest image on Ctrl-C (None: neither). ``preview``:
    the ``--preview`` page, handed each iteration's losses and, at most every
    ``PREVIEW.every`` seconds, the image. ``final_hw``: the output's (H, W) when this is a
    coarser scale of a schedule, so that the latest image written on Ctrl-C has the size asked for
    (enlarged as the next scale would start, (CF1) without the detail).
    """
    dev = lambda rgb: to_device(preprocess(rgb), args.device)  # noqa: E731
    tile, maxcor = plan_tiles(args, params, model, x0.shape, content_rgb is not None,
                              bool(styles_rgb))
    for rgb in styles_rgb:     # a style image far larger than the output: a long silent pass
        if rgb.shape[0] * rgb.shape[1] > 4 * x0.shape[0] * x0.shape[1]:
            print(f"style targets at {rgb.shape[1]}x{rgb.shape[0]} px (--style-scale "
                  f"{args.style_scale:g}): one pass through {model}", flush=True)
    objective = gatys_tiled.make_objective(
        params, model, content=dev(content_rgb) if content_rgb is not None else None,
        styles=[dev(s) for s in styles_rgb], style_blend=args.style_blend, pool=args.pool,
        content_layer=args.content_layer, style_layers=args.style_layers,
        style_layer_weights=args.style_layer_weights,
        content_weight=args.content_weight if content_weight is None else content_weight,
        style_weight=args.style_weight if args.style else 0.0, tv_weight=args.tv_weight, tile=tile)
    stem, ext = os.path.splitext(out or "")
    latest = {"x": None}
    stop = StopOnSignal()  # Ctrl-C, SIGTERM: the iteration finishes, the latest image is written

    def callback(it, x, parts):
        latest["x"] = x
        if stop.requested:
            stop.stop()
        if args.print_every and it % args.print_every == 0:
            print(
                f"iter {it}: total {parts['total']:.5g} content {parts['content']:.4g} "
                f"style {parts['style']:.4g} tv {parts['tv']:.4g} ({parts['time']:.1f} s)",
                flush=True)
        if out and args.save_every and it % args.save_every == 0:
            save_image(f"{stem}_{it:04d}{ext}", to_bit_depth(to_rgb(to_host(x)), args.bit_depth),
                       output_profile(args))
        if preview:
            preview.update(it, parts, lambda: to_bit_depth(to_rgb(to_host(x)), 8))

    try:
        with stop:
            x, history = gatys.optimize(objective, dev(x0), iters, args.optimizer, args.lr,
                                        callback, progress=not args.no_progress, maxcor=maxcor)
    except KeyboardInterrupt as e:
        if out and latest["x"] is not None:  # (frames: run_video writes the finished ones)
            rgb, note = to_rgb(to_host(latest["x"])), ""
            if final_hw is not None and rgb.shape[:2] != tuple(final_hw):
                note = (f" (stopped at a coarser scale: {rgb.shape[1]}x{rgb.shape[0]}, enlarged "
                        f"to {final_hw[1]}x{final_hw[0]})")
                rgb = start_of_scale(rgb, final_hw, detail=0.0)
            save_image(out, to_bit_depth(rgb, args.bit_depth), output_profile(args))
            print(f"{stopped_word(e)}: wrote the latest image to {out}{note}")
        raise
    last = history[-1] if history else objective.last
    return to_rgb(to_host(x)), last, objective.evaluations, len(history)


def output_profile(args):
    """The ICC profile the output keeps: the content photo's (None without one, or for frames)."""
    if args.content and input_kind(args.content) == "image":
        return icc_profile(args.content)
    return None


def to_rgb(x):
    """Preprocessed (1, 3, H, W) on the host -> float RGB (H, W, 3) 0..255, unrounded."""
    bgr = np.asarray(x, dtype=np.float32)[0].transpose(1, 2, 0) + MEAN_BGR     # (H, W, 3)
    return np.ascontiguousarray(np.clip(bgr[:, :, ::-1], 0, 255))


def plan_tiles(args, params, model, hw, has_content, has_style):
    """``(tile core or None, L-BFGS-B history)`` for ``--max-memory`` / ``--tile``; says so when
    tiling."""
    if not (args.max_memory or args.tile):
        return None, 10
    layers = ([args.content_layer] if has_content else []) + (list(args.style_layers)
                                                              if has_style else [])
    weight_bytes = sum(w.nbytes + b.nbytes for w, b in params.values())
    shape = (1, 3, hw[0], hw[1])
    tile, maxcor = gatys_tiled.plan_gatys(args.max_memory, shape, model, layers,
                                          args.content_layer if has_content else None,
                                          args.optimizer, args.tile, weight_bytes)
    if tile is not None:
        grid = gatys_tiled.vgg_grid(shape, model, layers, tile)
        if len(grid) > 1:
            margin = grid[0].box[1] - grid[0].core[1]
            print(
                f"tiles: {len(grid)} of {tile} px + {margin} px margins" +
                (f"; L-BFGS keeps {maxcor} corrections"
                 if args.optimizer.startswith("lbfgs") else ""), flush=True)
    return tile, maxcor


def initial_image(init, content_rgb, styles_rgb, hw, seed, size):
    """Starting image as RGB (H, W, 3) 0..255: noise, the content, the style, or a file."""
    if init is None:
        init = "content" if (content_rgb is not None and styles_rgb) else "noise"
    if init == "noise":
        rng = np.random.default_rng(seed)
        return np.clip(128.0 + 64.0 * rng.standard_normal((*hw, 3)), 0, 255).astype(np.float32)
    if init == "content":
        if content_rgb is None:
            raise NumstyleError("--init content needs --content")
        return content_rgb
    if init == "style":
        if not styles_rgb:
            raise NumstyleError("--init style needs --style")
        return resize(styles_rgb[0], shape=hw)
    if not os.path.exists(init):
        raise NumstyleError(
            f"--init {init}: not noise, content, style, or an image file that exists")
    return resize(load_image(init, None, "init image"), shape=hw)
