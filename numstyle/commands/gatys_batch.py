"""``numstyle gatys`` over several content images and/or styles: each pair an independent job.

``--content a.jpg b.jpg`` makes one job per photo; ``--each-style`` one job per style image
(instead of one blend of them all); both: every pair. The jobs are a batch
(:func:`numstyle.batch.run_batch`): in this process, or on a Dask cluster with ``--workers`` /
``--scheduler``, the VGG weights loaded once here and sent to each worker once. Each result is
``<out>/<content>_<style>.png`` (``--out``: a folder, default ``out``), stamped with the
fingerprint of its inputs, weights and settings, so a rerun skips it. A folder or video as
``--content`` (its frames, each started from the last) stays one job, run as before.
"""
import argparse
import os
import time

from ..batch import (FINGERPRINT_KEY, Task, failures_message, file_digest, fingerprint, run_batch,
                     skipped_message, where_from_args)
from ..errors import NumstyleError
from ..weights import load_vgg, resolve_vgg
from .args import default_out, file_out
from .media import has_frames

# flags that do not change the picture: left out of its fingerprint
NOT_IN_FINGERPRINT = {"content", "style", "out", "json", "no_progress", "workers", "scheduler",
                      "overwrite", "print_every", "save_every", "run", "command", "each_style",
                      "iterative", "stamp"}


def is_batch(args):
    """Whether the command is a batch: several jobs, or a cluster asked for."""
    return len(jobs_of(args)) > 1 or bool(where_from_args(args).workers
                                          or where_from_args(args).scheduler)


def jobs_of(args):
    """``[(content or None, [style, ...]), ...]``: every content with every style set."""
    contents = args.content or [None]
    styles = [[s] for s in args.style] if args.each_style and args.style else [list(args.style)]
    return [(c, s) for c in contents for s in styles]


def job_outputs(args, jobs):
    """Each job's output: ``--out`` for one job, else ``<--out or out>/<content>_<style>.png``,
    made distinct (``_2``, ``_3``, ...)."""
    if len(jobs) == 1:
        return [file_out(args.out, default_out(jobs[0][0], jobs[0][1]))]
    if args.out and os.path.splitext(args.out)[1] and not os.path.isdir(args.out):
        raise NumstyleError(f"--out {args.out}: several jobs need a folder for --out, "
                            "not a file name")
    paths, taken = [], set()
    for content, styles in jobs:
        path = first = default_out(content, styles, args.out or "out")
        n = 1
        while path in taken:
            n += 1
            path = f"{os.path.splitext(first)[0]}_{n}.png"
        paths.append(path)
        taken.add(path)
    return paths


def digest_or_none(path):
    return file_digest(path) if path and os.path.isfile(path) else None


def run_batch_of_jobs(args, report, run_record):
    """Run every job of ``args``; report each record, the skipped, the failed; the exit status.

    ``run_record(args, start, vgg)``: one job (:func:`numstyle.commands.gatys.run_record`).
    """
    jobs = jobs_of(args)
    for content, _ in jobs:
        if content and has_frames(content) and len(jobs) > 1:
            raise NumstyleError(f"--content {content} is a folder, video or animated GIF (one "
                                "job, its frames in order): give it alone, without other jobs")
    outs = job_outputs(args, jobs)
    model, path = resolve_vgg(args.model, args.weights)
    settings = {k: v for k, v in sorted(vars(args).items()) if k not in NOT_IN_FINGERPRINT}
    weights_digest = file_digest(path)
    init = args.init if args.init not in (None, "noise", "content", "style") else None
    tasks = []
    for (content, styles), out in zip(jobs, outs):
        stamp = fingerprint("gatys", weights_digest, model, settings, digest_or_none(content),
                            [digest_or_none(s) for s in styles], digest_or_none(init))
        job = argparse.Namespace(**dict(vars(args), content=content, style=styles, out=out,
                                        no_progress=True, stamp={FINGERPRINT_KEY: stamp}))
        frames = content and has_frames(content)
        name = " with ".join(p for p in (content, "+".join(styles)) if p)  # failures say which
        tasks.append(Task(name, gatys_job, (job,), () if frames else (out,), stamp))
    shared = {"vgg": (model, path, load_vgg(path, model)), "run": run_record}

    def on_result(i, record):
        print(f"wrote {record['out']} (total {record['total']:.6g}, "
              f"{record['seconds']:.1f} s)", flush=True)
        report.output(record)

    outcome = run_batch(tasks, shared, where_from_args(args), args.overwrite,
                        not args.no_progress, "gatys", on_result)
    if outcome.skipped:
        print(skipped_message(len(outcome.skipped), len(tasks), "jobs"))
    for i in outcome.skipped:
        report.output({"out": tasks[i].outputs[0], "skipped": True})
    report.summary(skipped=len(outcome.skipped),
                   failed=[{"input": n, "error": m} for n, m in outcome.failed])
    if outcome.failed:
        raise NumstyleError(failures_message(outcome, len(tasks), "jobs"))
    return 0


def gatys_job(shared, args):
    """One Gatys job where it lands: its final record."""
    return shared["run"](args, time.perf_counter(), shared["vgg"])
