"""Quality bands of the shipped models: does search have room to help?

For each shipped model, on the held-out test split: the single decode (the built-in `single`
strategy: LLaDA schedule, low-confidence remasking, temperature 0) must be right on 20-60% of
problems, and pass@K of temperature sampling (the built-in `best_of_k`, K=16, temperature 1.0,
low-confidence remasking; pass@K = any of the K particles' answers is correct) at least 25 points
higher. A model outside the band is fixed by changing task difficulty or training, never this
metric. Decoding goes through `s3dsl.session.run_strategy`.

    python benchmarks/quality_bands.py [--tasks arith sudoku] [--n 200] [--k 16]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass

import torch

from s3dsl.models import load_model
from s3dsl.session import run_strategy
from s3dsl.tasks import get_task

BAND_SINGLE = (0.20, 0.60)
MIN_GAIN = 0.25


@dataclass
class Band:
    task: str
    n: int
    single: float
    pass_k: float
    k: int
    seconds: float

    @property
    def ok(self) -> bool:
        lo, hi = BAND_SINGLE
        return lo <= self.single <= hi and self.pass_k >= self.single + MIN_GAIN


def measure(task_name: str, n: int, k: int, temperature: float, batch: int) -> Band:
    """Single-decode accuracy and pass@k on the first `n` test problems of a task."""
    task = get_task(task_name)
    model = load_model(task.default_model)
    start = time.perf_counter()
    single = run_strategy("single", model, task=task_name, limit=n, seed=0, batch_size=batch)
    sampled = run_strategy(
        "best_of_k",
        model,
        task=task_name,
        limit=n,
        seed=1,
        overrides={"k": str(k), "temperature": str(temperature)},
        batch_size=max(1, batch // k),
    )
    hits = [
        any(task.is_correct(p.answer, r.answer) for p in r.particles) for r in sampled.per_problem
    ]
    seconds = time.perf_counter() - start
    return Band(task_name, single.n_problems, single.accuracy, sum(hits) / len(hits), k, seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="quality bands of the shipped models")
    parser.add_argument("--tasks", nargs="+", default=["arith", "sudoku"])
    parser.add_argument("--n", type=int, default=200, help="test problems per task")
    parser.add_argument("--k", type=int, default=16, help="samples for pass@k")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--batch", type=int, default=256, help="rows per forward pass")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    all_ok = True
    for name in args.tasks:
        band = measure(name, args.n, args.k, args.temperature, args.batch)
        all_ok &= band.ok
        print(
            f"{band.task:8s} n={band.n}  single={band.single:.1%}  pass@{band.k}={band.pass_k:.1%}"
            f"  gain={band.pass_k - band.single:+.1%}  {'OK' if band.ok else 'OUT OF BAND'}"
            f"  ({band.seconds:.0f}s)",
            flush=True,
        )
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
