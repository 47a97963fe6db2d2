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
#
# The device machine has torch but no network and no lark: carry a wheel of lark in .gpu-wheels/
# (`pip download lark -d .gpu-wheels --no-deps` here, then `carry: [".gpu-wheels"]`).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT_DIR:-benchmarks/results/gpu}
mkdir -p "$out"
py=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if ! "$py" -c "import lark" 2>/dev/null && [ -d .gpu-wheels ]; then
  "$py" -m pip install -q --no-index --find-links .gpu-wheels --target /tmp/s3dsl-deps lark
  export PYTHONPATH="$PYTHONPATH:/tmp/s3dsl-deps"
fi
"$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

if "$py" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  timeout 130 "$py" benchmarks/compiler_bench.py --device cuda --quick --out "$out" \
    | tee "$out/compiler_bench.log" || echo "compiler_bench: failed or timed out in 130 s"
  timeout 100 "$py" benchmarks/handwritten_bench.py --device cuda --model 8b --problems 1 \
    --particles 1,8 --gens 64 --repeats 1 --out "$out" | tee "$out/handwritten.log" \
    || echo "handwritten_bench: failed or timed out in 100 s"
  timeout 60 "$py" benchmarks/overlap_bench.py --device cuda --model 8b --problems 2 \
    --batch-size 1 --gen 32 --repeats 1 --strategies s3 \
    --verifiers "slow(ms=0.5);arith-heuristic" --out "$out" | tee "$out/overlap.log" \
    || echo "overlap_bench (GPU): failed or timed out"
  timeout 40 "$py" benchmarks/overlap_bench.py --strategies s3 --repeats 2 \
    --verifiers "slow(ms=0.5);slow(ms=0.5, mode=sleep);arith-heuristic" --out "$out/cpu" \
    | tee "$out/overlap_cpu.log" || echo "overlap_bench (CPU): failed or timed out in 40 s"
  captured=(benchmarks/captured_bench.py --device cuda --model 8b --problems 1 --particles 8
            --candidates 4 --gen 32 --steps 8 --repeats 3)
  timeout 50 "$py" "${captured[@]}" --sides eager,static --out "$out/captured_eager" \
    | tee "$out/captured.log" \
    || echo "captured_bench (eager, static): timed out" | tee -a "$out/captured.log"
  timeout 90 "$py" "${captured[@]}" --out "$out" | tee -a "$out/captured.log" \
    || echo "captured_bench (compiled): timed out in 90 s" | tee -a "$out/captured.log"
else
  echo "NO CUDA DEVICE: tiny shapes on the CPU; these are NOT GPU figures" | tee "$out/NOT_GPU"
  timeout 300 "$py" benchmarks/handwritten_bench.py --quick --out "$out" \
    | tee "$out/handwritten.log"
  timeout 200 "$py" benchmarks/overlap_bench.py --quick --out "$out" | tee "$out/overlap.log"
  timeout 300 "$py" benchmarks/captured_bench.py --backend eager --repeats 3 --out "$out" \
    | tee "$out/captured.log" || echo "captured_bench: timed out" | tee -a "$out/captured.log"
fi
