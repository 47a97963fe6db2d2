"""The commands `compare`, `runs` and `report`: strategy variants side by side, from the store.

Every run goes through the results store, so a comparison that is interrupted or extended (one
more strategy, one more seed) only computes what is missing, and `report` re-renders any runs
without a model.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from s3dsl.cli.app import (
    ChatOpt,
    Disable,
    DtypeOpt,
    MaskIdOpt,
    OptLevel,
    SetOpt,
    ShiftedOpt,
    SystemOpt,
    app,
    check_device,
    console,
    load_any_model,
    load_task,
)
from s3dsl.cli.app import parse_sets as _parse_sets
from s3dsl.dsl.errors import S3DSLError, did_you_mean
from s3dsl.store import DEFAULT_DB, MEMORY, RunRecord, Store

DbOpt = Annotated[Path, typer.Option(help="Results database")]
_STORED_BY = "runs are stored by s3dsl run and s3dsl compare"
NoDb = Annotated[bool, typer.Option("--no-db", help="Keep results in memory only")]


@dataclass
class Spec:
    """One variant to run: a strategy file with its `--set`/sweep overrides."""

    name: str
    path: Path
    overrides: dict[str, str]


def parse_sweeps(items: list[str]) -> list[tuple[str, list[str]]]:
    """`particles=1,2,4` -> [("particles", ["1", "2", "4"])]."""
    out = []
    for item in items:
        key, sep, values = item.partition("=")
        vals = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not key.strip() or not vals:
            raise S3DSLError(f"--sweep {item}: expected key=v1,v2,...", None,
                             "e.g. --sweep particles=1,2,4,8")
        out.append((key.strip(), vals))
    return out


def known_keys(path: Path, gen_length: int, verifier: str) -> set[str]:
    """The keys a `--set` may name for this strategy: its params and the decode settings."""
    from s3dsl.compiler.build import DECODE_DEFAULTS
    from s3dsl.runtime.session import compile_file

    return set(compile_file(path, None, gen_length, verifier).params) | set(DECODE_DEFAULTS)


def expand_specs(
    strategies: list[str], sets: dict[str, str], sweeps: list[tuple[str, list[str]]], task
) -> tuple[list[Spec], list[str]]:
    """Every strategy x sweep combination; keys a strategy lacks are left out with a note (an
    error when no strategy has them: a typo)."""
    from s3dsl.catalog import resolve_strategy

    specs, notes, used = [], [], set()
    for name in strategies:
        path = resolve_strategy(name)
        known = known_keys(path, task.gen_length, task.default_verifier)
        fixed = {k: v for k, v in sets.items() if k in known}
        used |= fixed.keys()
        for k in sorted(set(sets) - known):
            notes.append(f"--set {k} ignored for {name} (no such param)")
        active = [(k, vals) for k, vals in sweeps if k in known]
        used |= {k for k, _ in active}
        for k, _ in sweeps:
            if k not in known:
                notes.append(f"sweep {k} skipped for {name} (no such param)")
        for combo in itertools.product(*[vals for _, vals in active]):
            overrides = {**fixed, **{k: v for (k, _), v in zip(active, combo)}}
            specs.append(Spec(name, path, overrides))
    all_keys = set(sets) | {k for k, _ in sweeps}
    for key in sorted(all_keys - used):
        raise S3DSLError(f"'{key}' is a param of none of the strategies", None,
                         did_you_mean(key, set().union(*[
                             known_keys(s.path, task.gen_length, task.default_verifier)
                             for s in specs])))
    return specs, notes


def reference_spec(spec: Spec, k: int, task) -> Spec:
    """Best-of-K at K with the variant's decode settings (and shared params like temperature)."""
    from s3dsl.catalog import resolve_strategy

    path = resolve_strategy("best_of_k")
    known = known_keys(path, task.gen_length, task.default_verifier)
    overrides = {key: v for key, v in spec.overrides.items() if key in known and key != "k"}
    return Spec("best_of_k", path, {**overrides, "k": str(k)})


