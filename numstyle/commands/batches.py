"""``stylize`` and ``upscale`` as batches: each image one task, each video, GIF or folder of frames
chunks of frames, run in this process or on a Dask cluster (:mod:`numstyle.batch`).

The network runs in the tasks; ``--deflicker``'s chain (VD1), which needs the previous frame's
*output*, runs here, in frame order, as the chunks come back: each chunk also returns the input's
change :math:`\\Delta` at each of its frames (for its first frame, from the previous chunk's
last input), so the chain is the same across chunk boundaries as in one pass. Images are
written by the tasks; videos, GIFs and folders of frames here, once their chain is done.
"""
import os
import re
import time

import numpy as np

from .. import models, styles
from ..backend import check_device, to_device
from ..batch import (FINGERPRINT_KEY, Task, failures_message, file_digest, fingerprint, is_done,
                     run_batch, skipped_message, where_from_args)
from ..errors import NumstyleError
from ..files import check_outputs
from ..image import check_bit_depth, to_bit_depth
from ..stylize import apply_strength
from ..tiles import tiled_transform
from .args import positive_int
from .media import (deflicker_blend, flicker, frame_names, input_change, input_kind,
                    output_paths, read_media, write_media, written_files)
from .report import add_json_argument

FRAMES_PER_TASK = 16   # a video's or folder's frames are sent out in chunks of this many


def add_batch_arguments(p):
    """``--workers``, ``--scheduler``, ``--overwrite`` and ``--json``: a command's batch."""
    add_cluster_arguments(p)
    p.add_argument("--overwrite", action="store_true",
                   help="redo every output, also those already made from the same input, model "
                        "and settings (which are skipped otherwise)")
    add_json_argument(p)


def add_cluster_arguments(p):
    """``--workers`` and ``--scheduler``: where a command's tasks run."""
    p.add_argument("--workers", type=positive_int, metavar="N",
                   help="run the batch on a local Dask cluster of N processes sharing the cores "
                        "(the cluster extra)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run the batch on the Dask cluster at ADDRESS, e.g. tcp://host:8786 "
                        "(default: $NUMSTYLE_SCHEDULER; neither: in this process)")


