"""Host cost of one resample step over a batch of problems: one problem at a time (the reference
interpreter's loop, and the executor's before issue 11 item 5) against all problems at once
(`resampling.resample_rows`, the executor's path for multinomial / systematic / stratified
without strata). Both give the same ancestors (asserted here, and in tests/test_resampling_rows.py).
SSP has no row form yet; its one-problem cost is listed for comparison.

    python benchmarks/resampling_bench.py --out benchmarks/results     # ~30 s, 1 thread
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch

from s3dsl.runtime import resampling


def per_call_ms(fn, repeats: int) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--repeats", type=int, default=50)
    args = ap.parse_args()
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    lines = ["| method | problems B | candidates n | one at a time (ms) | all at once (ms) "
             "| ratio |", "|---|---:|---:|---:|---:|---:|"]
    for method in (*resampling.ROW_METHODS, "ssp"):
        for b, n in ((4, 32), (16, 32), (64, 32), (16, 128)):
            logw = torch.randn(b, n, dtype=torch.float64, generator=g)
            u = torch.rand(b, 3 * n + 2, dtype=torch.float64, generator=g)
            keep = n // 4

            def each(m=method, lw=logw, uu=u, k=keep):
                return [resampling.resample(resampling.normalize(lw[i]), k, m, uu[i])
                        for i in range(len(lw))]

            one = per_call_ms(each, args.repeats)
            if method in resampling.ROW_METHODS:
                def rows(m=method, lw=logw, uu=u, k=keep):
                    return resampling.resample_rows(resampling.normalize_rows(lw), k, m, uu)
                assert torch.equal(torch.stack(each()), rows())
                many = per_call_ms(rows, args.repeats)
                cell = f"{many:.3f} | {one / many:.1f}x"
            else:
                cell = "(no row form) | -"
            lines.append(f"| {method} | {b} | {n} | {one:.3f} | {cell} |")
    header = (f"# Resampling host cost\n\nOne resample of B problems x n candidates to n/4 "
              f"survivors, normalize included, mean of {args.repeats} calls, "
              f"1 torch thread, {platform.machine()} CPU, torch {torch.__version__}.\n")
    text = header + "\n" + "\n".join(lines) + "\n"
    print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "resampling_bench.md").write_text(text)


if __name__ == "__main__":
    main()
