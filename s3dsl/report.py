"""Comparison reports: stored runs -> variants -> metric rows -> matched comparisons -> JSON.

A *variant* is a configuration run on the same problems for one or more seeds (runs that differ
only by seed are pooled). Everything here is computed from stored results, so `s3dsl report`
re-renders a comparison without running a model. Each variant is compared with the best-of-K
curve at its *measured* forwards per problem and with the first variant (s3dsl.matching);
renderings for people are in s3dsl.report_view.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from s3dsl.matching import Matched, Point, match
from s3dsl.metrics import distinct_answers, maj_at_k, pass_at_k, powers_of_two, wilson
from s3dsl.stats import Estimate
from s3dsl.store import RunRecord, Store, StoredResult

REFERENCE = "best_of_k"
_LABEL_DECODE = ("gen_length", "steps", "block_length", "temperature", "commit", "threshold")


@dataclass
class Variant:
    """Runs of one configuration over seeds, with their finished results."""

    label: str
    runs: list[RunRecord]
    trials: list[tuple[int, StoredResult]]  # (seed, result) for every finished problem x seed

    @property
    def first(self) -> RunRecord:
        return self.runs[0]

    @property
    def strategy(self) -> str:
        return self.first.strategy

    @property
    def params(self) -> dict:
        return self.first.config.get("params", {})


@dataclass
class Row:
    """The metrics of one variant (None where a metric does not apply). Per-problem values are
    means over a problem's final samples or seeds; totals say so in their name."""

    label: str
    strategy: str
    params: dict
    runs: list[str]
    seeds: list[int]
    n_problems: int
    trials: int
    correct: int
    accuracy: float
    ci: tuple[float, float]
    nfe_per_problem: float
    predicted_nfe_per_problem: int | None
    single_nfe: int
    tokens_per_s: float
    wall_s: float
    peak_mb: float
    pass_at_k: dict[int, float]
    maj_at_k: dict[int, float]
    mean_score: float | None
    verifier: str  # what `mean score` is measured with: scores of different verifiers differ
    diversity: float
    ess: float | None
    acceptance: float | None
    samples: int = 0  # final samples per problem (the fewest, where they differ)
    reference: bool = False  # a best-of-K run that some variant is matched against
    curve_only: bool = False  # run only as a point of the best-of-K curve (not asked for)
    problems: list[dict] = field(default_factory=list)
    outcomes: dict[tuple[int, str], bool] = field(default_factory=dict, repr=False)

    def point(self) -> Point:
        k = int(self.params.get("k", 0)) if self.strategy == REFERENCE else 0
        return Point(self.label, self.nfe_per_problem,
                     {key: float(v) for key, v in self.outcomes.items()}, k)


@dataclass
class Report:
    title: str
    rows: list[Row]
    matches: list[Matched]
    notes: list[str] = field(default_factory=list)
    context: dict = field(default_factory=dict)  # task / data file, model, split, problems, seeds

    def row(self, label: str) -> Row:
        return next(r for r in self.rows if r.label == label)


# -- building ---------------------------------------------------------------------------------
def _group_key(run: RunRecord) -> str:
    config = {k: v for k, v in run.config.items() if k != "seed"}
    return json.dumps([config, run.data_hash], sort_keys=True, default=str)


def _labels(groups: list[list[RunRecord]]) -> list[str]:
    """Strategy name plus the params/decode settings that tell same-named variants apart
    (best-of-K always shows its K)."""
    by_name: dict[str, list[int]] = defaultdict(list)
    for i, g in enumerate(groups):
        by_name[g[0].strategy].append(i)
    labels = [g[0].strategy for g in groups]
    for name, members in by_name.items():
        settings = []
        for i in members:
            c = groups[i][0].config
            d = {**{k: c.get("decode", {}).get(k) for k in _LABEL_DECODE}, **c.get("params", {})}
            settings.append(d)
        keys = sorted({k for s in settings for k in s
                       if any(t.get(k) != s.get(k) for t in settings)})
        if name == REFERENCE and "k" not in keys:
            keys.insert(0, "k")
        for i, s in zip(members, settings):
            shown = [f"{k}={s[k]}" for k in keys if k in s]
            labels[i] = " ".join([name, *shown])
    seen: dict[str, int] = defaultdict(int)
    for label in labels:
        seen[label] += 1
    return [f"{lab} #{g[0].id}" if seen[lab] > 1 else lab for lab, g in zip(labels, groups)]