def stylize_batch(args, report, expect, transform, post, check):
    """The body of ``stylize`` / ``upscale`` (see :func:`numstyle.commands.johnson.run_stylize`):
    returns ``(outcome, number of inputs, frames written)``.

    ``check(src, shapes, spec, scale)``: the memory check of one input, before any work.
    """
    where = where_from_args(args)
    many = len(args.inputs) > 1
    check_device(args.device)
    model_path = models.resolve_model_path(args.model, expect)
    params, config, state = models.load_model(model_path, expect=expect)
    suffix = output_suffix(model_path, config, getattr(args, "style", None))
    params, config = pick_style(args, params, config)
    dests = output_paths(args.inputs, args.out, suffix)  # distinct, checked
    depth = getattr(args, "bit_depth", 8)
    for src, dst in zip(args.inputs, dests):
        check_output_depth(src, dst, depth)
    spec, scale = models.spec_from_config(config), config.get("scale", 1)
    jobs, unreadable = [], []
    for src, dst in zip(args.inputs, dests):
        try:
            check(src, spec, scale)           # headers read, memory checked: before any work
        except NumstyleError as e:
            if not many:
                raise
            unreadable.append((src, str(e)))  # named at the end; the others go on
            continue
        jobs.append((src, dst))
    inputs, outputs, folders = [model_path], [], []
    for src, dst in jobs:
        inputs += [src] + ([os.path.join(src, n) for n in frame_names(src)]
                           if os.path.isdir(src) else [])
        outputs += written_files(src, dst)
        folders += [dst] if os.path.isdir(src) else []
    check_outputs(outputs, inputs, folders)
    if args.max_memory or args.tile:
        transform = tiled_transform(transform, (args.max_memory, args.tile))
    shared = {"params": params, "config": config, "state": state, "model": model_path,
              "transform": transform, "post": post, "device": args.device,
              # one input here: a bar of its own, over the layers or the tiles
              "progress": not args.no_progress and where.in_process and len(jobs) == 1,
              "strength": getattr(args, "strength", 1.0), "bit_depth": depth}
    model_digest = file_digest(model_path)
    tasks, chains, skipped = [], {}, []
    for src, dst in jobs:
        kind = input_kind(src)
        stamp = fingerprint(args.command, model_digest, input_digest(src),
                            output_settings(args, kind))
        if kind == "image":
            tasks.append(Task(src, image_task, (src, dst, args.size, stamp), (dst,), stamp))
            continue
        outs = () if kind == "video" else tuple(written_files(src, dst))   # a video: no stamp
        if not args.overwrite and is_done(Task(src, None, (), outs, stamp)):
            skipped.append((src, dst))     # done before: not even read
            continue
        try:
            frames, meta = ((None, {"kind": "folder", "names": frame_names(src)})
                            if kind == "folder" else read_media(src, args.size))
        except NumstyleError as e:
            if not many:
                raise
            unreadable.append((src, str(e)))
            continue
        count = len(meta["names"]) if kind == "folder" else len(frames)
        first, strength = len(tasks), getattr(args, "deflicker", 0.0)
        for begin in range(0, count, FRAMES_PER_TASK):
            end = min(count, begin + FRAMES_PER_TASK)
            if frames is None:   # a folder: the task reads its frames where it runs
                part = [os.path.join(src, n) for n in meta["names"][max(0, begin - 1):end]]
            else:
                part = frames[max(0, begin - 1):end]
            tasks.append(Task(src, chunk_task, (src, part, begin > 0, args.size, strength)))
        chains[src] = Chain(src, dst, meta, range(first, len(tasks)), stamp, outs, strength,
                            depth)
    start, written = time.perf_counter(), [0]

    def wrote(src, dst, frames, extra=None, seconds=None):
        written[0] += frames
        more = f" (flicker {extra:.2f})" if extra is not None else ""
        print(f"wrote {dst}{more}", flush=True)
        report.output(dict({"input": src, "out": dst, "frames": frames},
                           **({"flicker": extra} if extra is not None else {}),
                           **({"seconds": seconds} if seconds is not None else {})))

    def on_result(i, result):
        chain = chains.get(tasks[i].name)
        if chain is None:
            wrote(result["input"], result["out"], 1, seconds=result["seconds"])
        elif chain.add(i, result):       # its last chunk in: written
            wrote(chain.src, chain.dst, len(chain.results),
                  flicker(chain.results) if len(chain.results) > 1 else None)

    outcome = run_batch(tasks, shared, where, args.overwrite, not args.no_progress, args.command,
                        on_result)
    skipped += [(tasks[i].name, tasks[i].outputs[0]) for i in outcome.skipped]
    if skipped:
        print(skipped_message(len(skipped), len(args.inputs)))
    for src, dst in skipped:
        report.output({"input": src, "out": dst, "skipped": True})
    outcome.skipped = skipped
    first_failure = {}      # a video's chunks may fail alike: each input named once
    for name, message in unreadable + outcome.failed:
        first_failure.setdefault(name, message)
    outcome.failed = sorted(first_failure.items())
    if written[0] or not outcome.failed:         # a lone failure: its error line alone
        print(f"{written[0]} frame(s) in {time.perf_counter() - start:.2f} s")
    return outcome, len(args.inputs), written[0]


def finish(args, report, outcome, total, frames):
    """The summary, then the one-line error naming each input that failed (non-zero exit)."""
    report.summary(frames=frames, skipped=len(outcome.skipped),
                   failed=[{"input": n, "error": m} for n, m in outcome.failed])
    if outcome.failed:
        raise NumstyleError(failures_message(outcome, total))
    return 0


def input_digest(src):
    """What an output is made from: the input file's bytes, or each frame's of a folder."""
    if os.path.isdir(src):
        return [(n, file_digest(os.path.join(src, n))) for n in frame_names(src)]
    return file_digest(src)


def output_settings(args, kind):
    """The settings an output depends on (its fingerprint's), from the command's flags."""
    keys = ["style", "size", "preserve_colors", "match_histogram", "strength", "bit_depth",
            "max_memory", "tile", "device"]
    keys += ["deflicker"] if kind != "image" else []
    chosen = {k: getattr(args, k) for k in keys if hasattr(args, k)}
    return dict(chosen, reference=bool(getattr(args, "reference", False)))


_device_model = {}


def model_on(shared):
    """``(params, config, state)`` of ``shared`` on its device, copied there once per process."""
    key = (id(shared["params"]), shared["device"])
    if key not in _device_model:
        dev = shared["device"]
        _device_model.clear()
        _device_model[key] = (
            {k: to_device(v, dev) for k, v in shared["params"].items()},
            {k: {s: to_device(v, dev) for s, v in st.items()} for k, st in shared["state"].items()})
    params, state = _device_model[key]
    return params, shared["config"], state


def run_network(shared, frame, src):
    """One frame through the network, colour option, ``--strength`` and checks: float
    (H', W', 3) in 0..255."""
    params, config, state = model_on(shared)
    out = shared["transform"](params, config, state, frame, shared["device"],
                              progress=shared["progress"])
    if shared["post"] is not None:
        out = shared["post"](frame, out)
    if shared["strength"] != 1:  # stylize only (upscale's output is larger than its input)
        out = apply_strength(out, frame, shared["strength"])
    check_finite_output(out, shared["model"], src)
    return np.clip(out, 0, 255, out=out)  # in place: large images


