"""PNG plots of a report (optional: needs the `plots` extra, i.e. matplotlib).

Accuracy vs measured forwards shows whether a search strategy sits above the best-of-K curve at
its compute (a dotted stem joins each strategy to the curve at its forwards); variants of one
strategy (a sweep) are joined into one curve. Pass@k vs k shows the quality/exploration trade-off
(a flat curve explores little); strategies are drawn with distinct markers and line styles and a
small horizontal offset, so equal values do not hide one another.
"""

from __future__ import annotations

import textwrap
from collections import defaultdict
from pathlib import Path

from s3dsl.report import REFERENCE, Report, Row

SKIPPED = "plots skipped: matplotlib not installed"
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
_STYLES = ("-", "--", "-.", ":")


def have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _curves(report: Report) -> tuple[list[Row], dict[str, list[Row]]]:
    """The best-of-K rows (by forwards) and every other strategy's rows (by forwards)."""
    refs = sorted((r for r in report.rows if r.strategy == REFERENCE),
                  key=lambda r: r.nfe_per_problem)
    others: dict[str, list[Row]] = defaultdict(list)
    for r in report.rows:
        if r.strategy != REFERENCE:
            others[r.strategy].append(r)
    return refs, {k: sorted(v, key=lambda r: r.nfe_per_problem) for k, v in others.items()}


def _x_axis(ax, values: list[float]) -> None:
    """Linear when the forwards span less than 8x; else log2 with the plotted values as
    labelled ticks (never a lone '2^6')."""
    from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter

    lo, hi = min(values), max(values)
    if lo > 0 and hi / lo >= 8:
        ax.set_xscale("log", base=2)
        ticks = sorted({round(v) for v in values})
        shown = [t for i, t in enumerate(ticks) if i == 0 or t >= 1.25 * ticks[i - 1]]
        ax.xaxis.set_major_locator(FixedLocator(shown))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_locator(NullLocator())


def _err(r: Row) -> list[list[float]]:
    return [[max(0.0, 100 * (r.accuracy - r.ci[0]))], [max(0.0, 100 * (r.ci[1] - r.accuracy))]]


def accuracy_plot(report: Report, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    refs, others = _curves(report)
    fig, ax = plt.subplots(figsize=(8.4, 4.6))
    if refs:
        xs, ys = [r.nfe_per_problem for r in refs], [100 * r.accuracy for r in refs]
        ax.plot(xs, ys, "-", color="grey", linewidth=2, alpha=0.7, zorder=1,
                label="best-of-K (measured forwards)")
        ax.fill_between(xs, [100 * r.ci[0] for r in refs], [100 * r.ci[1] for r in refs],
                        color="grey", alpha=0.08, linewidth=0, zorder=0)
        beyond = [m.forwards for m in report.matches if m.position == "above"]
        if beyond:  # compared with the dearest run: its level, drawn flat, not a measurement
            ax.plot([xs[-1], max(beyond)], [ys[-1]] * 2, ":", color="grey", linewidth=1.5,
                    label=f"best-of-K stopped at K={refs[-1].params.get('k')} (its level)")
        for r in refs:
            ax.annotate(f"K={r.params.get('k')}", (r.nfe_per_problem, 100 * r.accuracy),
                        textcoords="offset points", xytext=(0, -12), ha="center", fontsize=7,
                        color="dimgrey")
    matched = {m.variant: m for m in report.matches}
    for i, (name, rows) in enumerate(others.items()):
        xs, ys = [r.nfe_per_problem for r in rows], [100 * r.accuracy for r in rows]
        label = rows[0].label if len(rows) == 1 else f"{name} (sweep: {len(rows)} settings)"
        line = ax.errorbar(xs, ys, yerr=[sum((_err(r)[j] for r in rows), []) for j in (0, 1)],
                           fmt=_MARKERS[i % len(_MARKERS)] + "-", capsize=3, label=label,
                           zorder=3, elinewidth=0.8, markersize=6)
        color = line.lines[0].get_color()
        for j, r in enumerate(rows):
            m = matched.get(r.label)
            if m is not None and m.reference_accuracy is not None:
                ax.plot([r.nfe_per_problem] * 2, [100 * r.accuracy, 100 * m.reference_accuracy],
                        ":", color=color, linewidth=1.5, zorder=2)
                ax.plot([r.nfe_per_problem], [100 * m.reference_accuracy], "o", mfc="white",
                        mec=color, markersize=9, zorder=2.5)
            if len(rows) > 1:
                shown = " ".join(f"{k}={v}" for k, v in r.params.items()
                                 if any(o.params.get(k) != v for o in rows))
                ax.annotate(shown, (r.nfe_per_problem, 100 * r.accuracy), fontsize=6,
                            textcoords="offset points", xytext=(5, 6 if j % 2 == 0 else -10),
                            color=color)
    every = [r.nfe_per_problem for r in report.rows]
    if every:
        _x_axis(ax, every)
    ax.set_xlabel("forward passes per problem (measured)")
    ax.set_ylabel("accuracy (%), 95% Wilson interval")
    ax.set_title(textwrap.fill(report.title, 95), fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.text(0.99, 0.01, "open circle on a dotted stem: best-of-K interpolated at the "
             "strategy's forwards",
             fontsize=6, color="grey", ha="right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def pass_at_k_plot(report: Report, path: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter

    rows = [r for r in report.rows if r.pass_at_k]
    # best-of-K runs all draw the same i.i.d. samples: the one with the most shows them all
    refs = [r for r in rows if r.strategy == REFERENCE]
    if refs:
        most = max(refs, key=lambda r: r.samples)
        rows = [r for r in rows if r.strategy != REFERENCE or r is most]
    if not rows:
        return False
    fig, ax = plt.subplots(figsize=(8.4, 4.6))
    ks = sorted({k for r in rows for k in r.pass_at_k})
    for i, r in enumerate(rows):
        shift = 2 ** ((i - (len(rows) - 1) / 2) * 0.025)  # dodge: equal values stay visible
        xs = sorted(r.pass_at_k)
        ax.plot([k * shift for k in xs], [100 * r.pass_at_k[k] for k in xs],
                marker=_MARKERS[i % len(_MARKERS)], linestyle=_STYLES[i % len(_STYLES)],
                markersize=6 if i % 2 == 0 else 4, alpha=0.9,
                label=f"{r.label} ({r.samples} sample{'s' if r.samples != 1 else ''})")
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(FixedLocator(ks))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("k (samples drawn from each problem's final samples)")
    ax.set_ylabel("pass@k (%), unbiased estimator")
    ax.set_title(textwrap.fill(report.title, 95), fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def write_plots(report: Report, out: Path) -> list[Path]:
    """Write accuracy_vs_forwards.png and pass_at_k.png into `out`; the written paths."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "accuracy_vs_forwards.png"]
    accuracy_plot(report, written[0])
    if pass_at_k_plot(report, out / "pass_at_k.png"):
        written.append(out / "pass_at_k.png")
    return written
