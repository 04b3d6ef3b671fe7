#!/usr/bin/env bash
# Every GPU measurement behind the issues' speed and memory targets, in one command per group.
#
#   bash benchmarks/gpu_suite.sh [smoke|cuda-tests|mmdit|ovi|ltx2|mtv|all] ...
#
# Each run's full output goes to $RESULTS/<name>.log (default bench-results/) and its JSON line
# to $RESULTS/results.jsonl, so the numbers of a session survive a run that dies half-way.
# Python packages the GPU machine lacks (diffusers, usually) can be put as wheels in $WHEELS
# (default .whl/); they are installed into a private folder first, nothing system-wide.
set -uo pipefail
cd "$(dirname "$0")/.."
results=${RESULTS:-bench-results}
per_run=${BENCH_TIMEOUT:-540}
mkdir -p "$results"
export PYTHONUNBUFFERED=1

wheels=${WHEELS:-.whl}
if compgen -G "$wheels/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/soundstage-site "$wheels"/*.whl \
    && export PYTHONPATH=/tmp/soundstage-site${PYTHONPATH:+:$PYTHONPATH}
fi

bench() {  # bench NAME SCRIPT ARGS...
  local name=$1; shift
  echo "== $name: $*"
  timeout "$per_run" python3 "benchmarks/$@" 2>&1 | tee "$results/$name.log"
  local rc=${PIPESTATUS[0]}
  local line
  line=$(grep '^{' "$results/$name.log" | tail -n 1)
  printf '{"run": "%s", "rc": %d, "result": %s}\n' "$name" "$rc" "${line:-null}" >> "$results/results.jsonl"
}

group() {
  case $1 in
    cuda-tests)
      nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$results/gpu.txt"
      timeout "$per_run" python3 -m pytest -q -p no:cacheprovider tests/test_offload.py tests/test_cuda_graph.py 2>&1 | tee "$results/cuda-tests.log" ;;
    mmdit)  # issue 5: <= 0.6 s for 8 s of audio at 1.55B (stretch 0.4 s); the large_44k_v2 time for reference
      bench mmdit-omni-graph bench_mmdit.py --preset audiogen_omni --device cuda --dtype bf16 --seconds 8 --steps 25 --cfg 4.5 --cuda-graph
      bench mmdit-omni-step-graph bench_mmdit.py --preset audiogen_omni --device cuda --dtype bf16 --seconds 8 --steps 25 --cfg 4.5 --step-graph
      bench mmdit-omni-eager bench_mmdit.py --preset audiogen_omni --device cuda --dtype bf16 --seconds 8 --steps 25 --cfg 4.5
      bench mmdit-large44k-v2 bench_mmdit.py --preset large_44k_v2 --device cuda --dtype bf16 --seconds 8 --steps 25 --cfg 4.5 --cuda-graph ;;
    ovi)  # issue 6: <= 0.45 s per forward at the engine shape; a mode peaking <= 22 GiB
      bench ovi-engine-bf16 bench_ovi.py --shape engine --device cuda --dtype bf16
      bench ovi-engine-fp8-swap bench_ovi.py --shape engine --device cuda --fp8 --block-swap 10 ;;
    ltx2)  # issue 7: <= 0.75 s per forward at the in-context shape; under 24 GB
      bench ltx2-real-cfg-batch bench_ltx2.py --preset real --device cuda --cfg-batch
      bench ltx2-real-fp8-swap bench_ltx2.py --preset real --device cuda --fp8 --block-swap 16 ;;
    mtv)  # issue 8: <= 60 s for 50 steps at 49x480x720; < 24 GB
      bench mtv-full bench_mtv.py --size full --device cuda
      bench mtv-full-fp8-fast bench_mtv.py --size full --device cuda --fp8 --fp8-matmul ;;
    smoke)  # the same scripts at tiny sizes on the CPU: proves this file works before GPU time is spent
      bench smoke-mmdit bench_mmdit.py --preset tiny --steps 2 --repeats 1 --warmup 0
      bench smoke-ovi bench_ovi.py --device cpu --repeat 1
      bench smoke-ltx2 bench_ltx2.py --preset tiny --device cpu --warmup 0 --iters 1
      bench smoke-mtv bench_mtv.py --size tiny --device cpu --steps 2 --fp8 ;;
    all) for g in cuda-tests mmdit ovi ltx2 mtv; do group "$g"; done ;;
    *) echo "unknown group '$1' (smoke, cuda-tests, mmdit, ovi, ltx2, mtv, all)" >&2; exit 2 ;;
  esac
}

for g in "${@:-all}"; do group "$g"; done
echo "results: $results/results.jsonl"