def output_suffix(model_path, config, style=None):
    """What a default output name adds to the input's: the model's name (and the ``--style`` of
    a network of several), then ``stylized`` or the scale -- ``photo_starry_night_stylized.png``,
    ``photo_sr_x4_pixel_x4.png`` -- so that two models never write one file."""
    name = os.path.splitext(os.path.basename(model_path))[0]
    if styles.count(config) and style:
        name += "_" + re.sub(r"[^\w.+-]+", "-", style)
    return f"{name}_stylized" if config.get("kind") == "style" else f"{name}_x{config['scale']}"


def pick_style(args, params, config):
    """``stylize --style``: a conditional network as the plain network of one style or a blend
    (N4); a network of one style takes its index 0 or its name."""
    choice = getattr(args, "style", None)
    names = styles.names(config)
    if styles.count(config):
        return styles.apply_mix(params, config, styles.parse_mix(choice or "0", names))
    if choice is not None:
        if not names:
            raise NumstyleError(f"--style {choice}: {args.model} is a network of one style")
        styles.parse_mix(choice, names)                     # its only style, or a one-line error
    return params, config


def check_output_depth(src, dst, bit_depth):
    """``--bit-depth 16`` is for images (PNG, TIFF) and folders of frames (PNG): NumstyleError,
    before the work, for an animated GIF or a video, or an image file name of another format."""
    if bit_depth != 16:
        return
    kind = input_kind(src)
    if kind in ("gif", "video"):
        what = "a video" if kind == "video" else "an animated GIF"
        raise NumstyleError(f"--bit-depth 16: {src} is {what}, written with 8 bits; 16 bits are "
                            "for images and folders of frames")
    if kind == "image":
        check_bit_depth(dst, bit_depth)


def check_finite_output(rgb, model, src):
    """A NaN or infinite pixel would be written as black: an error instead (finite parameters
    can still overflow float32)."""
    if not np.isfinite(rgb).all():
        raise NumstyleError(f"the model {model} gave NaN or infinite pixels for {src}: its "
                            "parameters overflow float32 (a damaged or diverged model)")


def image_task(shared, src, dst, size, stamp):
    """Stylise one image and write it, stamped with its fingerprint."""
    t0 = time.perf_counter()
    frames, meta = read_media(src, size)
    results = [to_bit_depth(run_network(shared, f, src), shared["bit_depth"]) for f in frames]
    write_media(dst, results, meta, {FINGERPRINT_KEY: stamp})
    return {"input": src, "out": dst, "seconds": time.perf_counter() - t0}


def chunk_task(shared, src, frames, after_first, size, deflicker):
    """A chunk of a video's, GIF's or folder's frames: ``{"outputs", "changes"}``, float32.

    ``frames``: arrays, or file names (a folder's); with ``after_first``, the first one is the
    previous chunk's last input, there only for the change :math:`\\Delta` of (VD1).
    """
    if frames and isinstance(frames[0], str):
        frames = [read_media(p, size)[0][0] for p in frames]
    outputs, changes = [], []
    for t, frame in enumerate(frames):
        if t > 0 and deflicker:
            changes.append(input_change(frames[t - 1], frame))
        elif t == 0 and not after_first:
            changes.append(None)
        if t > 0 or not after_first:
            outputs.append(run_network(shared, frame, src))
    return {"outputs": outputs, "changes": changes if deflicker else [None] * len(outputs)}


class Chain:
    """The client's side of one video, GIF or folder: its chunks in frame order through the chain
    of (VD1), each frame rounded to ``bit_depth`` bits as it passes, then the output written."""

    def __init__(self, src, dst, meta, tasks, stamp, outputs, strength, bit_depth=8):
        self.src, self.dst, self.meta, self.tasks = src, dst, meta, list(tasks)
        self.stamp, self.outputs, self.strength = stamp, outputs, strength
        self.bit_depth = bit_depth
        self.pending, self.next, self.prev_out, self.results = {}, 0, None, []

    def add(self, index, chunk):
        """Take the chunk of task ``index``; True once the output is written."""
        self.pending[self.tasks.index(index)] = chunk
        while self.next in self.pending:
            chunk = self.pending.pop(self.next)
            for out, change in zip(chunk["outputs"], chunk["changes"]):
                if self.strength and self.prev_out is not None:
                    out = deflicker_blend(change, self.prev_out, out, self.strength)   # (VD1)
                self.prev_out = out
                self.results.append(to_bit_depth(out, self.bit_depth))
            self.next += 1
        if self.next < len(self.tasks):
            return False
        stamp = {FINGERPRINT_KEY: self.stamp} if self.outputs else None
        self.dst = write_media(self.dst, self.results, self.meta, stamp)
        return True
