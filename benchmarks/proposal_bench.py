"""The token proposal's cost against the vocabulary: hashed Gumbel-max (the scheme before issue 11
item 5: one counter hash and two logs per row x position x vocabulary entry) against
`rng.categorical` (one hashed uniform per row x position, then an inverse CDF over the
vocabulary). Both on the same random log-probabilities, interleaved, 1 torch thread.

    python benchmarks/proposal_bench.py --rows 8 --repeats 3 --out benchmarks/results   # ~3 min
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import time
from pathlib import Path

import torch

from s3dsl.runtime import rng


def hashed_gumbel_max(keys: torch.Tensor, counter: int, logp: torch.Tensor, offset: int,
                      temperature: float, exclude: int) -> torch.Tensor:
    """The previous proposal: argmax(logp + T * Gumbel), one hashed Gumbel per vocabulary entry."""
    _, width, vocab = logp.shape
    noise = rng.gumbel(keys, counter, (width, vocab), offset=offset * vocab)
    scores = logp.double() + temperature * noise
    scores[..., exclude] = -math.inf
    return scores.argmax(dim=-1)


def categorical(keys: torch.Tensor, counter: int, logp: torch.Tensor, offset: int,
                temperature: float, exclude: int) -> torch.Tensor:
    return rng.categorical(keys, counter, logp, offset, temperature, exclude)


def wall(fn, *args) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=32)
    ap.add_argument("--width", type=int, default=32, help="window positions (a block)")
    ap.add_argument("--vocabs", default="20,2048,32768,126464")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    keys = torch.arange(args.rows, dtype=torch.int64) * 7919
    lines = []
    for vocab in (int(v) for v in args.vocabs.split(",")):
        logp = torch.log_softmax(torch.randn(args.rows, args.width, vocab) * 3, -1)
        sides = {"hashed Gumbel-max": hashed_gumbel_max, "rng.categorical": categorical}
        walls: dict[str, list[float]] = {name: [] for name in sides}
        for rep in range(args.repeats):  # interleaved, order alternating
            order = list(sides.items()) if rep % 2 == 0 else list(sides.items())[::-1]
            for name, fn in order:
                walls[name].append(wall(fn, keys, 17, logp, 0, 1.0, vocab - 1))
        old, new = (statistics.median(walls[n]) for n in sides)
        lines.append(f"| {vocab} | {old * 1e3:.2f} | {new * 1e3:.2f} | {old / new:.1f}x |")
        print(lines[-1], flush=True)
    header = (f"{args.rows} rows x {args.width} positions, temperature 1, median of "
              f"{args.repeats} interleaved repeats, 1 torch thread, {platform.machine()} CPU, "
              f"torch {torch.__version__}")
    print(header)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        text = ("# Token proposal cost against the vocabulary\n\n" + header + "\n\n"
                "| vocabulary | hashed Gumbel-max (ms) | rng.categorical (ms) | speed-up |\n"
                "|---:|---:|---:|---:|\n" + "\n".join(lines) + "\n")
        (args.out / "proposal_bench.md").write_text(text)


if __name__ == "__main__":
    main()
