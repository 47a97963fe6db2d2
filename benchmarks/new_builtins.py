"""Forwards per problem and accuracy of the issue-13 built-ins next to the shipped baselines.

Every strategy runs with its shipped defaults on the held-out test split (first N problems, seed 0,
opt level 2, the task's shipped model and default verifier), one after another in one process, so
the rows are side by side. Nothing is tuned on these problems.

    python benchmarks/new_builtins.py [--n arith=40 --n sudoku=32] [--threads 1] [--out FILE.md]
    python benchmarks/new_builtins.py --split train --n arith=40 --n sudoku=0 \
        --strategies single s3 benchmarks/adaptive_attempt.yaml \
        --out benchmarks/results/adaptive_attempt.md
    python benchmarks/new_builtins.py --n arith=40 --n sudoku=0 --strategies s3 s3_agree \
        --out benchmarks/results/s3_agree.md
    python benchmarks/new_builtins.py --strategies single hex best_of_k:k=3 \
        hex:per_schedule=2,temperature=1.0 best_of_k:k=6 \
        --out benchmarks/results/hex.md
(adaptive.yaml's threshold is chosen on validation by benchmarks/adaptive.py.)

A strategy may carry `--set`-style overrides after a colon: `best_of_k:k=3,temperature=0.7`.
"""

from __future__ import annotations

import argparse
import subprocess
import time
from pathlib import Path

import torch

from s3dsl.catalog import resolve_strategy
from s3dsl.session import compile_file, run_strategy
from s3dsl.tasks.registry import get_task

STRATEGIES = ("single", "best_of_k", "s3", "adaptive", "s3_agree", "remdm", "beam", "fk",
              "prism", "hex")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", action="append", default=[], help="task=N (default arith=40 sudoku=32)")
    ap.add_argument("--strategies", nargs="*", default=list(STRATEGIES))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--split", default="test", help="test (held out) or train")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    sizes = {"arith": 40, "sudoku": 32}
    sizes.update({k: int(v) for k, v in (item.split("=") for item in args.n)})
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=Path(__file__).parent).stdout.strip() or "unknown"
    lines = [
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit {commit}, "
        f"torch {torch.__version__}, {args.threads} thread(s), CPU; {args.split} split, seed 0, "
        "opt 2.",
        "",
        "| task | strategy | verifier | model | N | forwards/problem | accuracy | wall s |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for task, n in sizes.items():
        if n < 1:
            continue
        the_task = get_task(task)
        for spec in args.strategies:
            name, _, given = spec.partition(":")
            sets = dict(item.split("=", 1) for item in given.split(",") if item)
            start = time.perf_counter()
            s = run_strategy(name, task=task, split=args.split, limit=n, seed=0, opt_level=2,
                             overrides=sets or None)
            program = compile_file(resolve_strategy(name), sets or None, the_task.gen_length,
                                   the_task.default_verifier)
            used = ", ".join(v.describe() for v in program.verifiers.values()) or "none"
            shown = name + (f" ({', '.join(f'{k}={v}' for k, v in sets.items())})" if sets
                            else "")
            row = (f"| {task} | {shown} | {used} | {s.model} | {n} | "
                   f"{s.nfe_per_problem:.1f} | {100 * s.accuracy:.1f}% | "
                   f"{time.perf_counter() - start:.1f} |")
            print(row, flush=True)
            lines.append(row)
    if args.out is not None:
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
