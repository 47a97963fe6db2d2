"""The commands `runs` and `report`: what the results store holds, listed, pruned, re-rendered."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from s3dsl.cli.app import app, console
from s3dsl.cli.compare import DbOpt, _emit
from s3dsl.errors import S3DSLError
from s3dsl.store import DEFAULT_DB, RunRecord, Store

_STORED_BY = "runs are stored by s3dsl run and s3dsl compare"


def _open(db: Path) -> Store:
    if not db.is_file():
        raise S3DSLError(f"no results database at {db}", hint=_STORED_BY)
    return Store(db)


def _when(created: float) -> str:
    return datetime.fromtimestamp(created).strftime("%Y-%m-%d %H:%M:%S")


@app.command("runs")
def runs_cmd(
    db: DbOpt = DEFAULT_DB,
    strategy: Annotated[str | None, typer.Option(help="Only runs of this strategy")] = None,
    task: Annotated[str | None, typer.Option(help="Only runs on this task (or data file stem)")]
    = None,
    model: Annotated[str | None, typer.Option(help="Only runs of this model")] = None,
    delete: Annotated[bool, typer.Option(help="Delete the listed runs (and results no other "
                                         "run uses)")] = False,
) -> None:
    """List the runs in the results database (filtered), or delete them. `source` is the content
    hash of the strategy file: two edited versions of one file differ there."""
    with _open(db) as store:
        runs = [r for r in store.runs()
                if (strategy is None or r.strategy == strategy)
                and (task is None or r.task == task) and (model is None or r.model == model)]
        if delete:
            if strategy is None and task is None and model is None:
                raise S3DSLError("--delete needs a filter (--strategy, --task or --model)",
                                 hint="to delete everything, remove the database file")
            removed = store.delete_runs(runs)
            console.print(f"deleted {len(runs)} run(s) and {removed} stored result(s) from {db}")
            return
        table = Table(title=f"runs in {db}", show_lines=True)
        for col in ("#", "run key / strategy / source hash", "task / model / seed, -O",
                    "done / accuracy", "created", "params"):
            table.add_column(col, justify="right" if col == "#" else "left",
                             overflow="fold")
        for run in runs:
            results = store.run_results(run)
            acc = (f"{100 * sum(s.result.correct for s in results) / len(results):.1f}%"
                   if results else "-")
            params = "\n".join(f"{k}={v}" for k, v in run.config.get("params", {}).items())
            source = str(run.config.get("source_hash", "-"))[:8]
            day, clock = _when(run.created).split(" ")
            table.add_row(str(run.id), f"{run.short}\n{run.strategy}\nsource {source}",
                          f"{run.task}\n{run.model}\nseed {run.seed}, -O {run.opt_level}",
                          f"{len(results)}/{len(run.problem_keys)}\n{acc}", f"{day}\n{clock}",
                          params or "-")
        console.print(table)


def matching_references(store: Store, records: list[RunRecord]) -> list[RunRecord]:
    """Finished best-of-K runs in the store that pair with the given runs (same problems, model,
    seed, plan level and schedule), so `report` can match without being told their numbers."""
    from s3dsl.report import REFERENCE, comparable

    given = {r.key for r in records}
    out = []
    for cand in store.runs():
        if cand.strategy != REFERENCE or cand.key in given:
            continue
        if any(r.strategy != REFERENCE and comparable(r, cand, {r.seed}, {cand.seed})
               for r in records) and store.count_done(cand) == len(cand.problem_keys):
            out.append(cand)
    return out


def stored_title(records: list[RunRecord]) -> tuple[str, dict]:
    def names(get) -> str:
        return ", ".join(sorted({str(get(r)) for r in records}))

    context = {"runs": [r.short for r in records], "task": names(lambda r: r.task),
               "model": names(lambda r: r.model),
               "split": names(lambda r: r.meta.get("split", "-")),
               "seeds": sorted({r.seed for r in records})}
    data_file = any(r.config.get("extractor") for r in records)
    what = f"data file {context['task']}" if data_file else f"task {context['task']}"
    split = "" if data_file else f"{context['split']} split, "
    return (f"{len(records)} stored runs: {what}, model {context['model']}: "
            f"{split}seeds {','.join(map(str, context['seeds']))}", context)


@app.command("report")
def report_cmd(
    runs: Annotated[list[str], typer.Argument(help="Run numbers or key prefixes (s3dsl runs)")],
    db: DbOpt = DEFAULT_DB,
    out: Annotated[Path | None, typer.Option(help="Write report.md, report.json, plots")] = None,
    references: Annotated[bool, typer.Option(help="Add matching best-of-K runs from the store")]
    = True,
) -> None:
    """Re-render the report of stored runs, without running anything; best-of-K runs that pair
    with them are found in the store."""
    from s3dsl.report import build_report, variants_from_runs

    with _open(db) as store:
        records = list({r.key: r for r in (store.get_run(ref) for ref in runs)}.values())
        found = matching_references(store, records) if references else []
        title, context = stored_title(records)
        notes = [f"best-of-K runs found in the store: {', '.join(r.short for r in found)}"] \
            if found else []
        report = build_report(title, variants_from_runs(store, records + found), notes, context,
                              {r.key for r in found})
        for r in records:
            done = store.count_done(r)
            if done < len(r.problem_keys):
                report.notes.append(f"run {r.short} is unfinished: {done} of "
                                    f"{len(r.problem_keys)} problems")
    _emit(report, out)
