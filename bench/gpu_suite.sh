#!/usr/bin/env bash
# Every GPU benchmark in one call of under 8 minutes, for whoever gets a GPU for a few minutes:
#
#     bash bench/gpu_suite.sh OUT_DIR            # on a CUDA machine
#     bash bench/gpu_suite.sh --smoke OUT_DIR    # anywhere: tiny sizes on the CPU (what the test suite runs)
#
# Each benchmark writes one JSON line to OUT_DIR/<name>.json (its last JSON output line), or, when it
# fails or runs past its time limit, {"bench": ..., "error": ..., "rc": ...}, so one slow benchmark never
# costs the others' numbers. Each loop is timed once after its warm-up (--repeats 1). Limits (seconds) add
# up to 460 s plus start-up:
#   purify_ebm        150  the EBM at the paper's size (SNGAN trunk, nf=128, T=150, 8,192 images), reference
#                          loop vs fast path (bf16, channels-last, compiled): >= 280 k image-steps/s on an H100
#   purify_ddpm       150  the paper's 32x32 UNet at t*=75 on 1,024 images: >= 365 images/s on an H100; both
#                          report the purification statistics of the two loops (same as fp32's)
#   purify_puregen    100  PureGen-Naive, -Reps, -Filt at the paper's settings, 256 images
#   trial_cost         60  one ResNet-18 training epoch, the papers' loop vs genlab's, 10,000 images
# genlab is imported from PYTHONPATH when it is there (e.g. a wheel installed with
# `pip install --no-deps --target /tmp/site` and PYTHONPATH=/tmp/site), else from this checkout.
set -uo pipefail

smoke=0
if [[ "${1:-}" == "--smoke" ]]; then smoke=1; shift; fi
out="${1:?usage: bash bench/gpu_suite.sh [--smoke] OUT_DIR}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-python}"
mkdir -p "$out"
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$repo/platform:$repo/bench"

# run NAME LIMIT_S ARGS...: run one benchmark under a time limit, keep its last JSON line in OUT/NAME.json
run() {
  local name="$1" limit="$2"; shift 2
  local log="$out/$name.log" started=$SECONDS
  echo "[gpu_suite] $name (limit ${limit}s): $*" >&2
  timeout --signal=TERM --kill-after=10 "$limit" "$python" "$@" >"$log" 2>&1
  local rc=$?
  local line
  line="$(grep '^{' "$log" | tail -n 1)"
  if [[ $rc -eq 0 && -n "$line" ]]; then
    printf '%s\n' "$line" >"$out/$name.json.tmp" && mv "$out/$name.json.tmp" "$out/$name.json"
  else
    local why="failed"; [[ $rc -eq 124 || $rc -eq 137 ]] && why="ran past ${limit}s"
    "$python" -c 'import json, sys; print(json.dumps({"bench": sys.argv[1], "error": sys.argv[2], "rc": int(sys.argv[3]), "log_tail": open(sys.argv[4], errors="replace").read()[-1500:]}))' \
      "$name" "$why" "$rc" "$log" >"$out/$name.json"
  fi
  echo "[gpu_suite] $name: rc $rc after $((SECONDS - started)) s" >&2
}

if [[ $smoke -eq 1 ]]; then
  run purify_ebm 150 "$repo/bench/purify_throughput.py" --device cpu --purifier ebm --images 16 --langevin-steps 2 \
      --repeats 1 --no-actor-pool
  run purify_ddpm 150 "$repo/bench/purify_throughput.py" --device cpu --purifier ddpm --images 16 --t-star 2 --repeats 1
  run purify_puregen 100 "$repo/bench/purify_throughput.py" --device cpu --purifier puregen-naive puregen-filt \
      --images 8 --langevin-steps 2 --t-star 2 --repeats 1
  run trial_cost 60 "$repo/bench/trial_cost.py" --device cpu --images 64
else
  run purify_ebm 150 "$repo/bench/purify_throughput.py" --device cuda --purifier ebm --repeats 1
  run purify_ddpm 150 "$repo/bench/purify_throughput.py" --device cuda --purifier ddpm --images 1024 --repeats 1
  run purify_puregen 100 "$repo/bench/purify_throughput.py" --device cuda --purifier puregen-naive puregen-reps \
      puregen-filt --images 256 --repeats 1
  run trial_cost 60 "$repo/bench/trial_cost.py" --device cuda --images 10000
fi
ls "$out"/*.json
