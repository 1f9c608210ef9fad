"""Issue 21's scaling measurement: ``stylize`` on 24 photos and ``gatys`` on 4 small jobs, in this
process vs ``--workers 1`` vs ``--workers 2``, alternating (A B C A B C ...), medians; the
scheduler's per-task overhead; whether the outputs equal the in-process ones.

    NUMSTYLE_DATA=../shared python benchmarks/cluster_scaling.py [--rounds 3] > scaling.json

Each run is the whole command (``python -m numstyle ...``), so cluster start-up is included;
the start-up is also timed alone. Written for docs/benchmarks.md (a shared 2-core machine).
"""
import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

from numstyle import batch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def command(argv, env=None):
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "numstyle", *argv], check=True, cwd=ROOT,
                   env=dict(os.environ, PYTHONPATH=ROOT, **(env or {})),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def nothing(shared, i):
    return i


def overhead(n=200, workers=2):
    """Seconds per task of a batch of no-op tasks on a running cluster, and the start-up."""
    cluster = batch.cluster_module()
    t0 = time.perf_counter()
    with cluster.connect(workers=workers) as client:
        started = time.perf_counter() - t0
        tasks = [batch.Task(str(i), nothing, (i,)) for i in range(n)]
        cluster.run_tasks(client, [(0, batch.Task("warm", nothing, (0,)))], None,
                          batch.engine_state(), lambda i, a: None)
        t1 = time.perf_counter()
        cluster.run_tasks(client, list(enumerate(tasks)), None, batch.engine_state(),
                          lambda i, a: None)
        per_task = (time.perf_counter() - t1) / n
    return started, per_task


def max_diff(a, b):
    worst = 0
    for f in sorted(glob.glob(os.path.join(a, "*.png"))):
        x = np.asarray(Image.open(f), dtype=int)
        y = np.asarray(Image.open(os.path.join(b, os.path.basename(f))), dtype=int)
        worst = max(worst, int(np.abs(x - y).max()))
    return worst


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    data = os.environ["NUMSTYLE_DATA"]
    photos = sorted(glob.glob(os.path.join(data, "datasets", "photos", "*.jpg")))[:24]
    style = os.path.join(data, "images", "style", "starry_night.jpg")
    tmp = tempfile.mkdtemp(prefix="scaling-")
    modes = {"in-process": [], "workers 1": ["--workers", "1"], "workers 2": ["--workers", "2"]}
    jobs = {
        "stylize": (lambda out: ["stylize", "--model", "starry_night", *photos, "--out", out,
                                 "--overwrite", "--no-progress"], len(photos)),
        "gatys": (lambda out: ["gatys", "--content", *photos[:4], "--style", style, "--size",
                               "128", "--iters", "20", "--model", "vgg16", "--out", out,
                               "--overwrite", "--no-progress"], 4),
    }
    result = {"cpus": os.cpu_count(), "rounds": args.rounds, "photos": len(photos)}
    for name, (argv, images) in jobs.items():
        times = {m: [] for m in modes}
        for _ in range(args.rounds):
            for mode, flags in modes.items():
                out = os.path.join(tmp, name, mode.replace(" ", ""))
                times[mode].append(command(argv(out) + flags))
        out1 = os.path.join(tmp, name, "threads1")
        command(argv(out1), env={"NUMSTYLE_THREADS": "1"})
        result[name] = {
            "images": images,
            "times_s": times,
            "median_s": {m: statistics.median(t) for m, t in times.items()},
            "images_per_s": {m: images / statistics.median(t) for m, t in times.items()},
            "max_grey_diff_vs_in_process": {
                m: max_diff(os.path.join(tmp, name, "in-process"),
                            os.path.join(tmp, name, m.replace(" ", ""))) for m in modes},
            "max_grey_diff_workers2_vs_in_process_threads1":
                max_diff(out1, os.path.join(tmp, name, "workers2")),
        }
        print(json.dumps({name: result[name]}), file=sys.stderr, flush=True)
    starts, per_task = zip(*[overhead() for _ in range(args.rounds)])
    result["cluster_start_s"] = statistics.median(starts)
    result["per_task_overhead_s"] = statistics.median(per_task)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
