"""A report as tables for people: rich (terminal) and Markdown, from the same cells."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from s3dsl.matching import Matched, Paired
from s3dsl.report import Report, Row, best_marks

LEGEND = ("Bold: best in its column (no mark when all tie; mean score only among rows of the "
          "same verifier). 95% CI of an accuracy: Wilson, over problems (seeds averaged per "
          "problem). Compute matching: best-of-K interpolated at the strategy's *measured* "
          "forwards per problem, between the K runs that bracket it; its accuracy's 95% CI: Wilson "
          "on the interpolated success count over problems (the same weights; conservative "
          "where the two runs disagree); Δ's 95% CI: paired "
          "bootstrap over problems; p: McNemar exact (with several seeds: the exact sign test over "
          "problems on seed-averaged outcomes), against the bracketing best-of-K run that "
          "spent at least as much when the strategy is ahead, at most as much when behind "
          "(W/L: its discordant pairs). K '< 1': cheaper than one decode; '> K': above the "
          "dearest best-of-K run (compared with it); 'none comparable': no best-of-K run on the "
          "same problems, seeds and decode schedule (gen_length, steps, block_length).")


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _num(x: float | None, fmt: str = ".2f") -> str:
    return "-" if x is None else format(x, fmt)


def _p(p: float | None) -> str:
    return "-" if p is None else ("<0.001" if p < 0.001 else f"{p:.3f}")


def _delta(d: Paired | None) -> str:
    if d is None:
        return "-"
    e = d.difference
    return f"{100 * e.value:+.1f} [{100 * e.lo:+.1f}, {100 * e.hi:+.1f}]" if e.lo is not None \
        else f"{100 * e.value:+.1f}"


def main_cells(r: Row) -> dict[str, str]:
    return {
        "variant": r.label + (" (ref)" if r.reference else ""),
        "problems x seeds": f"{r.n_problems}x{len(r.seeds)}",
        "accuracy": f"{100 * r.accuracy:.1f}%",
        "95% CI": f"{100 * r.ci[0]:.1f}-{100 * r.ci[1]:.1f}",
        "forwards / problem": f"{r.nfe_per_problem:,.1f}",
        "predicted forwards / problem (upper bound)":
            "-" if r.predicted_nfe_per_problem is None else f"{r.predicted_nfe_per_problem:,}",
        "tokens/s": f"{r.tokens_per_s:,.1f}",
        "wall (total)": f"{r.wall_s:.1f}s",
        "peak memory": f"{r.peak_mb:,.0f} MB",
    }


def search_cells(r: Row) -> dict[str, str]:
    return {
        "variant": r.label,
        "verifier": r.verifier,
        "mean score": _num(r.mean_score, ".3f"),
        "distinct answers": _num(r.diversity, ".2f"),
        "ESS": _num(r.ess, ".2f"),
        "acceptance": _pct(r.acceptance),
    }


def k_cells(ks: list[int], r: Row) -> dict[str, str]:
    cells = {"variant": r.label}
    cells.update({f"pass@{k}": _pct(r.pass_at_k.get(k)) for k in ks})
    cells.update({f"maj@{k}": _pct(r.maj_at_k.get(k)) for k in ks})
    return cells


def match_cells(report: Report, m: Matched) -> dict[str, str]:
    v = report.row(m.variant)
    first = report.rows[0].label
    curve = m.vs_curve
    ref_ci = "-"
    if m.position == "reference":
        k_text, ref_acc = "(is the curve)", "-"
    elif m.position == "none":
        k_text, ref_acc = "none comparable", "-"
    else:
        k_text, ref_acc = m.k_range, _pct(m.reference_accuracy)
        if m.reference_ci is not None:
            ref_ci = f"{100 * m.reference_ci[0]:.1f}-{100 * m.reference_ci[1]:.1f}"
    return {
        "variant": v.label,
        "fwd/problem": f"{v.nfe_per_problem:,.1f}",
        "accuracy": f"{100 * v.accuracy:.1f}%",
        "best-of-K: K": k_text,
        "its accuracy": ref_acc,
        "its 95% CI": ref_ci,
        "Δ pts [95% CI]": _delta(curve),
        "p": _p(curve.difference.p) if curve else "-",
        "W/L": f"{curve.wins}/{curve.losses}" if curve else "-",
        f"Δ vs {first}": _delta(m.vs_first),
        f"p vs {first}": _p(m.vs_first.difference.p) if m.vs_first else "-",
    }


def shown_matches(report: Report) -> list[Matched]:
    """Every variant's match except best-of-K runs that are only there as the curve."""
    return [m for m in report.matches if not report.row(m.variant).curve_only]


