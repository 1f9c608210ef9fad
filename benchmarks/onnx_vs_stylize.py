"""onnxruntime against ``numstyle stylize``: one photo, one shipped network, alternating rounds.

Two measures, each the median of ``--rounds`` alternating rounds in one sitting:

- *forward*: one forward pass in this process -- ``stylize.stylize_array`` on numstyle's fast
  engine (bands on every core, as the command runs it) against ``InferenceSession.run`` on the
  exported graph (onnxruntime's default threads); the photo already in memory;
- *command*: a whole process, from start to written PNG -- ``numstyle stylize`` against the
  five lines of docs/export.md (Python, NumPy, Pillow and onnxruntime imported each time).

    python benchmarks/onnx_vs_stylize.py --model starry_night --size 427 --rounds 5

Needs the ``export`` and ``test`` extras (onnx, onnxruntime). Prints one JSON object.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnxruntime as ort

from numstyle import models, onnx_export, stylize
from numstyle.data import sample_image
from numstyle.fast.parallel import bands_take_the_cores
from numstyle.image import load_image, save_image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SNIPPET = """import numpy as np, onnxruntime as ort
from PIL import Image
x = np.asarray(Image.open("photo.png").convert("RGB"), np.float32).transpose(2, 0, 1)[None]
y = ort.InferenceSession("net.onnx").run(None, {"input": x})[0][0]
Image.fromarray(y.transpose(1, 2, 0).round().astype(np.uint8)).save("stylized.png")
"""


def seconds(run):
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="starry_night")
    parser.add_argument("--photo", default="tubingen.jpg")
    parser.add_argument("--size", type=int, default=427, help="longer side of the photo, px")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    bands_take_the_cores()
    params, config, state = models.load_model(args.model, expect="style")
    rgb = np.rint(load_image(args.photo if os.path.isfile(args.photo) else sample_image(args.photo),
                             args.size))
    folder = tempfile.mkdtemp(prefix="numstyle-onnx-bench-")
    save_image(os.path.join(folder, "photo.png"), rgb.astype(np.uint8))
    onnx_export.save_onnx(os.path.join(folder, "net.onnx"),
                          onnx_export.to_onnx(params, config, state))
    session = ort.InferenceSession(os.path.join(folder, "net.onnx"),
                                   providers=["CPUExecutionProvider"])
    x = rgb.transpose(2, 0, 1)[None].astype(np.float32)
    ours = lambda: stylize.stylize_array(params, config, state, rgb)          # noqa: E731
    theirs = lambda: session.run(None, {"input": x})                          # noqa: E731
    env = dict(os.environ, PYTHONPATH=ROOT)
    command = [sys.executable, "-m", "numstyle", "stylize", "--model", args.model, "photo.png",
               "--out", "ours.png", "--no-progress"]
    run_command = lambda: subprocess.run(command, cwd=folder, env=env, check=True,  # noqa: E731
                                         capture_output=True)
    run_snippet = lambda: subprocess.run([sys.executable, "-c", SNIPPET], cwd=folder,  # noqa
                                         check=True, capture_output=True)
    ours(), theirs()                                                          # warm
    times = {"numstyle_forward": [], "onnxruntime_forward": [], "numstyle_command": [],
             "onnxruntime_snippet": []}
    for _ in range(args.rounds):
        times["numstyle_forward"].append(seconds(ours))
        times["onnxruntime_forward"].append(seconds(theirs))
        times["numstyle_command"].append(seconds(run_command))
        times["onnxruntime_snippet"].append(seconds(run_snippet))
    shutil.rmtree(folder)
    median = {k: statistics.median(v) for k, v in times.items()}
    a = np.asarray(stylize.stylize_array(params, config, state, rgb))
    b = session.run(None, {"input": x})[0][0].transpose(1, 2, 0)
    print(json.dumps({
        "model": args.model, "photo": f"{rgb.shape[1]}x{rgb.shape[0]}", "rounds": args.rounds,
        "median_s": {k: round(v, 4) for k, v in median.items()},
        "forward_ratio_numstyle_over_ort": round(median["numstyle_forward"]
                                                 / median["onnxruntime_forward"], 2),
        "command_ratio_numstyle_over_ort": round(median["numstyle_command"]
                                                 / median["onnxruntime_snippet"], 2),
        "max_abs_diff": float(np.abs(np.clip(a, 0, 255) - b).max()),
        "all_s": {k: [round(t, 4) for t in v] for k, v in times.items()}}))


if __name__ == "__main__":
    main()
