"""Paired tests and compute matching, by hand: McNemar, the paired bootstrap, the curve."""

from __future__ import annotations

import math

import pytest

from s3dsl.matching import Point, bracket, curve, ks_to_run, match
from s3dsl.stats import discordant, mcnemar_exact, paired_bootstrap, per_problem


def outcomes(flags: str, seed: int = 0) -> dict[tuple[int, str], float]:
    return {(seed, f"p{i}"): float(c == "1") for i, c in enumerate(flags)}


def test_mcnemar_exact_by_hand():
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(6, 0) == pytest.approx(2 / 64)  # 2 * (1/2)^6
    # 2 * P(X <= 1), X ~ Bin(8, 1/2)
    assert mcnemar_exact(1, 7) == pytest.approx(2 * (1 + 8) / 256)
    assert mcnemar_exact(3, 3) == 1.0


def test_discordant_and_bootstrap():
    a, b = outcomes("1100110011"), outcomes("1000100010")
    assert discordant(a, b) == (3, 0)
    e = paired_bootstrap(a, b)
    assert e.value == pytest.approx(0.3) and e.lo <= 0.3 <= e.hi and e.lo >= 0.0
    assert paired_bootstrap(a, b) == e  # fixed seed
    same = paired_bootstrap(a, a)
    assert (same.value, same.lo, same.hi) == (0.0, 0.0, 0.0)


def test_seeds_are_averaged_per_problem_before_testing():
    two = {**outcomes("10"), **outcomes("11", seed=1)}
    assert per_problem(two) == {"p0": 1.0, "p1": 0.5}
    # three seeds of one problem are one discordant problem, not three
    a = {**outcomes("1"), **outcomes("1", seed=1), **outcomes("1", seed=2)}
    b = {**outcomes("0"), **outcomes("0", seed=1), **outcomes("1", seed=2)}
    assert discordant(a, b) == (1, 0)


def test_curve_bracket_and_interpolation_by_hand():
    # best-of-1 at 10 forwards: 2/4 right; best-of-2 at 18 forwards: 4/4 right
    k1 = Point("k1", 10.0, outcomes("1100"), k=1)
    k2 = Point("k2", 18.0, outcomes("1111"), k=2)
    points = curve([k2, k1])
    assert [p.k for p in points] == [1, 2]
    lo, hi, w, where = bracket(12.0, points)
    assert (lo.k, hi.k, where) == (1, 2, "inside") and w == pytest.approx(0.25)
    strategy = Point("s", 12.0, outcomes("1110"))
    m = match(strategy, points, first=k1)
    assert (m.k_lo, m.k_hi, m.k_range) == (1, 2, "1-2")
    assert m.reference_accuracy == pytest.approx(0.5 + 0.25 * 0.5)  # 62.5%
    assert m.vs_curve.difference.value == pytest.approx(0.75 - 0.625)
    # ahead of the curve: McNemar against the run that spent more (K=2): 0 wins, 1 loss
    assert m.mcnemar_run == "k2" and (m.vs_curve.wins, m.vs_curve.losses) == (0, 1)
    assert m.vs_curve.difference.p == pytest.approx(1.0)
    assert (m.vs_first.wins, m.vs_first.losses) == (1, 0)
    behind = match(Point("b", 12.0, outcomes("1000")), points)
    assert behind.mcnemar_run == "k1" and (behind.vs_curve.wins, behind.vs_curve.losses) == (0, 1)


def test_outside_the_curve_is_said_so():
    points = [Point("k1", 10.0, outcomes("10"), k=1), Point("k2", 18.0, outcomes("11"), k=2)]
    below = match(Point("cheap", 5.0, outcomes("11")), points)
    assert below.position == "below" and below.k_range == "< 1" and below.mcnemar_run == "k1"
    above = match(Point("dear", 40.0, outcomes("00")), points)
    assert above.position == "above" and above.k_range == "> 2"
    assert match(Point("x", 1.0, outcomes("1")), []).position == "none"


def test_ks_to_run_doubles_until_the_curve_reaches_the_cost():
    assert ks_to_run(30.0, {}) == 1
    assert ks_to_run(30.0, {1: 10.0}) == 2
    assert ks_to_run(30.0, {1: 10.0, 2: 18.0}) == 4
    assert ks_to_run(30.0, {1: 10.0, 2: 18.0, 4: 31.0}) is None
    assert ks_to_run(math.inf, {1: 1.0, 2: 2.0}, max_k=2) is None


def test_the_matched_accuracy_has_its_own_interval():
    """Wilson on the interpolated success count over problems: 1 + 1 + 0.25 + 0.25 = 2.5 of 4
    at w = 0.25; seeds averaged per problem first; a curve point's own interval where the
    strategy lands on it; numeric in the JSON."""
    from s3dsl.metrics import wilson

    k1 = Point("k1", 10.0, outcomes("1100"), k=1)
    k2 = Point("k2", 18.0, outcomes("1111"), k=2)
    m = match(Point("s", 12.0, outcomes("1110")), [k1, k2])
    assert m.reference_ci == pytest.approx(wilson(2.5, 4))
    lo, hi = m.reference_ci
    assert 0 < lo < m.reference_accuracy < hi < 1
    on_k1 = match(Point("s", 10.0, outcomes("1110")), [k1, k2])
    assert on_k1.reference_ci == pytest.approx(wilson(2, 4))  # = best-of-1's own interval
    assert match(Point("s", 30.0, outcomes("0000")), [k1, k2]).reference_ci == (wilson(4, 4))
    # two seeds: four problems, not eight trials (the interval of 2.5 of 4, not 5 of 8)
    seeds = [Point(p.label, p.forwards, {**p.outcomes, **{(1, i): v for (_, i), v in
                                                            p.outcomes.items()}}, p.k)
             for p in (k1, k2)]
    two = match(Point("s", 12.0, {**outcomes("1110"), **outcomes("1110", seed=1)}), seeds)
    assert two.reference_ci == pytest.approx(wilson(2.5, 4))
    shown = m.to_json()["best_of_k_accuracy"]
    assert shown == {"value": pytest.approx(0.625), "lo": lo, "hi": hi, "p": None}
    assert match(Point("x", 1.0, outcomes("1")), []).to_json()["best_of_k_accuracy"] is None