def variants_from_runs(store: Store, runs: list[RunRecord]) -> list[Variant]:
    """Pool runs that differ only by seed; keep the order in which configurations first appear."""
    groups: dict[str, list[RunRecord]] = {}
    for run in runs:
        groups.setdefault(_group_key(run), []).append(run)
    ordered = list(groups.values())
    out = []
    for label, group in zip(_labels(ordered), ordered):
        trials = [(run.seed, s) for run in group for s in store.run_results(run)]
        out.append(Variant(label, group, trials))
    return out


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _problem_rows(v: Variant) -> list[dict]:
    """One row per problem: gold, the chosen answers (per seed), mean correctness and forwards."""
    by_id: dict[str, list[tuple[int, StoredResult]]] = defaultdict(list)
    for seed, s in v.trials:
        by_id[s.result.id].append((seed, s))
    rows = []
    for pid, items in by_id.items():
        r0 = items[0][1].result
        rows.append({
            "id": pid, "gold": r0.answer,
            "predictions": {str(seed): s.result.prediction for seed, s in items},
            "correct": sum(s.result.correct for _, s in items) / len(items),
            "forwards": sum(s.result.nfe for _, s in items) / len(items),
            "score": _mean([s.result.score for _, s in items if s.result.score is not None
                            and math.isfinite(s.result.score)]),
        })
    return rows


def row_of(v: Variant) -> Row:
    results = [s for _, s in v.trials]
    n = len(results)
    n_problems = len(v.first.problem_keys)
    correct = sum(s.result.correct for s in results)
    nfe = sum(s.result.nfe for s in results) / max(n, 1)
    single = int(v.first.meta.get("single_nfe") or v.first.config["decode"]["steps"])
    wall = sum(s.wall_s for s in results)
    gen = int(v.first.config["decode"]["gen_length"])
    sizes = [len(s.result.particles) for s in results if s.result.particles]
    ks = powers_of_two(min(sizes)) if sizes and len(sizes) == n else []
    pak = {k: sum(pass_at_k(len(s.particle_correct), sum(s.particle_correct), k)
                  for s in results) / n for k in ks}
    mak = {k: sum(maj_at_k(s.result.particles, s.particle_correct, k) for s in results) / n
           for k in ks}
    scores = [p.score for s in results for p in s.result.particles
              if p.score is not None and math.isfinite(p.score)]
    proposed = sum(s.result.proposed for s in results)
    verifiers = v.first.config.get("verifiers", {})
    return Row(
        label=v.label, strategy=v.strategy, params=v.params, runs=[r.short for r in v.runs],
        seeds=sorted({r.seed for r in v.runs}), n_problems=n_problems, trials=n,
        correct=correct, accuracy=correct / max(n, 1),
        # seeds of one problem are not independent trials: n is the number of problems
        ci=wilson(correct / max(n, 1) * n_problems, n_problems),
        nfe_per_problem=nfe, predicted_nfe_per_problem=v.first.meta.get("predicted_nfe"),
        single_nfe=single, tokens_per_s=n * gen / wall if wall > 0 else 0.0, wall_s=wall,
        peak_mb=max((s.peak_mb for s in results), default=0.0), pass_at_k=pak, maj_at_k=mak,
        mean_score=_mean(scores),
        verifier=" ; ".join(f"{k}={d}" for k, d in sorted(verifiers.items())) or "-",
        diversity=_mean([float(distinct_answers(s.result.particles)) for s in results]) or 0.0,
        ess=_mean([s.result.min_ess for s in results if s.result.min_ess is not None]),
        acceptance=sum(s.result.accepted for s in results) / proposed if proposed else None,
        samples=min(sizes, default=0), problems=_problem_rows(v),
        outcomes={(seed, s.result.id): bool(s.result.correct) for seed, s in v.trials},
    )


def comparable(a: RunRecord, b: RunRecord, seeds_a: set[int], seeds_b: set[int]) -> bool:
    """Same task, problems, model, plan level and decode schedule: runs whose outcomes pair."""
    ca, cb = a.config, b.config
    same = ("task", "opt_level", "extractor")
    return (all(ca.get(k) == cb.get(k) for k in same)
            and ca["model"] == cb["model"] and a.data_hash == b.data_hash
            and seeds_a == seeds_b
            and all(ca["decode"][k] == cb["decode"][k]
                    for k in ("gen_length", "steps", "block_length")))


