"""The overlap pass (issue 11, item 2): wall time and device idle share, serial engine vs overlap.

The same plan at -O3 runs twice per configuration: with `--disable-pass overlap` (the serial
engine: each batch's forward, then its host work) and with it (two batches in flight: one
batch's host work - decoding candidates, the verifier, resampling - while the other runs its
forward; GIL-bound verifiers in a process pool). Runs alternate (A B B A ...), one torch
thread, the process pool warmed before timing. Every row checks that both gave the same tokens,
scores, weights, NLLs and counters, bit for bit.

Verifiers: `slow(ms=X)` (a benchmark-only verifier: X ms of GIL-holding Python per candidate,
then arith-heuristic's score), the real `arith-heuristic` and `confidence` (cheap; in place).

Device idle share: the share of wall time in which no model call (`forward`, `forward_answer`,
`encode_prompt`) was running, timed around the model (CUDA events on a GPU). On a CPU the
"device" is the same cores the host uses; the overlap's forwards may also wait for the GIL,
which shows as a longer forward time in its column.

    python benchmarks/overlap_bench.py --out benchmarks/results          # ~4 min on 1 core
    python benchmarks/overlap_bench.py --quick
    python benchmarks/overlap_bench.py --device cuda --model 8b --problems 2 --batch-size 1
        # an 8B-shaped random bf16 model built on the GPU (benchmarks/gpu.sh runs this)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from s3dsl.catalog import builtin_strategies
from s3dsl.compiler.build import build
from s3dsl.compiler.passes import plan
from s3dsl.dsl.loader import parse_strategy
from s3dsl.runtime import host_pool, overlap
from s3dsl.session import execute
from s3dsl.tasks.registry import get_task
from s3dsl.verifiers import slow

sys.path.insert(0, str(Path(__file__).parent))
from timed_model import TimedModel  # noqa: E402

STRATEGIES = {"s3": {"particles": "4", "candidates": "4"}, "best_of_k": {"k": "8"}}
# (plan, verifier processes): the serial engine; two batches in flight with one verifier
# process (only host/device overlap); with two (also the two batches' verifiers side by side)
MODES = {"serial": (("overlap",), None), "overlap-1proc": ((), 1), "overlap-2proc": ((), 2)}


def program_for(strategy: str, verifier: str, gen: int):
    text = builtin_strategies()[strategy].read_text().replace("v: task-default", f"v: {verifier}")
    sets = {**STRATEGIES[strategy], "gen_length": str(gen)}
    return build(parse_strategy(text, f"{strategy}.yaml"), sets, gen, "arith-heuristic")


def run_once(the_plan, model: TimedModel, problems, batch_size: int, workers: int | None = None):
    task = get_task("arith")
    overlap.POOL_WORKERS = workers
    sync = torch.cuda.synchronize if model.device.type == "cuda" else (lambda: None)
    model.take_busy()
    sync()
    t0 = time.perf_counter()
    results, counters = execute(the_plan, model, problems, task.extract_answer, task.is_correct,
                                0, batch_size)
    sync()
    wall = time.perf_counter() - t0
    seen = [[(p.tokens, p.score, p.nll, p.logw) for p in r.particles] for r in results]
    return wall, model.take_busy(), (seen, [r.nfe for r in results], counters)


def bench_model(name: str, device: str):
    if name == "arith":
        from s3dsl.models.registry import load_model

        return load_model("arith", device=device), "arith (0.88M)"
    sys.path.insert(0, str(Path(__file__).parent))
    from compiler_bench import GPU_8B, build_on_device

    model = build_on_device(GPU_8B, device, torch.bfloat16)
    return model, f"{GPU_8B.name} ({model.num_parameters() / 1e9:.2f}B, random bf16)"


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problems", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--gen", type=int, default=48)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="s3 only, 1 repeat, 4 problems")
    ap.add_argument("--verifiers", default="slow(ms=2, mode=sleep);slow(ms=0.5, mode=sleep);"
                    "slow(ms=0.5);"
                    "slow(ms=0.1);arith-heuristic;confidence", help="';'-separated")
    ap.add_argument("--strategies", default="s3,best_of_k")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--model", choices=("arith", "8b"), default="arith")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    slow.register()
    raw, model_label = bench_model(args.model, args.device)
    model = TimedModel(raw, blocking=False)  # CUDA events: the host may run ahead
    n_problems, repeats = (4, 1) if args.quick else (args.problems, args.repeats)
    batch_size = 2 if args.quick else args.batch_size
    strategies = ["s3"] if args.quick else args.strategies.split(",")
    verifiers = [v.strip() for v in args.verifiers.split(";") if v.strip()]
    problems = get_task("arith").problems("test", n_problems)
    rows = []
    with torch.inference_mode():
        for workers in (1, 2):  # spawn the verifier pools before any timing
            host_pool.pool(workers).submit(int).result()
        warm = plan(program_for("s3", "confidence", args.gen), 3)
        run_once(warm, model, problems[:1], 1)  # warm the kernels
        for strategy in strategies:
            for verifier in verifiers:
                program = program_for(strategy, verifier, args.gen)
                plans = {m: plan(program, 3, off) for m, (off, _) in MODES.items()}
                walls: dict[str, list[float]] = {m: [] for m in MODES}
                busy: dict[str, list[float]] = {m: [] for m in MODES}
                outs = {}
                for rep in range(repeats):
                    order = list(MODES) if rep % 2 == 0 else list(MODES)[::-1]
                    for mode in order:
                        wall, b, out = run_once(plans[mode], model, problems, batch_size,
                                                MODES[mode][1])
                        walls[mode].append(wall)
                        busy[mode].append(b)
                        outs.setdefault(mode, out)
                wall = {m: statistics.median(walls[m]) for m in MODES}
                fwd = {m: statistics.median(busy[m]) for m in MODES}
                row = {"strategy": strategy, "params": STRATEGIES[strategy], "verifier": verifier,
                       "model": model_label, "wall_s": wall, "forward_s": fwd,
                       "speedup": {m: wall["serial"] / wall[m] for m in MODES},
                       "idle": {m: max(0.0, 1 - fwd[m] / wall[m]) for m in MODES},
                       "identical": all(outs[m] == outs["serial"] for m in MODES),
                       "walls": walls}
                rows.append(row)
                print(f"{strategy:9s} {verifier:16s} " + "  ".join(
                    f"{m} {wall[m]:6.2f}s x{row['speedup'][m]:.2f} idle {row['idle'][m]:.0%}"
                    for m in MODES) + f"  identical {row['identical']}", flush=True)
    where = (torch.cuda.get_device_name() if model.device.type == "cuda"
             else f"{platform.machine()} CPU")
    load = "/".join(f"{x:.1f}" for x in os.getloadavg())
    header = (f"model {model_label}, {n_problems} arith test problems, --batch-size "
              f"{batch_size} (so {-(-n_problems // batch_size)} batches), gen_length "
              f"{args.gen}, -O3 with and without the overlap pass, {repeats} interleaved "
              f"repeat(s) (median), 1 torch thread, {where} ({os.cpu_count()} cores, load average "
              f"{load} at the end), torch {torch.__version__}")
    print(header)
    if args.out is not None:
        write(args.out, header, rows)
    return rows


def write(out: Path, header: str, rows: list[dict]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "overlap_bench.json").write_text(json.dumps({"setup": header, "rows": rows}, indent=2))
    lines = [f"# Overlap pass: serial engine vs two batches in flight\n\n{header}\n",
             "Wall s (speedup over serial) and device idle share = 1 - (time in model calls) / "
             "wall. `1 proc`: one verifier process, so only host work overlaps forwards; "
             "`2 proc`: one per batch in flight (their verifiers also run side by side).\n",
             "| strategy | verifier | model | serial | overlap, 1 proc | overlap, 2 proc | idle "
             "serial | idle 1 proc | idle 2 proc | forward s serial / 1 / 2 | identical |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        params = " ".join(f"{k}={v}" for k, v in r["params"].items())
        w, x, idle, f = r["wall_s"], r["speedup"], r["idle"], r["forward_s"]
        cells = [f"{w['serial']:.2f}"] + [f"{w[m]:.2f} ({x[m]:.2f}x)"
                                           for m in ("overlap-1proc", "overlap-2proc")]
        lines.append(f"| {r['strategy']} {params} | {r['verifier']} | {r['model']} | "
                     + " | ".join(cells) + " | "
                     + " | ".join(f"{idle[m]:.0%}" for m in MODES) + " | "
                     + " / ".join(f"{f[m]:.2f}" for m in MODES) + " | "
                     + ("yes" if r["identical"] else "NO") + " |")
    (out / "overlap_bench.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