@app.command()
def compare(
    strategies: Annotated[list[str], typer.Argument(help="Strategy files or built-in names")],
    task: Annotated[str | None, typer.Option(help="Built-in task (arith, sudoku)")] = None,
    data: Annotated[Path | None, typer.Option(help="JSONL file of {id, prompt, answer}")] = None,
    extractor: Annotated[str | None, typer.Option(help="Answer extractor for --data")] = None,
    model: Annotated[str | None, typer.Option(help="Model name, folder, or hf:PATH")] = None,
    split: Annotated[str, typer.Option(help="train or test (held out)")] = "test",
    limit: Annotated[int | None, typer.Option(help="First N problems only")] = None,
    seed: Annotated[int, typer.Option(help="First run seed")] = 0,
    seeds: Annotated[int, typer.Option(help="Seeds per variant: seed, seed+1, ...")] = 1,
    sweep: Annotated[list[str], typer.Option(help="key=v1,v2,... (repeatable)")] = [],  # noqa: B006
    sets: SetOpt = [],  # noqa: B006
    out: Annotated[Path | None, typer.Option(help="Write report.md, report.json, plots")] = None,
    db: DbOpt = DEFAULT_DB,
    no_db: NoDb = False,
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N")] = "cpu",
    opt_level: OptLevel = 2,
    disable_pass: Disable = [],  # noqa: B006
    batch_size: Annotated[int, typer.Option(help="Problems per batch")] = 8,
    reference: Annotated[bool, typer.Option(help="Run compute-matched best-of-K")] = True,
    trust_remote_code: Annotated[bool, typer.Option(help="Allow a hub model's own code")] = False,
    mask_id: MaskIdOpt = None,
    shifted_logits: ShiftedOpt = None,
    chat: ChatOpt = None,
    system: SystemOpt = None,
    dtype: DtypeOpt = None,
) -> None:
    """Run strategies (and sweeps) on the same problems and seeds; report them side by side with
    a compute-matched best-of-K for each."""
    from s3dsl.report import build_report, row_of, variants_from_runs

    if limit is not None and limit < 1:
        raise S3DSLError("--limit must be at least 1")
    if seeds < 1:
        raise S3DSLError("--seeds must be at least 1")
    check_device(device)
    the_task = load_task(task, data, extractor)
    specs, notes = expand_specs(strategies, _parse_sets(sets), parse_sweeps(sweep), the_task)
    the_model = load_any_model(model or the_task.default_model, device, trust_remote_code,
                               dtype=dtype, mask_id=mask_id, shifted_logits=shifted_logits,
                               chat=chat, system=system)
    problems = the_task.problems(split, limit)
    if not problems:
        raise S3DSLError(f"no problems in split '{split}'")
    seed_list = list(range(seed, seed + seeds))
    runner = _Runner(the_task, the_model, problems, split, seed_list, opt_level,
                     tuple(disable_pass), batch_size)
    with Store(MEMORY if no_db else db) as store:
        per_spec = runner.run_all(specs, store)
        if reference:
            refs: dict[tuple, Spec] = {}
            for spec, spec_runs in zip(specs, per_spec):
                if spec.name != "best_of_k":
                    k = row_of(variants_from_runs(store, spec_runs)[0]).matched_k
                    ref = reference_spec(spec, k, the_task)
                    refs.setdefault(tuple(sorted(ref.overrides.items())), ref)
            per_spec += runner.run_all(list(refs.values()), store)
        unique = list({r.key: r for runs in per_spec for r in runs}.values())
        title = (f"{the_task.name} ({split}, {len(problems)} problems, seeds "
                 f"{','.join(map(str, seed_list))}) on {the_model.name}")
        report = build_report(title, variants_from_runs(store, unique), notes)
    _emit(report, out)


