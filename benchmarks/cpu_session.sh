#!/usr/bin/env bash
# Issue 26's figures on whatever CPU this session has, in one command: numstyle against PyTorch
# in the same run (`--compare-torch --rounds`: alternating, the ratio is the median of the
# per-round ratios), each row with the compiled path (NUMSTYLE_COMPILED=1) and without it (0),
# alternating, for SITTINGS sittings. Run it from the repository root with nothing else running,
# in a venv with numstyle[fast] and PyTorch (`pip install torch==2.13.0` on the developers'
# machines: a CPU build on disk).
#
#   bash benchmarks/cpu_session.sh [SITTINGS]      # default 2; ~12 min per sitting on 2 cores
#   bash benchmarks/cpu_session.sh table           # only print the table of $OUT/cpu.jsonl
#
# Results: $OUT (default out/cpu): machine.txt (the CPU, the OpenBLAS kernel threadpoolctl
# reports, the environment), cpu.jsonl (one `numstyle bench --json` object per line, with the
# setting that ran it), then the markdown table of docs/benchmarks.md on stdout. Where the machine
# pins OpenBLAS's kernel (OPENBLAS_CORETYPE), each row also runs with it and OPENBLAS_L2_SIZE
# unset, in that command only (the issue asks for both).
set -uo pipefail
OUT=${OUT:-out/cpu}
mkdir -p "$OUT"
PY=${PYTHON:-python}
what=${1:-2}

table() {
    "$PY" - "$OUT/cpu.jsonl" <<'PY'
import json, statistics, sys
from collections import defaultdict

rows = defaultdict(list)
for line in open(sys.argv[1]):
    r = json.loads(line)
    rows[(r["command"], r["setting"])].append(r)
print("| command | setting | ours / PyTorch (median s), ratio, per sitting | ratio, median "
      "| peak RSS ours / PyTorch MB |")
print("|---|---|---|---|---|")
for (command, setting), runs in rows.items():
    each = "; ".join(f"{r['median_s']:.3f} / {r['torch']['median_s']:.3f}, "
                     f"{r['ratio_vs_torch']:.2f}" for r in runs)
    ratio = statistics.median(r["ratio_vs_torch"] for r in runs)
    rss = f"{max(r['peak_rss_mb'] for r in runs):.0f} / " \
          f"{max(r['torch']['peak_rss_mb'] for r in runs):.0f}"
    print(f"| `{command}` | {setting} | {each} | **{ratio:.2f}** | {rss} |")
PY
}
if [[ $what == table ]]; then
    table
    exit
fi

{
    date -u +"%Y-%m-%d %H:%M UTC"
    lscpu | grep -E "^(Model name|Vendor ID|CPU family|Model|CPU\(s\)|L2 cache|L3 cache|Hypervisor)"
    if grep -q -w avx512f /proc/cpuinfo; then echo "AVX-512"; else echo "no AVX-512"; fi
    env | grep -E "^(OPENBLAS|OMP|NUMSTYLE|MKL)_" || echo "no OPENBLAS_/OMP_/NUMSTYLE_ variables"
    "$PY" - <<'PY'
import numpy, threadpoolctl
for p in threadpoolctl.threadpool_info():
    print(p["internal_api"], p.get("version"), "kernel", p.get("architecture"),
          "threads", p["num_threads"])
print("numpy", numpy.__version__)
for name in ("torch", "numba"):
    try:
        print(name, __import__(name).__version__)
    except ImportError:
        print(name, "not installed")
PY
} | tee "$OUT/machine.txt"

commands=(
    "gatys --size 256 --rounds 5"
    "gatys --size 512 --rounds 3"
    "stylize --size 512 --rounds 5"
    "train --size 256 --batch-size 4 --rounds 3"
)
settings=("NUMSTYLE_COMPILED=0" "NUMSTYLE_COMPILED=1")
if [[ -n ${OPENBLAS_CORETYPE:-} ]]; then
    settings+=("-u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE NUMSTYLE_COMPILED=1")
fi
for ((sitting = 1; sitting <= what; sitting++)); do
    for command in "${commands[@]}"; do
        order=("${settings[@]}")
        if ((sitting % 2 == 0)); then       # every other sitting the other way round: drift cancels
            order=()
            for ((i = ${#settings[@]} - 1; i >= 0; i--)); do order+=("${settings[i]}"); done
        fi
        for setting in "${order[@]}"; do
            # shellcheck disable=SC2086  # the setting is words for env
            env $setting "$PY" -m numstyle bench $command --compare-torch --json --no-progress \
                | "$PY" -c "import json, sys
r = json.loads(sys.stdin.read().strip().splitlines()[-1])
r.update(command='bench ' + sys.argv[1], setting=sys.argv[2], sitting=int(sys.argv[3]))
print(json.dumps(r))" "${command% --rounds*}" "$setting" "$sitting" | tee -a "$OUT/cpu.jsonl" \
                | cut -c1-120
        done
    done
done
table
