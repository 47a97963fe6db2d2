#!/usr/bin/env bash
# The GPU benchmark: one prepared script that fits one lent device session (under 8 minutes:
# the timeouts below add up to 470 s, and a step that runs out says so and the next one runs).
#
# On a CUDA machine it builds an 8B-shaped LLaDA-layout model with random bf16 weights on the
# GPU (nothing is downloaded) and measures, side by side in one run:
#   - compiler_bench.py's GPU rows: S3 (8 particles x 4 candidates) and single, tokens/s,
#     forwards/s, MFU, share of wall time outside forwards, compiled static steps;
#   - handwritten_bench.py: s3dsl against hand-written batched PyTorch of the same algorithm on
#     the same model (best-of-K and S3 at 1 and 8 particles), wall, MFU, peak memory;
#   - overlap_bench.py: the overlap pass (two batches in flight) against the serial engine, wall
#     and device idle share of S3 with a slow host verifier and with arith-heuristic, on the
#     8B-shaped model; then the same on the CPU with the arith model (the device machine's idle
#     cores give the CPU figures the shared development machine cannot);
#   - captured_bench.py: an S3 step (8 x 4, confidence verifier) on the eager engine, as one
#     captured sync-free step, and that step compiled (inductor + CUDA graphs); first without
#     compiling (fast), then all three under a timeout, as compiling an 8B graph takes minutes.
# Without CUDA it runs the same code at a tiny shape on the CPU and says so: those figures are
# not GPU figures.
#
#   bash benchmarks/gpu.sh                 # writes benchmarks/results/gpu/
#   bash benchmarks/gpu.sh --rehearse      # the GPU branch's commands on this CPU, at a tiny shape
#
# --rehearse runs every command of the GPU branch (same flags, --device cpu, the 8B layout at a
# tiny shape) and exits 1 if any fails, so a broken command is found here, not in a device
# session's minutes. Its figures mean nothing; they go to benchmarks/results/gpu_rehearsal/.
#
# The device machine has torch but no network and no lark: carry a wheel of lark in .gpu-wheels/
# (ignored by git). On a lent device, from this machine's repository root:
#   python3 -m pip download --no-deps lark -d .gpu-wheels     # once, here (a pure-Python wheel)
#   bash benchmarks/gpu.sh --rehearse                          # here, ~2 minutes
#   then the device tool's `run` with carry [".gpu-wheels"] and the command
#   OUT_DIR=$OUT/gpu bash benchmarks/gpu.sh                    # the figures come back in $OUT/gpu
set -euo pipefail
cd "$(dirname "$0")/.."
rehearse=0
if [ "${1:-}" = "--rehearse" ]; then rehearse=1; fi
if [ $rehearse = 1 ]; then
  out=${OUT_DIR:-benchmarks/results/gpu_rehearsal}
  export S3DSL_BENCH_8B_SHAPE=tiny  # compiler_bench.GPU_8B at a tiny shape
else
  out=${OUT_DIR:-benchmarks/results/gpu}
fi
mkdir -p "$out"
rm -f "$out"/*.log
py=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1  # a step killed at its timeout still leaves what it printed
if ! "$py" -c "import lark" 2>/dev/null && [ -d .gpu-wheels ]; then
  "$py" -m pip install -q --no-index --find-links .gpu-wheels --target /tmp/s3dsl-deps lark
  export PYTHONPATH="$PYTHONPATH:/tmp/s3dsl-deps"
fi
"$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

failed=()
# step NAME SECONDS LOG COMMAND...: run under a timeout, output to the screen and to LOG; a step
# that fails or runs out says so and the next one runs
step() {
  local name=$1 limit=$2 log=$3
  shift 3
  if ! timeout "$limit" "$@" 2>&1 | tee -a "$log"; then
    echo "$name: failed or timed out in $limit s" | tee -a "$log"
    failed+=("$name")
  fi
}

if [ $rehearse = 1 ] || "$py" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  dev=cuda
  compiled=()  # inductor + CUDA graphs; the rehearsal captures with the eager backend (an
  # inductor build of the step on a CPU takes minutes)
  if [ $rehearse = 1 ]; then
    dev=cpu
    compiled=(--backend eager)
    echo "REHEARSAL: the GPU branch on the CPU at a tiny shape; NOT GPU figures" | tee "$out/NOT_GPU"
  else
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  fi
  step compiler_bench 130 "$out/compiler_bench.log" \
    "$py" benchmarks/compiler_bench.py --device $dev --quick --out "$out"
  step handwritten_bench 100 "$out/handwritten.log" \
    "$py" benchmarks/handwritten_bench.py --device $dev --model 8b --problems 1 \
    --particles 1,8 --gens 64 --repeats 1 --out "$out"
  step "overlap_bench (GPU)" 60 "$out/overlap.log" \
    "$py" benchmarks/overlap_bench.py --device $dev --model 8b --problems 2 \
    --batch-size 1 --gen 32 --repeats 1 --strategies s3 \
    --verifiers "slow(ms=0.5);arith-heuristic" --out "$out"
  step "overlap_bench (CPU)" 40 "$out/overlap_cpu.log" \
    "$py" benchmarks/overlap_bench.py --strategies s3 --repeats 2 \
    --verifiers "slow(ms=0.5);slow(ms=0.5, mode=sleep);arith-heuristic" --out "$out/cpu"
  captured=(benchmarks/captured_bench.py --device $dev --model 8b --problems 1 --particles 8
            --candidates 4 --gen 32 --steps 8 --repeats 3)
  step "captured_bench (eager, static)" 50 "$out/captured.log" \
    "$py" "${captured[@]}" --sides eager,static --out "$out/captured_eager"
  step "captured_bench (compiled)" 90 "$out/captured.log" \
    "$py" "${captured[@]}" "${compiled[@]}" --out "$out"
else
  echo "NO CUDA DEVICE: tiny shapes on the CPU; these are NOT GPU figures" | tee "$out/NOT_GPU"
  step handwritten_bench 300 "$out/handwritten.log" \
    "$py" benchmarks/handwritten_bench.py --quick --out "$out"
  step overlap_bench 200 "$out/overlap.log" "$py" benchmarks/overlap_bench.py --quick --out "$out"
  step captured_bench 300 "$out/captured.log" \
    "$py" benchmarks/captured_bench.py --backend eager --repeats 3 --out "$out"
fi
if [ ${#failed[@]} -gt 0 ]; then
  echo "steps that failed or ran out: ${failed[*]}"
  if [ $rehearse = 1 ]; then exit 1; fi
fi