def _reference_points(v: Variant, variants: list[Variant], rows: list[Row]) -> list[Row]:
    """The best-of-K rows comparable with `v`; ones at v's temperature first (curve keeps the
    first per K)."""
    seeds = {r.seed for r in v.runs}
    refs = [r for w, r in zip(variants, rows) if w.strategy == REFERENCE
            and comparable(v.first, w.first, seeds, {x.seed for x in w.runs})]
    temperature = v.first.config["decode"].get("temperature")
    return sorted(refs, key=lambda r: r.params.get("temperature", temperature) != temperature)


def build_report(title: str, variants: list[Variant], notes: list[str] | None = None,
                 context: dict | None = None, added: set[str] | None = None) -> Report:
    """Metric rows; every variant against the best-of-K curve at its measured forwards (not
    best-of-K variants: they are the curve) and against the first variant. `added`: keys of
    runs that are there only as curve points (kept out of the comparison table)."""
    rows = [row_of(v) for v in variants]
    for v, row in zip(variants, rows):
        row.curve_only = bool(added) and all(r.key in added for r in v.runs)
    matches = []
    first = rows[0].point() if rows else None
    for i, (v, row) in enumerate(zip(variants, rows)):
        refs = [] if v.strategy == REFERENCE else _reference_points(v, variants, rows)
        m = match(row.point(), [r.point() for r in refs], first if i else None)
        if v.strategy == REFERENCE:
            m = Matched(m.variant, m.forwards, "reference", vs_first=m.vs_first)
        for r in refs:
            r.reference = r.reference or int(r.params.get("k", 0)) in (m.k_lo, m.k_hi)
        matches.append(m)
    return Report(title, rows, matches, list(notes or []), dict(context or {}))


# -- JSON -------------------------------------------------------------------------------------
def best_marks(report: Report) -> dict[str, set[str]]:
    """For each column, the labels of the rows holding its best value (ties share the mark);
    no mark where fewer than two rows have a value. `mean score` is compared only between rows
    scored by the same verifier."""
    getters: list[tuple[str, Any, int]] = [
        ("accuracy", lambda r: r.accuracy, 1),
        ("forwards / problem", lambda r: r.nfe_per_problem, -1),
        ("tokens/s", lambda r: r.tokens_per_s, 1),
        ("wall (total)", lambda r: r.wall_s, -1),
        ("peak memory", lambda r: r.peak_mb, -1),
        ("distinct answers", lambda r: r.diversity, 1),
        ("ESS", lambda r: r.ess, 1),
        ("acceptance", lambda r: r.acceptance, 1),
    ]
    for k in sorted({k for r in report.rows for k in r.pass_at_k}):
        getters.append((f"pass@{k}", lambda r, k=k: r.pass_at_k.get(k), 1))
        getters.append((f"maj@{k}", lambda r, k=k: r.maj_at_k.get(k), 1))
    marks: dict[str, set[str]] = {}
    for name, get, sign in getters:
        marks[name] = _winners([(r.label, get(r)) for r in report.rows], sign)
    by_verifier: dict[str, list[tuple[str, float | None]]] = defaultdict(list)
    for r in report.rows:
        by_verifier[r.verifier].append((r.label, r.mean_score))
    marks["mean score"] = set().union(*[_winners(v, 1) for v in by_verifier.values()])
    return marks


def _winners(values: list[tuple[str, float | None]], sign: int) -> set[str]:
    have = [(lab, v) for lab, v in values if v is not None]
    if len(have) < 2:
        return set()
    best = max(sign * round(v, 9) for _, v in have)
    winners = {lab for lab, v in have if sign * round(v, 9) == best}
    return winners if len(winners) < len(have) else set()


def accuracy_estimate(r: Row) -> Estimate:
    return Estimate(r.accuracy, r.ci[0], r.ci[1])


def to_json(report: Report) -> dict[str, Any]:
    """Numbers as numbers: accuracies and differences as {value, lo, hi, p}."""
    marks = best_marks(report)
    rows = []
    for r in report.rows:
        d = {k: v for k, v in r.__dict__.items() if k not in ("outcomes", "ci", "accuracy")}
        d["accuracy"] = accuracy_estimate(r).to_json()
        d["pass_at_k"] = {str(k): v for k, v in r.pass_at_k.items()}
        d["maj_at_k"] = {str(k): v for k, v in r.maj_at_k.items()}
        d["best_in"] = sorted(c for c, labels in marks.items() if r.label in labels)
        rows.append(d)
    return {"title": report.title, "context": report.context, "variants": rows,
            "compute_matched": [m.to_json() for m in report.matches], "notes": report.notes}
