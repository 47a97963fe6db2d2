"""Captured S3 steps: the eager engine vs the static (captured, sync-free) step vs that step
under torch.compile, on one S3 run with the `confidence` verifier (issue 11, item 3).

Three plans of the same program on the same model and problems, interleaved (A B C, C B A, ...)
with one torch thread, so a busy core hurts every side alike:
  - eager:    opt 2, the data-dependent executor (dedup, forward cache, host verifier calls);
  - static:   opt 3, the whole step as one fixed-shape function (`captured-step`), run eagerly;
  - compiled: opt 3 + compile-steps, that function under torch.compile(fullgraph=True)
              (CUDA graphs on a GPU; on a CPU the `--backend`, inductor by default).
The first compiled run traces and compiles every step shape (block x first / middle / last
step); it is timed apart and excluded. Tokens of every side are checked against the eager ones.

    python benchmarks/captured_bench.py --out benchmarks/results        # CPU, tiny shape
    python benchmarks/captured_bench.py --device cuda --model 8b --gen 64 --out DIR
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from s3dsl.catalog import builtin_strategies
from s3dsl.compiler.passes import plan
from s3dsl.runtime import captured
from s3dsl.runtime.executor import BatchedExecutor
from s3dsl.session import compile_file
from s3dsl.tasks.registry import get_task

SIDES = ("eager", "static", "compiled")


def bench_model(name: str, device: str):
    if name == "tiny-random":
        from s3dsl.models.registry import load_model

        return load_model("tiny-random", device=device), "tiny-random (untrained)"
    sys.path.insert(0, str(Path(__file__).parent))
    from handwritten_bench import bench_model as load

    return load(name, device)


def executor_for(side: str, program, model, task, backend: str | None):
    the_plan = plan(program, 2 if side == "eager" else 3,
                    enable=("compile-steps",) if side == "compiled" else ())
    ex = BatchedExecutor(program, model, task.extract_answer, 0, the_plan.flags,
                         lowered=the_plan.lowered)
    if side == "compiled" and backend != "inductor" and model.device.type != "cuda":
        # the plan compiles with inductor (CUDA graphs on a GPU); another backend on request
        ex.captured.step_fn = torch.compile(captured.run_step, fullgraph=True, dynamic=False,
                                            backend=backend)
    return ex


def timed_run(ex, problems, device) -> tuple[float, list]:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    with torch.inference_mode():
        results = ex.run(problems, batch_size=len(problems))
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, results


def tokens(results) -> list:
    return [[p.tokens for p in r.particles] for r in results]


def agreement(results, base) -> float:
    """Share of generated positions, over every particle, holding the same token as `base`."""
    pairs = [(a, b) for r, o in zip(results, base) for p, q in zip(r.particles, o.particles)
             for a, b in zip(p.tokens, q.tokens)]
    return sum(a == b for a, b in pairs) / max(1, len(pairs))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=("arith", "tiny-random", "8b"),
                    default="arith")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--problems", type=int, default=4)
    ap.add_argument("--gen", type=int, default=16)
    ap.add_argument("--blocks", type=int, default=1, help="blocks of the answer (graphs grow)")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--particles", type=int, default=4)
    ap.add_argument("--candidates", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--backend", default="inductor", help="torch.compile backend on a CPU")
    ap.add_argument("--sides", default=",".join(SIDES), help="e.g. eager,static (no compile)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--append", action="store_true", help="add to the results, not replace")
    args = ap.parse_args(argv)
    sides = tuple(s for s in SIDES if s in args.sides.split(","))
    torch.set_num_threads(1)
    model, model_label = bench_model(args.model, args.device)
    task = get_task("arith")
    problems = task.problems("test", args.problems)
    sets = {"particles": str(args.particles), "candidates": str(args.candidates),
            "block_length": str(args.gen // args.blocks), "steps": str(args.steps)}
    program = compile_file(builtin_strategies()["s3"], sets, args.gen, "confidence")
    what = (f"S3 ({args.particles} particles x {args.candidates} candidates, ssp), verifier "
            f"confidence, model {model_label}, {args.problems} problems, gen {args.gen}, "
            f"{args.blocks} block(s), {args.steps} steps, {model.device}, 1 thread")
    print(what, flush=True)
    executors = {s: executor_for(s, program, model, task, args.backend) for s in sides}
    compile_s = None
    for side in sides:  # warm-up; the compiled side traces and compiles every step shape here
        wall, _ = timed_run(executors[side], problems, model.device)
        if side == "compiled":
            compile_s = wall
            print(f"compiled: first run (tracing + compiling) {compile_s:.1f} s", flush=True)
    rows_before = {s: executors[s].counters.forward_rows for s in sides}
    walls: dict[str, list[float]] = {s: [] for s in sides}
    outs: dict[str, list] = {}
    for rep in range(args.repeats):
        for side in sides if rep % 2 == 0 else sides[::-1]:
            wall, results = timed_run(executors[side], problems, model.device)
            walls[side].append(wall)
            outs[side] = results
    median = {s: statistics.median(w) for s, w in walls.items()}
    fwd_rows = {s: (executors[s].counters.forward_rows - rows_before[s]) // args.repeats
                for s in sides}
    base = "eager" if "eager" in sides else sides[0]
    same = {s: tokens(outs[s]) == tokens(outs[base]) for s in sides}
    agree = {s: agreement(outs[s], outs[base]) for s in sides}
    steps_total = args.steps
    rows = [{"side": s, "median_s": median[s], "steps_per_s": steps_total / median[s],
             "vs_eager": median[base] / median[s], "all_s": walls[s],
             "forward_rows": fwd_rows[s],
             "same_tokens_as_eager": same[s], "token_agreement": agree[s]} for s in sides]
    for r in rows:
        print(f"{r['side']:9s} {r['median_s'] * 1e3:8.1f} ms/run  {r['steps_per_s']:7.1f} steps/s"
              f"  {r['vs_eager']:.2f}x eager  {r['forward_rows']} forward rows"
              f"  same tokens: {r['same_tokens_as_eager']} ({r['token_agreement']:.1%})")
    backend = "inductor + CUDA graphs" if model.device.type == "cuda" else args.backend
    doc = {"what": what, "backend": backend if compile_s is not None else "not compiled",
           "compile_first_run_s": compile_s, "rows": rows,
           "meta": meta(args)}
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        json_path, md_path = args.out / "captured_bench.json", args.out / "captured_bench.md"
        docs = json.loads(json_path.read_text()) if args.append and json_path.exists() else []
        json_path.write_text(json.dumps([*docs, doc], indent=2))
        text = md_path.read_text() + "\n" if args.append and md_path.exists() else ""
        md_path.write_text(text + markdown(doc, heading=not text))
    return doc


def meta(args) -> dict:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=False).stdout.strip()
    except OSError:
        commit = "?"
    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "torch": torch.__version__,
            "machine": platform.machine(), "commit": commit, "repeats": args.repeats}


def markdown(doc: dict, heading: bool = True) -> str:
    m = doc["meta"]
    compiled_note = (
        f"Compiled with {doc['backend']}, fullgraph=True; the first compiled run (tracing and "
        f"compiling every step shape) took {doc['compile_first_run_s']:.1f} s and is not in "
        "the table." if doc["compile_first_run_s"] is not None else "Nothing compiled.")
    lines = [
        *(["# Captured S3 steps: eager engine vs static step vs compiled step", ""]
          if heading else []),
        f"Measured {m['date']}, torch {m['torch']}, commit {m['commit']}, median of "
        f"{m['repeats']} interleaved runs after one warm-up run each. What ran: {doc['what']}. "
        + compiled_note,
        "",
        "| side | median per run | steps/s | speed vs eager | forward rows per run |"
        " same tokens as eager |",
        "|---|---|---|---|---|---|",
    ]
    for r in doc["rows"]:
        lines.append(f"| {r['side']} | {r['median_s'] * 1e3:.1f} ms | {r['steps_per_s']:.1f} | "
                     f"{r['vs_eager']:.2f}x | {r['forward_rows']} | "
                     f"{'yes' if r['same_tokens_as_eager'] else 'no'} "
                     f"({r['token_agreement']:.1%} of positions) |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
