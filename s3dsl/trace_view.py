"""Drawings of traces: an overview PNG, a timeline PNG per problem, and one HTML page with a
per-problem drill-down (prompt, gold, chosen answer, every particle's answer and score, win /
loss against the reference run).

Input is the document of `s3dsl.trace.export`: runs, each with problems, each with its trace.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

MAX_TIMELINES = 24  # per-problem PNGs drawn (the page lists every problem)
_SERIES = (("particles", "particles"), ("distinct_answers", "distinct answers"),
           ("score_mean", "score: mean\n(band: min-max)"), ("ess", "ESS / n\n(latest resample)"),
           ("forwards", "forwards spent"))


def _label(run: dict) -> str:
    shown = " ".join(f"{k}={v}" for k, v in run["params"].items())
    return f"{run['strategy']} seed {run['seed']}" + (f" ({shown})" if shown else "")


def _steps(trace: list[dict]) -> list[int]:
    return [t["step"] for t in trace]


_STYLES = ("-", "--", ":", "-.")


def _plot_series(ax, runs: list[tuple[str, list[dict]]], key: str, colors: list) -> None:
    """One line per run; line styles and widths differ so equal values do not hide a run."""
    for i, ((label, trace), color) in enumerate(zip(runs, colors)):
        style = {"linestyle": _STYLES[i % len(_STYLES)], "linewidth": 2.4 if i == 0 else 1.5}
        xs = _steps(trace)
        if key == "score_mean":
            pts = [(x, t["score_min"], t["score_mean"], t["score_max"]) for x, t in zip(xs, trace)
                   if t["score_mean"] is not None]
            if pts:
                x, lo, mid, hi = zip(*pts)
                ax.fill_between(x, lo, hi, color=color, alpha=0.18, linewidth=0)
                ax.plot(x, mid, color=color, label=label, marker="o" if len(x) < 3 else None,
                        markersize=4, **style)
            continue
        pts = [(x, t[key]) for x, t in zip(xs, trace) if t.get(key) is not None]
        if pts:
            ax.plot(*zip(*pts), color=color, label=label, marker="o" if len(pts) < 3 else None,
                    markersize=4, drawstyle="steps-post" if key != "forwards" else "default",
                    **style)
        if key == "particles":
            for ev, marker in (("resamples_events", "v"), ("remasks_events", "x"),
                               ("accepted_events", "+")):
                hits = [(x, t["particles"]) for x, t in zip(xs, trace) if t.get(ev)]
                if hits:
                    ax.plot(*zip(*hits), marker, color=color, markersize=4, linestyle="none")


def timeline(runs: list[tuple[str, list[dict]]], title: str, path: Path) -> None:
    """One problem (or a summary trace): every series against the step, one colour per run;
    on the particle panel ▼ marks a resample, x a remask, + an accepted proposal."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(_SERIES), 1, figsize=(8.0, 9.0), sharex=True)
    colors = [plt.get_cmap("tab10")(i % 10) for i in range(len(runs))]
    from matplotlib.ticker import MaxNLocator

    for ax, (key, name) in zip(axes, _SERIES):
        _plot_series(ax, runs, key, colors)
        ax.set_ylabel(name, fontsize=8)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
        ax.ticklabel_format(axis="y", useOffset=False, style="plain")
        if key in ("particles", "distinct_answers", "forwards"):
            ax.set_ylim(bottom=0)
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        if key == "ess":
            ax.set_ylim(0, 1.05)
    axes[-1].set_xlabel("denoising step (-1: init; last: final)", fontsize=8)
    axes[0].set_title(title, fontsize=9)
    handles, labels = [], []
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    if handles:
        fig.legend(handles, labels, loc="lower center", bbox_to_anchor=(0.5, 0.0), ncol=2,
                   fontsize=7, frameon=False)
    fig.text(0.99, 0.995, "particles panel: ▼ resample, x remask, + accept", ha="right",
             va="top", fontsize=6, color="grey")
    fig.savefig(path, dpi=100)
    plt.close(fig)


def summary_trace(problems: list[dict]) -> list[dict]:
    """The mean over problems at each step (problems of one run share the schedule)."""
    traces = [p["trace"] for p in problems if p.get("trace")]
    if not traces:
        return []
    out = []
    for i, first in enumerate(traces[0]):
        rows = [t[i] for t in traces if i < len(t)]
        rec: dict[str, Any] = {"step": first["step"]}
        for key in ("particles", "distinct_answers", "forwards", "score_min", "score_mean",
                    "score_max", "ess"):
            vals = [r[key] for r in rows if r.get(key) is not None]
            rec[key] = sum(vals) / len(vals) if vals else None
        out.append(rec)
    return out


def _diff(answer: object, gold: object) -> str:
    """The answer with the characters that differ from the gold one marked (same lengths)."""
    a, g = str(answer), str(gold)
    if answer is None or len(a) != len(g):
        return html.escape(a)
    return "".join(html.escape(x) if x == y else f"<b class='off'>{html.escape(x)}</b>"
                   for x, y in zip(a, g))


def _outcome(p: dict | None, short: bool = False) -> str:
    if p is None:
        return "-"
    mark = "✓ " if p["correct"] else "✗ "
    text = str(p["prediction"])
    if short and len(text) > 14:
        return mark + f"<span class='mono' title='{html.escape(text)}'>" \
            f"{html.escape(text[:12])}…</span>"
    return mark + f"<span class='mono'>{_diff(p['prediction'], p['gold'])}</span>"


