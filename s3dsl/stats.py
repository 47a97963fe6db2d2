"""Paired significance for comparisons on the same problems: McNemar's exact test and a paired
bootstrap interval of an accuracy difference.

Outcomes are keyed by (seed, problem id). Seeds of one problem are not independent trials, so
both work on *problems*, each with the mean of its seeds: the bootstrap resamples problems, and
the exact test counts the problems where one side's mean is higher. With one seed that is
McNemar's exact test; with several it is the exact sign test on seed-averaged outcomes (counting
(seed, problem) pairs instead would treat seeds as new problems and overstate significance).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

Outcomes = Mapping[tuple[int, str], float]  # (seed, problem id) -> 1.0 right, 0.0 wrong (or mix)

BOOTSTRAP_SAMPLES = 2000


@dataclass(frozen=True)
class Estimate:
    """A number with its 95% interval and, where it is a test against something, its p-value."""

    value: float
    lo: float | None = None
    hi: float | None = None
    p: float | None = None

    def to_json(self) -> dict[str, float | None]:
        return {"value": self.value, "lo": self.lo, "hi": self.hi, "p": self.p}


def mcnemar_exact(wins: int, losses: int) -> float:
    """Two-sided exact McNemar test: the discordant pairs are Binomial(wins + losses, 1/2) when
    neither side is better."""
    from scipy.stats import binomtest

    n = wins + losses
    return 1.0 if n == 0 else float(binomtest(wins, n, 0.5).pvalue)


def discordant(a: Outcomes, b: Outcomes) -> tuple[int, int]:
    """(problems where `a` does better, problems where `b` does), over the problems both have,
    on outcomes averaged over seeds (one seed: the pairs only one side got right)."""
    pa, pb = per_problem(a), per_problem(b)
    ids = pa.keys() & pb.keys()
    return (sum(pa[i] > pb[i] for i in ids), sum(pb[i] > pa[i] for i in ids))


def per_problem(outcomes: Outcomes) -> dict[str, float]:
    """Each problem's mean outcome over its seeds."""
    sums: dict[str, list[float]] = defaultdict(list)
    for (_, pid), v in outcomes.items():
        sums[pid].append(float(v))
    return {pid: sum(vs) / len(vs) for pid, vs in sums.items()}


def paired_bootstrap(a: Outcomes, b: Outcomes, samples: int = BOOTSTRAP_SAMPLES,
                     seed: int = 0) -> Estimate:
    """mean(a) - mean(b) over the problems both have, with a 95% percentile interval from
    resampling problems with replacement (fixed seed: the same data give the same interval)."""
    pa, pb = per_problem(a), per_problem(b)
    ids = sorted(pa.keys() & pb.keys())
    if not ids:
        return Estimate(0.0)
    diffs = [pa[i] - pb[i] for i in ids]
    import numpy as np

    values = np.asarray(diffs, dtype=np.float64)
    picks = np.random.default_rng(seed).integers(0, len(values), (samples, len(values)))
    lo, hi = np.percentile(values[picks].mean(axis=1), [2.5, 97.5])
    return Estimate(float(values.mean()), float(lo), float(hi))


def paired_test(a: Outcomes, b: Outcomes) -> tuple[Estimate, int, int]:
    """The difference a - b with its bootstrap interval and McNemar p; and the discordant pairs."""
    wins, losses = discordant(a, b)
    diff = paired_bootstrap(a, b)
    return Estimate(diff.value, diff.lo, diff.hi, mcnemar_exact(wins, losses)), wins, losses


def mix(a: Outcomes, b: Outcomes, weight_b: float) -> dict[tuple[int, str], float]:
    """The outcomes of a point between two runs: (1 - w) a + w b per (seed, problem)."""
    return {k: (1 - weight_b) * a[k] + weight_b * b[k] for k in sorted(a.keys() & b.keys())}