def problem_cells(report: Report) -> list[dict[str, str]]:
    """One row per problem: gold, then each variant's answer (first seed) and ✓/✗ (or the share
    of seeds right)."""
    by_id: dict[str, dict[str, str]] = {}
    for r in report.rows:
        for p in r.problems:
            cells = by_id.setdefault(p["id"], {"problem": p["id"], "gold": str(p["gold"])})
            mark = "✓" if p["correct"] == 1 else "✗" if p["correct"] == 0 else \
                f"{100 * p['correct']:.0f}%"
            answer = next(iter(p["predictions"].values()), None)
            cells[r.label] = f"{mark} {answer if answer is not None else '∅'}"
    return [{**{"problem": "", "gold": ""}, **{r.label: "-" for r in report.rows}, **c}
            for c in by_id.values()]


def tables(report: Report, with_problems: bool) -> list[tuple[str, list[dict[str, str]], list]]:
    """(title, rows of cells, the label of each row for best-marking or None)."""
    labels = [r.label for r in report.rows]
    ks = sorted({k for r in report.rows for k in r.pass_at_k})
    out: list[tuple[str, list[dict[str, str]], list]] = [
        ("variants (accuracy and forwards per problem; wall summed over all problems)",
         [main_cells(r) for r in report.rows], labels),
        ("search diagnostics (per problem, over its final samples)",
         [search_cells(r) for r in report.rows], labels)]
    if ks:
        out.append(("pass@k and maj@k (per problem, over its final samples)",
                    [k_cells(ks, r) for r in report.rows], labels))
    matches = shown_matches(report)
    if matches:
        out.append(("compute-matched on measured forwards: each variant vs best-of-K there, "
                    f"and vs {labels[0]}", [match_cells(report, m) for m in matches],
                    [None] * len(matches)))
    if with_problems and report.rows:
        rows = problem_cells(report)
        out.append(("per problem (answer of the first seed; ✓ right, ✗ wrong, % of seeds right)",
                    rows, [None] * len(rows)))
    return out


def to_rich(report: Report) -> Group:
    marks = best_marks(report)
    parts: list[Any] = [Text(report.title, style="bold")]
    for title, rows, labels in tables(report, with_problems=False):
        table = Table(title=title)
        for i, col in enumerate(rows[0]):
            table.add_column(col, justify="left" if i == 0 else "right")
        for cells, label in zip(rows, labels):
            table.add_row(*[
                Text(v, style="bold green") if label in marks.get(c, ()) else Text(v)
                for c, v in cells.items()
            ])
        parts.append(table)
    parts.append(Text(LEGEND.replace("Bold:", "bold green:"), style="dim"))
    parts.extend(Text(f"note: {n}", style="yellow") for n in report.notes)
    return Group(*parts)


def to_markdown(report: Report) -> str:
    marks = best_marks(report)
    lines = [f"# {report.title}", ""]
    for title, rows, labels in tables(report, with_problems=True):
        lines += [f"## {title}", ""]
        cols = list(rows[0])
        lines.append("| " + " | ".join(cols) + " |")
        lines.append("|" + "|".join(["---"] + ["---:"] * (len(cols) - 1)) + "|")
        for cells, label in zip(rows, labels):
            vals = [f"**{v}**" if label in marks.get(c, ()) else v for c, v in cells.items()]
            lines.append("| " + " | ".join(v.replace("|", "\\|") for v in vals) + " |")
        lines.append("")
    lines.append(LEGEND)
    lines += [""] + [f"- note: {n}" for n in report.notes]
    return "\n".join(lines).rstrip() + "\n"
