"""Comparison reports: stored runs -> variants -> metric rows -> rich, Markdown and JSON.

A *variant* is a configuration run on the same problems for one or more seeds (runs that differ
only by seed are pooled). Everything here is computed from stored results, so `s3dsl report`
re-renders a comparison without running a model. The compute-matched reference of a variant is
the best-of-K run whose K = round(its forward passes per problem / those of one decode).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from s3dsl.metrics import distinct_answers, maj_at_k, pass_at_k, powers_of_two, wilson
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
    """The metrics of one variant (None where a metric does not apply)."""

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
    single_nfe: int
    matched_k: int
    tokens_per_s: float
    wall_s: float
    peak_mb: float
    pass_at_k: dict[int, float]
    maj_at_k: dict[int, float]
    mean_score: float | None
    diversity: float
    ess: float | None
    acceptance: float | None
    samples: int = 0  # final samples per problem (the fewest, where they differ)
    reference: bool = False
    outcomes: dict[tuple[int, str], bool] = field(default_factory=dict, repr=False)


@dataclass
class Match:
    variant: str
    reference: str | None
    k: int


@dataclass
class Report:
    title: str
    rows: list[Row]
    matches: list[Match]
    notes: list[str] = field(default_factory=list)

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


def row_of(v: Variant) -> Row:
    results = [s for _, s in v.trials]
    n = len(results)
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
    return Row(
        label=v.label, strategy=v.strategy, params=v.params, runs=[r.short for r in v.runs],
        seeds=sorted({r.seed for r in v.runs}), n_problems=len(v.first.problem_keys), trials=n,
        correct=correct, accuracy=correct / max(n, 1),
        # seeds of one problem are not independent trials: n is the number of problems
        ci=wilson(correct / max(n, 1) * len(v.first.problem_keys), len(v.first.problem_keys)),
        nfe_per_problem=nfe, single_nfe=single, matched_k=max(1, round(nfe / single)),
        tokens_per_s=n * gen / wall if wall > 0 else 0.0, wall_s=wall,
        peak_mb=max((s.peak_mb for s in results), default=0.0), pass_at_k=pak, maj_at_k=mak,
        mean_score=_mean(scores),
        diversity=_mean([float(distinct_answers(s.result.particles)) for s in results]) or 0.0,
        ess=_mean([s.result.min_ess for s in results if s.result.min_ess is not None]),
        acceptance=sum(s.result.accepted for s in results) / proposed if proposed else None,
        samples=min(sizes, default=0),
        outcomes={(seed, s.result.id): bool(s.result.correct) for seed, s in v.trials},
    )


def _comparable(a: Variant, b: Variant) -> bool:
    ca, cb = a.first.config, b.first.config
    same = ("task", "opt_level", "extractor")
    return (all(ca.get(k) == cb.get(k) for k in same)
            and ca["model"] == cb["model"] and a.first.data_hash == b.first.data_hash
            and {r.seed for r in a.runs} == {r.seed for r in b.runs}
            and all(ca["decode"][k] == cb["decode"][k]
                    for k in ("gen_length", "steps", "block_length")))


def build_report(title: str, variants: list[Variant], notes: list[str] | None = None) -> Report:
    """Metric rows, and for every non-reference variant its compute-matched best-of-K."""
    rows = [row_of(v) for v in variants]
    matches = []
    for v, row in zip(variants, rows):
        if v.strategy == REFERENCE:
            continue
        candidates = [(w, r) for w, r in zip(variants, rows) if w.strategy == REFERENCE
                      and int(w.params.get("k", -1)) == row.matched_k and _comparable(v, w)]
        same_t = [c for c in candidates
                  if c[0].params.get("temperature") == v.params.get("temperature")]
        pick = (same_t or candidates or [None])[0]
        if pick is not None:
            pick[1].reference = True
        matches.append(Match(row.label, pick[1].label if pick else None, row.matched_k))
    return Report(title, rows, matches, list(notes or []))


# -- best-in-column ---------------------------------------------------------------------------
def _columns(report: Report) -> list[tuple[str, Any, int]]:
    """(name, getter, direction): +1 higher is better, -1 lower is better."""
    cols: list[tuple[str, Any, int]] = [
        ("accuracy", lambda r: r.accuracy, 1),
        ("forward passes / problem", lambda r: r.nfe_per_problem, -1),
        ("tokens/s", lambda r: r.tokens_per_s, 1),
        ("wall", lambda r: r.wall_s, -1),
        ("peak memory", lambda r: r.peak_mb, -1),
        ("mean score", lambda r: r.mean_score, 1),
        ("distinct answers", lambda r: r.diversity, 1),
        ("ESS", lambda r: r.ess, 1),
        ("acceptance", lambda r: r.acceptance, 1),
    ]
    return cols


def _ks(report: Report) -> list[int]:
    return sorted({k for r in report.rows for k in r.pass_at_k})


def best_marks(report: Report) -> dict[str, set[str]]:
    """For each column, the labels of the rows holding its best value (ties share the mark);
    no mark where fewer than two rows have a value."""
    getters = _columns(report)
    for k in _ks(report):
        getters.append((f"pass@{k}", lambda r, k=k: r.pass_at_k.get(k), 1))
        getters.append((f"maj@{k}", lambda r, k=k: r.maj_at_k.get(k), 1))
    marks: dict[str, set[str]] = {}
    for name, get, sign in getters:
        values = [(r.label, get(r)) for r in report.rows if get(r) is not None]
        if len(values) < 2:
            marks[name] = set()
            continue
        best = max(sign * round(v, 9) for _, v in values)
        winners = {lab for lab, v in values if sign * round(v, 9) == best}
        marks[name] = winners if len(winners) < len(values) else set()
    return marks


# -- cells ------------------------------------------------------------------------------------
def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _num(x: float | None, fmt: str = ".2f") -> str:
    return "-" if x is None else format(x, fmt)


def _acc(r: Row) -> str:
    return f"{100 * r.accuracy:.1f}% [{100 * r.ci[0]:.1f}, {100 * r.ci[1]:.1f}]"


def main_cells(r: Row) -> dict[str, str]:
    return {
        "variant": r.label + (" (ref)" if r.reference else ""),
        "n": f"{r.n_problems}x{len(r.seeds)}" if len(r.seeds) > 1 else str(r.trials),
        "accuracy": f"{100 * r.accuracy:.1f}%",
        "95% CI": f"{100 * r.ci[0]:.1f}-{100 * r.ci[1]:.1f}",
        "forward passes / problem": f"{r.nfe_per_problem:,.1f}",
        "≈K": str(r.matched_k),
        "tokens/s": f"{r.tokens_per_s:,.1f}",
        "wall": f"{r.wall_s:.1f}s",
        "peak memory": f"{r.peak_mb:,.0f} MB",
    }


def search_cells(r: Row) -> dict[str, str]:
    return {
        "variant": r.label,
        "mean score": _num(r.mean_score, ".3f"),
        "distinct answers": _num(r.diversity, ".2f"),
        "ESS": _num(r.ess, ".2f"),
        "acceptance": _pct(r.acceptance),
    }


def k_cells(report: Report, r: Row) -> dict[str, str]:
    cells = {"variant": r.label}
    for k in _ks(report):
        cells[f"pass@{k}"] = _pct(r.pass_at_k.get(k))
    for k in _ks(report):
        cells[f"maj@{k}"] = _pct(r.maj_at_k.get(k))
    return cells


def match_cells(report: Report, m: Match) -> dict[str, str]:
    v = report.row(m.variant)
    if m.reference is None:
        return {"variant": v.label, "forward passes / problem": f"{v.nfe_per_problem:,.1f}",
                "accuracy": _acc(v), "best-of-K": f"K={m.k}: not run", "its forward passes": "-",
                "its accuracy": "-", "Δ accuracy": "-", "wins / losses": "-"}
    ref = report.row(m.reference)
    keys = v.outcomes.keys() & ref.outcomes.keys()
    wins = sum(v.outcomes[k] and not ref.outcomes[k] for k in keys)
    losses = sum(ref.outcomes[k] and not v.outcomes[k] for k in keys)
    return {
        "variant": v.label, "forward passes / problem": f"{v.nfe_per_problem:,.1f}",
        "accuracy": _acc(v), "best-of-K": f"K={m.k}", "its forward passes":
        f"{ref.nfe_per_problem:,.1f}", "its accuracy": _acc(ref),
        "Δ accuracy": f"{100 * (v.accuracy - ref.accuracy):+.1f} pts",
        "wins / losses": f"{wins} / {losses}",
    }


def _tables(report: Report) -> list[tuple[str, list[dict[str, str]], list[str | None]]]:
    """(title, rows of cells, the label of each row for best-marking or None)."""
    labels = [r.label for r in report.rows]
    out = [("variants", [main_cells(r) for r in report.rows], labels),
           ("search diagnostics (per problem, over its final samples)",
            [search_cells(r) for r in report.rows], labels)]
    if _ks(report):
        out.append(("pass@k and maj@k (per problem, over its final samples)",
                    [k_cells(report, r) for r in report.rows], [r.label for r in report.rows]))
    if report.matches:
        out.append(("compute-matched: each variant vs best-of-K at its forward passes",
                    [match_cells(report, m) for m in report.matches],
                    [None] * len(report.matches)))
    return out


# -- renderings -------------------------------------------------------------------------------
def to_rich(report: Report) -> Group:
    marks = best_marks(report)
    parts: list[Any] = [Text(report.title, style="bold")]
    for title, rows, labels in _tables(report):
        table = Table(title=title)
        for i, col in enumerate(rows[0]):
            table.add_column(col, justify="left" if i == 0 else "right")
        for cells, label in zip(rows, labels):
            table.add_row(*[
                Text(v, style="bold green") if label in marks.get(c, ()) else Text(v)
                for c, v in cells.items()
            ])
        parts.append(table)
    parts.append(Text("bold green: best in its column (no mark when all tie); 95% CI: Wilson, over "
                      "problems (seeds averaged per problem); ≈K: forward passes in units of one "
                      "decode", style="dim"))
    parts.extend(Text(f"note: {n}", style="yellow") for n in report.notes)
    return Group(*parts)


def to_markdown(report: Report) -> str:
    marks = best_marks(report)
    lines = [f"# {report.title}", ""]
    for title, rows, labels in _tables(report):
        lines += [f"## {title}", ""]
        cols = list(rows[0])
        lines.append("| " + " | ".join(cols) + " |")
        lines.append("|" + "|".join(["---"] + ["---:"] * (len(cols) - 1)) + "|")
        for cells, label in zip(rows, labels):
            vals = [f"**{v}**" if label in marks.get(c, ()) else v for c, v in cells.items()]
            lines.append("| " + " | ".join(v.replace("|", "\\|") for v in vals) + " |")
        lines.append("")
    lines.append("Bold: best in its column (no mark when all tie). 95% CI: Wilson interval over "
                 "problems (seeds averaged per problem). "
                 "≈K: forward passes per problem in units of one decode.")
    lines += [""] + [f"- note: {n}" for n in report.notes]
    return "\n".join(lines).rstrip() + "\n"


def to_json(report: Report) -> dict[str, Any]:
    marks = best_marks(report)
    rows = []
    for r in report.rows:
        d = {k: v for k, v in r.__dict__.items() if k != "outcomes"}
        d["ci"] = list(r.ci)
        d["pass_at_k"] = {str(k): v for k, v in r.pass_at_k.items()}
        d["maj_at_k"] = {str(k): v for k, v in r.maj_at_k.items()}
        d["best_in"] = sorted(c for c, labels in marks.items() if r.label in labels)
        rows.append(d)
    matches = [dict(m.__dict__, **{"cells": match_cells(report, m)}) for m in report.matches]
    return {"title": report.title, "variants": rows, "compute_matched": matches,
            "notes": report.notes}
