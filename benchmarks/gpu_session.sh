#!/usr/bin/env bash
# Everything numstyle owes a GPU, in one place: run it from the repository root on a machine
# with CuPy and a CUDA GPU (the lent H100/H200: no internet, so from source, PYTHONPATH=.).
#
#   bash benchmarks/gpu_session.sh tests     # the real-GPU tests (pytest -m gpu), ~1 min
#   bash benchmarks/gpu_session.sh bench     # numstyle vs PyTorch on the same GPU, ~5 min
#   bash benchmarks/gpu_session.sh gatys500  # Gatys end to end: VGG19 shapes, 512 px,
#                                            # 500 L-BFGS iterations
#   bash benchmarks/gpu_session.sh ab        # A/B at 512 px: without the fused kernels, im2col
#                                            # for Winograd, with TF32 (and PyTorch with TF32),
#                                            # ~3 min
#   bash benchmarks/gpu_session.sh all
#
# Results go to $OUT (default ./out/gpu): pytest's summary, one JSON object per bench line in
# bench.jsonl (ab.jsonl for the A/B: compare median_s, and loss / output_mean_abs for TF32's
# effect, with the same lines of bench.jsonl), gatys500.json. Weights: random of the real shapes
# (timing does not depend on values).
set -uo pipefail
OUT=${OUT:-out/gpu}
mkdir -p "$OUT"
export PYTHONPATH=${PYTHONPATH:-.}
what=${1:-all}

python - <<'PY' | tee "$OUT/device.txt"
import cupy
p = cupy.cuda.runtime.getDeviceProperties(0)
print(p["name"].decode(), f"{p['totalGlobalMem'] / 2**30:.0f} GiB", "CuPy", cupy.__version__)
PY

if [[ $what == tests || $what == all ]]; then
    python -m pytest -q -m gpu tests/test_gpu.py tests/test_gpu_kernels.py \
        tests/test_cupy_api.py 2>&1 | tail -20 | tee "$OUT/pytest_gpu.txt"
    NUMSTYLE_FUSED=0 python -m pytest -q -m gpu tests/test_gpu.py 2>&1 | tail -5 \
        | tee -a "$OUT/pytest_gpu.txt"
fi

if [[ $what == bench || $what == all ]]; then
    for size in 256 512 1024; do
        python -m numstyle bench gatys --model vgg19 --size $size --device gpu --runs 10 \
            --compare-torch --json
    done | tee -a "$OUT/bench.jsonl"
    for size in 256 512 1024; do
        python -m numstyle bench stylize --size $size --device gpu --runs 20 --compare-torch --json
    done | tee -a "$OUT/bench.jsonl"
    # PyTorch's own example network (resize-convolutions)
    python -m numstyle bench stylize --size 512 --upsample nearest --device gpu --runs 20 \
        --compare-torch --json | tee -a "$OUT/bench.jsonl"
    python -m numstyle bench train --size 256 --batch-size 4 --device gpu --runs 10 \
        --compare-torch --json | tee -a "$OUT/bench.jsonl"
fi

if [[ $what == ab || $what == all ]]; then
    for setting in NUMSTYLE_FUSED=0 NUMSTYLE_WINOGRAD=0 CUPY_TF32=1; do
        torch=""           # with TF32 ours, PyTorch's reference runs with TF32 too (--tf32 on)
        [[ $setting == CUPY_TF32=1 ]] && torch=--compare-torch
        env $setting python -m numstyle bench gatys --model vgg19 --size 512 --device gpu \
            --runs 10 $torch --json
        env $setting python -m numstyle bench stylize --size 512 --device gpu --runs 20 \
            $torch --json
    done | tee -a "$OUT/ab.jsonl"
fi

if [[ $what == gatys500 || $what == all ]]; then
    # the 80 MB weights file and the inputs stay out of $OUT (it travels back)
    scratch=$(mktemp -d)
    python - "$OUT" "$scratch" <<'PY'
import json, sys, time, numpy as np
from PIL import Image
from numstyle import vgg, weights
from numstyle.cli import main
out, tmp = sys.argv[1], sys.argv[2]
weights.save_keras_notop(f"{tmp}/vgg19_random.h5", vgg.random_params("vgg19", seed=0), "vgg19")
rng = np.random.default_rng(0)
for name in ("content", "style"):
    Image.fromarray(rng.integers(0, 256, (512, 512, 3), dtype=np.uint8)).save(f"{tmp}/{name}.png")
args = ["gatys", "--content", f"{tmp}/content.png", "--style", f"{tmp}/style.png",
        "--model", "vgg19", "--weights", f"{tmp}/vgg19_random.h5", "--size", "512",
        "--iters", "500", "--device", "gpu", "--no-progress", "--out", f"{out}/gatys500.png"]
t = time.perf_counter()
code = main(args)
seconds = time.perf_counter() - t
print(json.dumps({"bench": "gatys end to end", "size": 512, "iters": 500, "model": "vgg19",
                  "seconds": seconds, "exit": code}))
json.dump({"seconds": seconds, "exit": code, "argv": args}, open(f"{out}/gatys500.json", "w"))
PY
    rm -rf "$scratch"
fi
