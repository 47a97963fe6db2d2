"""adaptive.yaml (a single decode, escalated to S3 where the verifier is below a threshold) against
single and S3: the threshold chosen on a validation split, then all three measured on test.

1. Validation: problems drawn like the test split from another seed (`--val-seed`, test prompts
   removed; benchmarks/replication.py's `validation_problems`). adaptive runs at every
   (threshold, agree) of the grid; the chosen pair has the best validation accuracy, ties broken
   by fewer forwards (replication.py's rule). single and S3 run there too, for reference.
2. Test: single, S3 and adaptive at the chosen threshold on the first N held-out test problems,
   one after another in one process (seed 0, opt level 2, the task's model and verifier).
Test problems are never used to choose anything.

    python benchmarks/adaptive.py --val-n 100 --test-n 200 --out benchmarks/results/adaptive.md
    python benchmarks/adaptive.py --tasks arith --val-n 60 --test-n 40        # a quick look
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from replication import validation_problems  # noqa: E402

from s3dsl.session import run_strategy  # noqa: E402
from s3dsl.tasks.registry import get_task  # noqa: E402

# (threshold, agree) pairs per task: the verifier's score below which a problem escalates, and
# the share of agreeing particles at which an escalated problem stops
GRIDS = {
    "arith": [(t, a) for t in (3.0, 3.25, 3.5, 3.75) for a in (0.75, 1.0)],
    "sudoku": [(t, a) for t in (0.95, 0.98, 1.0) for a in (0.75, 1.0)],
}


def measure(name: str, task: str, problems, sets: dict[str, str] | None = None):
    start = time.perf_counter()
    s = run_strategy(name, task=task, problems=problems, seed=0, opt_level=2, overrides=sets)
    escalated = sum(len(r.particles) > 1 for r in s.per_problem) / max(len(s.per_problem), 1)
    return s, escalated, time.perf_counter() - start


def row(task: str, split: str, name: str, sets: str, s, escalated: float, wall: float) -> str:
    verifier = get_task(task).default_verifier
    return (f"| {task} | {split} | {name} | {sets or '-'} | {verifier} | {s.model} | "
            f"{s.n_problems} | {s.nfe_per_problem:.1f} | {s.predicted_nfe_per_problem} | "
            f"{100 * s.accuracy:.1f}% | {100 * escalated:.0f}% | {wall:.0f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", nargs="*", default=["arith", "sudoku"])
    ap.add_argument("--val-n", type=int, default=100)
    ap.add_argument("--test-n", type=int, default=200)
    ap.add_argument("--val-seed", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=Path(__file__).parent).stdout.strip() or "unknown"
    lines = [
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit {commit}, "
        f"torch {torch.__version__}, {args.threads} thread(s), CPU; seed 0, opt level 2. "
        f"Validation: {args.val_n} problems per task drawn with seed {args.val_seed} (test prompts "
        f"removed); test: the first {args.test_n} held-out problems. `escalated`: share of "
        "problems that left the single decode (more than one final particle).",
        "",
        "| task | split | strategy | set | verifier | model | N | forwards/problem | bound | "
        "accuracy | escalated | wall s |",
        "| --- | --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]

    def emit(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    chosen_by_task = {}
    for task in args.tasks:
        the_task = get_task(task)
        val = validation_problems(the_task, args.val_seed, args.val_n)
        for name in ("single", "s3"):
            emit(row(task, "validation", name, "", *measure(name, task, val)))
        scored = []
        for threshold, agree in GRIDS[task]:
            sets = {"threshold": str(threshold), "agree": str(agree)}
            shown = f"threshold={threshold} agree={agree}"
            s, escalated, wall = measure("adaptive", task, val, sets)
            emit(row(task, "validation", "adaptive", shown, s, escalated, wall))
            scored.append((-s.accuracy, s.nfe_per_problem, shown, sets))
        _, _, chosen, chosen_sets = min(scored)
        chosen_by_task[task] = chosen
        test = the_task.problems("test", args.test_n)
        for name, sets in (("single", None), ("s3", None), ("adaptive", chosen_sets)):
            emit(row(task, "test", name, chosen if sets else "", *measure(name, task, test, sets)))
    lines += ["", "Chosen on validation (best accuracy, ties: fewer forwards): "
              + "; ".join(f"{t} {v}" for t, v in chosen_by_task.items()) + "."]
    if args.out is not None:
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
