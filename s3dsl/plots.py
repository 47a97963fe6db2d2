"""PNG plots of a report (optional: needs the `plots` extra, i.e. matplotlib).

Accuracy vs forward passes shows whether a search strategy sits above the best-of-K line at its
compute; pass@k vs k shows the quality/exploration trade-off (a flat curve explores little).
"""

from __future__ import annotations

from pathlib import Path

from s3dsl.report import REFERENCE, Report

SKIPPED = "plots skipped: matplotlib not installed"


def have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def write_plots(report: Report, out: Path) -> list[Path]:
    """Write accuracy_vs_forwards.png and pass_at_k.png into `out`; the written paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    written = []

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    refs = sorted((r for r in report.rows if r.strategy == REFERENCE),
                  key=lambda r: r.nfe_per_problem)
    if refs:
        ax.plot([r.nfe_per_problem for r in refs], [100 * r.accuracy for r in refs], "--",
                color="grey", label="best-of-K (reference)")
    for r in report.rows:
        err = [[max(0.0, 100 * (r.accuracy - r.ci[0]))], [max(0.0, 100 * (r.ci[1] - r.accuracy))]]
        ax.errorbar([r.nfe_per_problem], [100 * r.accuracy], yerr=err, fmt="o", capsize=3,
                    label=r.label)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("forward passes per problem")
    ax.set_ylabel("accuracy (%), 95% Wilson interval")
    ax.set_title(report.title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = out / "accuracy_vs_forwards.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    written.append(path)

    rows = [r for r in report.rows if r.pass_at_k]
    if rows:
        fig, ax = plt.subplots(figsize=(6.4, 4.4))
        for r in rows:
            ks = sorted(r.pass_at_k)
            ax.plot(ks, [100 * r.pass_at_k[k] for k in ks], "o-", label=r.label)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("k")
        ax.set_ylabel("pass@k (%)")
        ax.set_title(report.title, fontsize=9)
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = out / "pass_at_k.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)
    return written
