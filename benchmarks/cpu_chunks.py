"""Rows per CPU forward call: the cost of a row against the chunk size, and whole runs with the
executor's CPU cap (`forwards.CPU_CACHE_BYTES`) against no cap, side by side.

On a CPU a batch's activations outgrow the caches as rows are added, and each row gets dearer;
the executor therefore splits CPU forwards into chunks whose MLP activations fit a few MiB. The
model computes every row alike in any chunk, so the tokens are the same (checked below).

    python benchmarks/cpu_chunks.py --out benchmarks/results     # ~10 min, 1 thread
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from s3dsl.models.config import ModelConfig
from s3dsl.models.registry import WEIGHTS_DIR, build_random_model, load_model
from s3dsl.runtime import forwards
from s3dsl.session import run_strategy
from s3dsl.tasks.registry import get_task

NO_CAP = 1 << 62


def arith_random_256():
    config = ModelConfig.from_json(WEIGHTS_DIR / "arith" / "config.json")
    return build_random_model(dataclasses.replace(config, max_len=256, name="arith-random-256"))


def per_row_ms(model, gen: int, rows: int, repeats: int) -> float:
    """The fastest of `repeats` answer forwards of `rows` rows (prompt cache), per row."""
    task = get_task("arith")
    ids = model.tokenizer.encode(task.problems("test", 1)[0].prompt)
    x = torch.tensor([ids], dtype=torch.long)
    with torch.inference_mode():
        cache = model.encode_prompt(x, torch.ones_like(x, dtype=torch.bool))
        owners = torch.zeros(rows, dtype=torch.long)
        answer = torch.randint(0, model.vocab_size - 2, (rows, gen), generator=torch.Generator()
                               .manual_seed(0))
        model.forward_answer(cache, owners, answer)
        walls = []
        for _ in range(repeats):
            start = time.perf_counter()
            model.forward_answer(cache, owners, answer)
            walls.append(time.perf_counter() - start)
    return 1000 * min(walls) / rows


def tokens(summary) -> list:
    return [[q.tokens for q in p.particles] for p in summary.per_problem]


def whole_run(case: dict, repeats: int) -> dict:
    """The same run with the CPU cap and without it, interleaved (A B B A ...)."""
    cap = forwards.CPU_CACHE_BYTES
    walls: dict[str, list[float]] = {"cap": [], "no cap": []}
    outs: dict[str, list] = {}
    calls: dict[str, int] = {}
    for rep in range(repeats):
        order = ("cap", "no cap") if rep % 2 == 0 else ("no cap", "cap")
        for side in order:
            forwards.CPU_CACHE_BYTES = cap if side == "cap" else NO_CAP
            try:
                s = run_strategy(case["strategy"], case["model"], task=case["task"],
                                 overrides=case["overrides"], limit=case["limit"],
                                 batch_size=case["batch"], seed=rep)
            finally:
                forwards.CPU_CACHE_BYTES = cap
            walls[side].append(s.wall_s)
            outs.setdefault(side, []).append(tokens(s))
            calls[side] = s.counters.get("forward_calls", 0)
    assert outs["cap"] == outs["no cap"], "the chunked run's tokens differ"
    capped, free = statistics.median(walls["cap"]), statistics.median(walls["no cap"])
    return {"case": case["label"], "cap_s": capped, "no_cap_s": free, "ratio": capped / free,
            "forward_calls": calls, "walls": walls, "same_tokens": True}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    ar256 = arith_random_256()
    sudoku = load_model("sudoku")
    curves = []
    sizes = (8, 16) if args.quick else (8, 16, 32, 64, 128)
    gens = (96,) if args.quick else (96, 192)
    for label, model in (("arith-random-256", ar256), ("sudoku", sudoku)):
        for gen in gens if label != "sudoku" else (84,):
            row = {"model": label, "gen": gen,
                   "ms_per_row": {r: per_row_ms(model, gen, r, 2 if args.quick else 5)
                                  for r in sizes}}
            curves.append(row)
            print(row, flush=True)
    cap = forwards.CPU_CACHE_BYTES
    cases = [
        {"label": "s3 on sudoku (the README's run), 32 problems, batch 8", "strategy": "s3",
         "model": sudoku, "task": "sudoku", "overrides": {}, "limit": 8 if args.quick else 32,
         "batch": 8},
        {"label": "s3 particles=8 x 4 on arith-random-256, gen 192, 1 problem", "strategy": "s3",
         "model": ar256, "task": "arith", "limit": 1, "batch": 1,
         "overrides": {"particles": "8", "candidates": "4", "gen_length": "96" if args.quick
                       else "192"}},
    ]
    runs = []
    for case in cases:
        row = whole_run(case, 1 if args.quick else args.repeats)
        runs.append(row)
        print({k: v for k, v in row.items() if k != "walls"}, flush=True)
    setup = (f"1 torch thread, {platform.machine()} CPU, torch {torch.__version__}; "
             f"cap {cap >> 20} MiB of MLP activations per chunk (forwards.CPU_CACHE_BYTES)")
    if args.out is not None:
        write(args.out, setup, curves, runs, args.repeats)


def write(out: Path, setup: str, curves: list[dict], runs: list[dict], repeats: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "cpu_chunks.json").write_text(json.dumps({"setup": setup, "curves": curves,
                                                     "runs": runs}, indent=2))
    sizes = list(curves[0]["ms_per_row"])
    lines = ["# Rows per CPU forward call\n", setup + "\n",
             "Cost of one row of an answer forward (prompt cache; fastest of 5) by rows per "
             "call, ms:\n",
             "| model | gen | " + " | ".join(f"{r} rows" for r in sizes) + " |",
             "|---|---:|" + "---:|" * len(sizes)]
    lines += [f"| {c['model']} | {c['gen']} | " +
              " | ".join(f"{c['ms_per_row'][r]:.2f}" for r in sizes) + " |" for c in curves]
    lines += ["", f"Whole runs, cap against no cap, interleaved, {repeats} repeats (seed = "
              "repeat), median wall; the tokens of every particle are the same on both sides:\n",
              "| run | with the cap (s) | without (s) | ratio | forward calls with / without |",
              "|---|---:|---:|---:|---:|"]
    lines += [f"| {r['case']} | {r['cap_s']:.2f} | {r['no_cap_s']:.2f} | {r['ratio']:.2f} | "
              f"{r['forward_calls']['cap']} / {r['forward_calls']['no cap']} |" for r in runs]
    (out / "cpu_chunks.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
