"""The statistics of a comparison: Wilson intervals, unbiased pass@k, maj@k, diversity.

Kept free of torch and of the runtime so they can be checked by hand and by brute force.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Sequence

from s3dsl.runtime.scoring import ParticleOutcome, choose

Z95 = 1.959963984540054


def wilson(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval: unlike the normal approximation it stays inside [0, 1] and is
    sensible at 0 and n successes, which small evaluation sets hit all the time. `successes` may
    be fractional (a per-problem mean over seeds), with `n` the number of problems."""
    if n <= 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return (lo, hi)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct: 1 - C(n-c, k) / C(n, k)
    (Chen et al. 2021), in the product form that never builds huge binomials."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n (n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


def powers_of_two(limit: int) -> list[int]:
    """1, 2, 4, ... up to `limit`."""
    out, k = [], 1
    while k <= limit:
        out.append(k)
        k *= 2
    return out


def maj_at_k(
    outcomes: Sequence[ParticleOutcome],
    correct: Sequence[bool],
    k: int,
    max_subsets: int = 2000,
    seed: int = 0,
) -> float:
    """The chance that a majority vote (ties: lowest NLL, as `choose` does) over k of the samples
    is right, averaged over every k-subset, or over `max_subsets` random ones (fixed seed) when
    there are more."""
    n = len(outcomes)
    if not 1 <= k <= n:
        raise ValueError(f"maj@k needs 1 <= k <= n (n={n}, k={k})")
    if math.comb(n, k) <= max_subsets:
        subsets = itertools.combinations(range(n), k)
    else:
        rng = random.Random(seed)
        subsets = (tuple(sorted(rng.sample(range(n), k))) for _ in range(max_subsets))
    hits = total = 0
    for subset in subsets:
        pick = subset[choose([outcomes[i] for i in subset], "vote")]
        hits += bool(correct[pick])
        total += 1
    return hits / total


def distinct_answers(outcomes: Sequence[ParticleOutcome]) -> int:
    """How many different extracted answers the samples hold (no answer is not counted)."""
    return len({o.answer for o in outcomes if o.answer is not None})