def _versus(p: dict | None, ref: dict | None) -> str:
    if p is None or ref is None:
        return ""
    if p["correct"] and not ref["correct"]:
        return '<span class="win">win</span>'
    if ref["correct"] and not p["correct"]:
        return '<span class="loss">loss</span>'
    return "tie"


def _particles(p: dict) -> str:
    gold = p["gold"]
    rows = "".join(
        f"<tr class='{'ok' if q['correct'] else 'bad'}'><td>{i}</td>"
        f"<td class='mono'>{_diff(q['answer'], gold)}</td>"
        f"<td>{'-' if q['score'] is None else format(q['score'], '.3f')}</td>"
        f"<td>{'✓' if q['correct'] else '✗'}</td></tr>"
        for i, q in enumerate(p["particles"]))
    return ("<table class='particles'><tr><th>#</th><th>answer</th><th>score</th><th>right</th>"
            f"</tr>{rows}</table>")


def _short(text: object) -> str:
    t = str(text)
    return t if len(t) <= 14 else t[:12] + "…"


_CSS = """
body{font-family:system-ui,sans-serif;margin:24px;max-width:1200px;color:#222}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px}
th{background:#f2f2f2}.win{color:#067d17;font-weight:bold}.loss{color:#b00020;font-weight:bold}
tr.ok td{background:#eefbea}tr.bad td{background:#fdeeee}details{margin:6px 0}
summary{cursor:pointer;font-family:monospace}.cols{display:flex;gap:16px;flex-wrap:wrap}
.mono{font-family:monospace;word-break:break-all}img{max-width:100%;width:860px}
b.off{color:#b00020;background:#ffe0e0}.cols>div{max-width:560px}td.mono{white-space:nowrap}
"""


def write_page(doc: dict, out: Path, title: str, reference: dict[str, str] | None = None,
               max_timelines: int = MAX_TIMELINES) -> Path:
    """trace.json, overview.png, problem-N.png and index.html into `out`. `reference` maps a
    run (its short key) to the run it is judged against (win / loss per problem)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "trace.json").write_text(json.dumps(doc, indent=1))
    runs = doc["runs"]
    labels = [_label(r) for r in runs]
    by_run = {r["run"]: {p["id"]: p for p in r["problems"]} for r in runs}
    ids = list(dict.fromkeys(p["id"] for r in runs for p in r["problems"]))
    timeline([(lab, summary_trace(r["problems"])) for lab, r in zip(labels, runs)],
             f"{title}: mean over problems", out / "overview.png")
    reference = reference or {}
    head = "".join(f"<th>{html.escape(lab)}</th>" + ("<th>vs ref</th>" if r["run"] in reference
                                                       else "") for lab, r in zip(labels, runs))
    rows, details = [], []
    for n, pid in enumerate(ids):
        first = next(by_run[r["run"]][pid] for r in runs if pid in by_run[r["run"]])
        cells = []
        for r in runs:
            p = by_run[r["run"]].get(pid)
            cells.append(f"<td>{_outcome(p, short=True)}</td>")
            if r["run"] in reference:
                ref = by_run.get(reference[r["run"]], {}).get(pid)
                cells.append(f"<td>{_versus(p, ref)}</td>")
        rows.append(f"<tr><td><a href='#{html.escape(pid)}'>{html.escape(pid)}</a></td>"
                    f"<td class='mono'>{html.escape(_short(first['gold']))}</td>"
                    f"{''.join(cells)}</tr>")
        img = ""
        traced = [(lab, by_run[r["run"]][pid]["trace"]) for lab, r in zip(labels, runs)
                  if pid in by_run[r["run"]] and by_run[r["run"]][pid].get("trace")]
        if traced and n < max_timelines:
            timeline(traced, f"problem {pid}", out / f"problem-{n}.png")
            img = f"<img src='problem-{n}.png' alt='timeline of {html.escape(pid)}'>"
        blocks = "".join(
            f"<div><h4>{html.escape(lab)}: {_outcome(by_run[r['run']].get(pid))}</h4>"
            f"{_particles(by_run[r['run']][pid]) if pid in by_run[r['run']] else ''}</div>"
            for lab, r in zip(labels, runs))
        details.append(
            f"<details id='{html.escape(pid)}'{' open' if n == 0 else ''}>"
            f"<summary>{html.escape(pid)} — gold <span class='mono'>"
            f"{html.escape(str(first['gold']))}</span></summary>"
            f"<p>prompt: <span class='mono'>{html.escape(first['prompt'])}</span></p>"
            f"<div class='cols'>{blocks}</div>{img}</details>")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title><style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"
            "<p>Mean over problems of each run's search, step by step (particles panel: ▼ "
            "resample, x remask, + accept; best-of-K scores only at the end, so its score panel "
            "starts at the last step). In the drill-down, characters of an answer that differ "
            "from the gold answer are marked red.</p><img src='overview.png' alt='overview'>"
            f"<h2>Problems</h2><table><tr><th>problem</th><th>gold</th>{head}</tr>"
            f"{''.join(rows)}</table><h2>Drill-down</h2>{''.join(details)}</body></html>")
    path = out / "index.html"
    path.write_text(page)
    return path


def write_traces(store, runs: list, out: Path, title: str,
                 reference: dict[str, str] | None = None) -> Path:
    """Export the stored traces of `runs` and draw them into `out` (index.html is returned)."""
    from s3dsl.trace import export

    return write_page(export(store, runs), out, title, reference)
