"""Torch ops and wall per denoising step, s3dsl against the hand-written loop of
`handwritten_bench.py`: how many (and which) aten ops each side dispatches, 1 torch thread.

    python benchmarks/step_ops.py --model tiny-random --strategy best_of_k --particles 2 --gen 48
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, str(Path(__file__).parent))
import handwritten_bench as hb  # noqa: E402


class OpCounter(TorchDispatchMode):
    """Counts every aten op dispatched (inside the model too)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: collections.Counter[str] = collections.Counter()
        self.sites: collections.Counter[str] = collections.Counter()  # innermost project frame

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[str(func.overloadpacket.__name__)] += 1
        frame = sys._getframe(1)
        while frame is not None and "s3dsl" not in frame.f_code.co_filename and \
                "handwritten_bench" not in frame.f_code.co_filename:
            frame = frame.f_back
        if frame is not None:
            self.sites[f"{Path(frame.f_code.co_filename).stem}.{frame.f_code.co_name}"] += 1
        return func(*args, **(kwargs or {}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny-random")
    ap.add_argument("--strategy", default="best_of_k")
    ap.add_argument("--particles", type=int, default=2)
    ap.add_argument("--gen", type=int, default=48)
    ap.add_argument("--problems", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    torch.set_num_threads(1)
    model, label = hb.bench_model(args.model, "cpu")
    task = hb.get_task("arith")
    problems = task.problems("test", args.problems)
    cfg = hb.Config(args.strategy, args.particles, args.gen)
    steps = args.gen  # one denoising step per position (the bench's schedule)
    with tempfile.TemporaryDirectory() as tmp, torch.inference_mode():
        (Path(tmp) / "s3_systematic.yaml").write_text(hb.S3_SYSTEMATIC)
        sides = {"s3dsl": lambda r: hb.s3dsl_run(model, problems, cfg, r, Path(tmp)),
                 "hand": lambda r: hb.handwritten(model, task, problems, cfg, r)}
        for fn in sides.values():
            fn(0)
        walls: dict[str, list[float]] = {k: [] for k in sides}
        for rep in range(args.repeats):
            for name in (sides if rep % 2 == 0 else list(sides)[::-1]):
                t0 = time.perf_counter()
                sides[name](rep)
                walls[name].append(time.perf_counter() - t0)
        print(f"# {cfg.label}, model {label}, {len(problems)} problem(s), 1 thread, "
              f"{args.repeats} interleaved repeats")
        counts, sites = {}, {}
        for name, fn in sides.items():
            with OpCounter() as counter:
                fn(0)
            counts[name] = counter.ops
            sites[name] = counter.sites
            total = sum(counter.ops.values())
            print(f"{name:6s} median wall {statistics.median(walls[name]) * 1e3:8.1f} ms  "
                  f"per step {statistics.median(walls[name]) / steps * 1e3:6.2f} ms  "
                  f"aten ops {total} ({total / steps:.0f} per step)")
        for name, ops in counts.items():
            print(f"\n## {name}: top ops per step")
            for op, c in ops.most_common(args.top):
                print(f"  {op:28s} {c / steps:7.1f}")
            print(f"\n## {name}: ops per step by the innermost project function")
            for site, c in sites[name].most_common(args.top):
                print(f"  {site:40s} {c / steps:7.1f}")


if __name__ == "__main__":
    main()
