"""Compute matching on *measured* forwards: the best-of-K curve at a strategy's cost.

Best-of-K runs at K = 1, 2, 4, ... give points (measured forwards per problem, accuracy). A
strategy that spent F forwards per problem is compared with the curve interpolated linearly at F,
between the two runs that bracket it (K range [K_lo, K_hi]). Per problem the interpolated
reference is the same mix of the two runs' outcomes, so the paired bootstrap interval of the
difference is over the same problems. McNemar needs right/wrong pairs (s3dsl.stats: per problem,
seed-averaged), so it is run against one bracketing run, chosen so that a significant result
cannot be an artefact of the interpolation: a strategy ahead of the curve is tested against the
run that spent at least as much (K_hi), one behind it against the run that spent at most as much
(K_lo).

The matched accuracy has its own 95% interval (`reference_ci`): Wilson on the interpolated success
count over problems, sum_i ((1 - w) a_i + w b_i) of n problems (a_i, b_i: the bracketing runs'
seed-averaged outcomes, w the same interpolation weight), the interval the strategies' own
accuracies get (s3dsl.metrics.wilson), so it equals a curve point's own interval where the
strategy's forwards land on it. An interpolated outcome lies in [0, 1], so its variance is at most
p(1 - p): the Bernoulli variance Wilson assumes, which makes the interval conservative where the
two runs disagree. It covers sampling over problems only: the weight w is taken as fixed (the
measured forwards are not resampled), and the error of interpolating linearly is not in it.

This is the one implementation: `s3dsl compare`, `s3dsl report` and benchmarks/replication.py
all call it. It knows nothing of the store or the CLI.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from s3dsl.metrics import wilson
from s3dsl.stats import Estimate, Outcomes, mix, paired_test, per_problem

MAX_K = 64


@dataclass(frozen=True)
class Point:
    """One run of a variant: best-of-K (with its K) or a strategy to match."""

    label: str
    forwards: float  # measured forward passes per problem
    outcomes: Outcomes
    k: int = 0

    @property
    def accuracy(self) -> float:
        return sum(self.outcomes.values()) / max(len(self.outcomes), 1)


@dataclass(frozen=True)
class Paired:
    """A strategy against one reference: a - b, bootstrap 95% CI, McNemar p, discordant pairs."""

    against: str
    difference: Estimate
    wins: int
    losses: int

    def to_json(self) -> dict:
        return {"against": self.against, "difference": self.difference.to_json(),
                "wins": self.wins, "losses": self.losses}


@dataclass(frozen=True)
class Matched:
    """A strategy at its measured forwards against the best-of-K curve (and the first strategy).

    `position`: "inside" the curve (interpolated), "below" its cheapest run (the reference spends
    more), "above" its dearest run (the reference spends less: run larger K), or "none"."""

    variant: str
    forwards: float
    position: str
    k_lo: int | None = None
    k_hi: int | None = None
    reference_accuracy: float | None = None
    vs_curve: Paired | None = None  # difference against the interpolated curve, p vs one end
    mcnemar_run: str | None = None  # the best-of-K run the McNemar p of vs_curve compares with
    vs_first: Paired | None = None
    reference_ci: tuple[float, float] | None = None  # of reference_accuracy: 95%, Wilson (above)

    @property
    def k_range(self) -> str:
        if self.k_lo is None:
            return "-"
        if self.position == "below":
            return f"< {self.k_lo}"
        if self.position == "above":
            return f"> {self.k_hi}"
        return str(self.k_lo) if self.k_lo == self.k_hi else f"{self.k_lo}-{self.k_hi}"

    def reference_estimate(self) -> Estimate:
        """The matched best-of-K accuracy with its 95% interval (no p: it is not a test)."""
        lo, hi = self.reference_ci if self.reference_ci is not None else (None, None)
        return Estimate(self.reference_accuracy or 0.0, lo, hi)

    def to_json(self) -> dict:
        return {
            "variant": self.variant, "forwards_per_problem": self.forwards,
            "position": self.position, "k_lo": self.k_lo, "k_hi": self.k_hi,
            "k_range": self.k_range, "best_of_k_accuracy": self.reference_estimate().to_json()
            if self.reference_accuracy is not None else None,
            "vs_best_of_k": self.vs_curve.to_json() if self.vs_curve else None,
            "mcnemar_against_run": self.mcnemar_run,
            "vs_first": self.vs_first.to_json() if self.vs_first else None,
        }


def curve(points: Sequence[Point]) -> list[Point]:
    """Best-of-K points by measured forwards (one per K: the first given)."""
    seen: dict[int, Point] = {}
    for p in points:
        seen.setdefault(p.k, p)
    return sorted(seen.values(), key=lambda p: (p.forwards, p.k))


def bracket(forwards: float, points: Sequence[Point]) -> tuple[Point, Point, float, str]:
    """The two curve points around `forwards`, the weight of the upper one, and the position."""
    if forwards <= points[0].forwards:
        exact = forwards == points[0].forwards
        return points[0], points[0], 0.0, "inside" if exact else "below"
    if forwards >= points[-1].forwards:
        exact = forwards == points[-1].forwards
        return points[-1], points[-1], 1.0, "inside" if exact else "above"
    for lo, hi in zip(points, points[1:]):
        if lo.forwards <= forwards <= hi.forwards:
            span = hi.forwards - lo.forwards
            return lo, hi, (forwards - lo.forwards) / span if span else 0.0, "inside"
    raise AssertionError("unreachable: points are sorted")


def paired(a: Point, b_label: str, b: Outcomes) -> Paired:
    diff, wins, losses = paired_test(a.outcomes, b)
    return Paired(b_label, diff, wins, losses)


def match(strategy: Point, reference: Sequence[Point], first: Point | None = None) -> Matched:
    """The strategy against best-of-K at its measured forwards, and against `first`."""
    vs_first = paired(strategy, first.label, first.outcomes) if first is not None else None
    points = curve(reference)
    if not points:
        return Matched(strategy.label, strategy.forwards, "none", vs_first=vs_first)
    lo, hi, w, position = bracket(strategy.forwards, points)
    interpolated = mix(lo.outcomes, hi.outcomes, w)
    ref_acc = sum(interpolated.values()) / max(len(interpolated), 1)
    ref_ci = matched_interval(interpolated)
    diff = paired(strategy, f"best-of-K at {strategy.forwards:,.1f} forwards", interpolated)
    ahead = diff.difference.value >= 0
    end = hi if ahead else lo
    if position == "below":
        end = lo
    tested = paired(strategy, end.label, end.outcomes)
    vs_curve = Paired(diff.against, Estimate(diff.difference.value, diff.difference.lo,
                                             diff.difference.hi, tested.difference.p),
                      tested.wins, tested.losses)
    return Matched(strategy.label, strategy.forwards, position, lo.k, hi.k, ref_acc, vs_curve,
                   end.label, vs_first, reference_ci=ref_ci)


def matched_interval(interpolated: Outcomes) -> tuple[float, float]:
    """95% Wilson interval of the interpolated accuracy: the seed-averaged, interpolated outcome
    of each problem summed as a (fractional) success count over the problems (module doc)."""
    outcomes = per_problem(interpolated)
    return wilson(sum(outcomes.values()), len(outcomes))


def ks_to_run(max_forwards: float, have: dict[int, float], max_k: int = MAX_K) -> int | None:
    """The next K to run so that the curve reaches `max_forwards` (None when it does, or when
    K would pass `max_k`). `have` maps K to its measured forwards per problem."""
    k = 1
    while k <= max_k:
        if k not in have:
            return k
        if have[k] >= max_forwards:
            return None
        k *= 2
    return None
