"""Every observable of a fixed set of runs, dumped to JSON, so that a change meant to keep the bits
(a faster engine path, a refactor) can be checked for it: dump before, dump after, compare.

A record per (model, strategy, seed): the run's summary without its timings (accuracy, forwards,
counters, ...) and every problem's full result (particles' tokens, scores, log-weights, NLLs,
ESS, accept counts). Plus one `rng.categorical` draw over rows with -inf entries. Runs on the
trained arith model and the untrained 30K tiny-random one, 3 arith test problems, 1 thread.

    python benchmarks/observables.py before.json            # on the old commit
    python benchmarks/observables.py after.json             # on the new one
    python benchmarks/observables.py --compare before.json after.json   # exit 1 if any differ

For a commit that predates this file, run it from here against an export of that commit:
`PYTHONPATH=/tmp/old python benchmarks/observables.py before.json` (s3dsl comes from the export).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import handwritten_bench as hb  # noqa: E402

STRATEGIES = ("best_of_k", "s3", "imh", "smc", "beam", "threshold", "remdm", "fk", "paths",
              "dream", "llada", "s3_agree")
TIMINGS = ("wall_s", "tokens_per_s", "peak_memory_mb")


def records(strategies: tuple[str, ...], models: tuple[str, ...], seeds: tuple[int, ...],
            problems: int) -> dict:
    from s3dsl.runtime import rng
    from s3dsl.session import run_strategy

    torch.set_num_threads(1)
    task = hb.get_task("arith")
    chosen = task.problems("test", problems)
    out: dict = {}
    for name in models:
        model = "arith" if name == "arith" else hb.bench_model(name, "cpu")[0]
        for strategy in strategies:
            for seed in seeds:
                run = run_strategy(strategy, model, task="arith", seed=seed, problems=chosen,
                                   batch_size=problems)
                summary = {k: v for k, v in run.to_json().items() if k not in TIMINGS}
                full = [r.to_json() for r in run.per_problem]
                out[f"{name}/{strategy}/{seed}"] = json.loads(
                    json.dumps({"summary": summary, "full": full}, sort_keys=True, default=str))
    with torch.inference_mode():
        weights = torch.randn(4, 7, 11, generator=torch.Generator().manual_seed(3))
        weights[1] = -float("inf")  # a row with nothing to draw
        weights[2, :, 4:] = -float("inf")
        out["categorical"] = rng.categorical(torch.tensor([1, 2, 3, -5]), 9, weights, offset=3,
                                             temperature=0.7, exclude=2).tolist()
    return out


def compare(a: dict, b: dict) -> list[str]:
    """The records that differ (or exist on one side only)."""
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", type=Path, help="the JSON file to write")
    ap.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"))
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--models", default="arith,tiny-random")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--problems", type=int, default=3)
    args = ap.parse_args(argv)
    if args.compare:
        a, b = (json.loads(p.read_text()) for p in args.compare)
        differ = compare(a, b)
        print(f"{len(set(a) | set(b))} records, {len(differ)} differ" +
              (f": {', '.join(differ[:20])}" if differ else ""))
        return 1 if differ else 0
    if args.out is None:
        ap.error("give the JSON file to write, or --compare A B")
    out = records(tuple(args.strategies.split(",")), tuple(args.models.split(",")),
                  tuple(int(s) for s in args.seeds.split(",")), args.problems)
    args.out.write_text(json.dumps(out, sort_keys=True))
    print(f"{len(out)} records -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