class _Runner:
    """Runs specs x seeds through the store with one progress display."""

    def __init__(self, task, model, problems, split, seeds, opt_level, disable, batch_size):
        self.task, self.model, self.problems, self.split = task, model, problems, split
        self.seeds, self.opt_level, self.disable = seeds, opt_level, disable
        self.batch_size = batch_size

    def run_all(self, specs: list[Spec], store: Store) -> list[list[RunRecord]]:
        """The runs of each spec, one per seed, in spec order (variants keep the order given)."""
        from s3dsl.cli.app import _progress
        from s3dsl.compiler.passes import plan
        from s3dsl.resume import run_stored
        from s3dsl.runtime.session import compile_file

        runs = []
        with _progress() as bar:
            for spec in specs:
                program = compile_file(spec.path, spec.overrides, self.task.gen_length,
                                       self.task.default_verifier)
                the_plan = plan(program, self.opt_level, self.disable)
                shown = " ".join(f"{k}={v}" for k, v in spec.overrides.items())
                runs.append([])
                for s in self.seeds:
                    job = bar.add_task(f"{spec.name} {shown} seed {s}".strip(),
                                       total=len(self.problems))
                    stored = run_stored(
                        the_plan, self.model, self.task, self.problems, s, self.batch_size,
                        store, self.split, self.disable, advance=lambda k, j=job: bar.advance(j, k),
                    )
                    runs[-1].append(stored.run)
        return runs


def _emit(report, out: Path | None) -> None:
    from s3dsl.plots import SKIPPED, have_matplotlib, write_plots
    from s3dsl.report import to_json, to_markdown, to_rich

    if out is not None:
        if have_matplotlib():
            for path in write_plots(report, out):
                report.notes.append(f"plot: {path}")
        else:
            report.notes.append(SKIPPED)
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.md").write_text(to_markdown(report))
        (out / "report.json").write_text(json.dumps(to_json(report), indent=2))
    console.print(to_rich(report))
    if out is not None:
        console.print(f"wrote {out / 'report.md'} and {out / 'report.json'}")


@app.command("runs")
def runs_cmd(db: DbOpt = DEFAULT_DB) -> None:
    """List the runs in the results database."""
    if not db.is_file():
        raise S3DSLError(f"no results database at {db}", hint=_STORED_BY)
    with Store(db) as store:
        table = Table(title=f"runs in {db}")
        for col in ("#", "key", "strategy", "task", "model", "seed", "-O", "done", "accuracy",
                    "created", "params"):
            table.add_column(col, justify="right" if col in ("#", "seed", "-O") else "left",
                             no_wrap=col != "params", overflow="fold")
        for run in store.runs():
            results = store.run_results(run)
            acc = (f"{100 * sum(s.result.correct for s in results) / len(results):.1f}%"
                   if results else "-")
            params = " ".join(f"{k}={v}" for k, v in run.config.get("params", {}).items())
            table.add_row(str(run.id), run.short, run.strategy, run.task, run.model,
                          str(run.seed), str(run.opt_level),
                          f"{len(results)}/{len(run.problem_keys)}", acc,
                          datetime.fromtimestamp(run.created).strftime("%m-%d %H:%M"), params)
        console.print(table)


@app.command("report")
def report_cmd(
    runs: Annotated[list[str], typer.Argument(help="Run numbers or key prefixes (s3dsl runs)")],
    db: DbOpt = DEFAULT_DB,
    out: Annotated[Path | None, typer.Option(help="Write report.md, report.json, plots")] = None,
) -> None:
    """Re-render the report of stored runs, without running anything."""
    from s3dsl.report import build_report, variants_from_runs

    if not db.is_file():
        raise S3DSLError(f"no results database at {db}", hint=_STORED_BY)
    with Store(db) as store:
        records = list({r.key: r for r in (store.get_run(ref) for ref in runs)}.values())
        tasks = sorted({r.task for r in records})
        title = f"stored runs {', '.join(r.short for r in records)} ({', '.join(tasks)})"
        report = build_report(title, variants_from_runs(store, records))
        for r in records:
            done = store.count_done(r)
            if done < len(r.problem_keys):
                report.notes.append(f"run {r.short} is unfinished: {done} of "
                                    f"{len(r.problem_keys)} problems")
    _emit(report, out)
