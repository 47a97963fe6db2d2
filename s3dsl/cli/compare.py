"""The command `compare`: strategy variants side by side, each matched against best-of-K.

Every run goes through the results store, so a comparison that is interrupted or extended (one
more strategy, one more seed) only computes what is missing, and `report` re-renders any runs
without a model.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from s3dsl.cli.app import (
    ChatOpt,
    Disable,
    DtypeOpt,
    MaskIdOpt,
    OptLevel,
    SetOpt,
    ShiftedOpt,
    SystemOpt,
    TrustRemoteCode,
    app,
    check_device,
    check_output_folder,
    console,
    load_any_model,
    load_task,
    set_threads,
)
from s3dsl.cli.app import parse_sets as _parse_sets
from s3dsl.errors import S3DSLError, did_you_mean
from s3dsl.matching import MAX_K, ks_to_run
from s3dsl.report import REFERENCE
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
    from s3dsl.session import compile_file

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
    sweep: Annotated[list[str], typer.Option(metavar="K=V1,V2",
                                                help="key=v1,v2,... (repeatable)")] = [],  # noqa: B006
    sets: SetOpt = [],  # noqa: B006
    out: Annotated[Path | None, typer.Option(help="Write report.md, report.json, plots")] = None,
    db: DbOpt = DEFAULT_DB,
    no_db: NoDb = False,
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N")] = "cpu",
    opt_level: OptLevel = 2,
    disable_pass: Disable = [],  # noqa: B006
    batch_size: Annotated[int, typer.Option(help="Problems per batch")] = 8,
    reference: Annotated[bool, typer.Option(help="Run the best-of-K curve to match")] = True,
    max_k: Annotated[int, typer.Option(help="Largest K the best-of-K curve may run")] = MAX_K,
    threads: Annotated[int | None, typer.Option(help="torch CPU threads")] = None,
    trace: Annotated[Path | None, typer.Option(help="Record every search per step; write "
                                               "trace.json, PNGs and index.html here")] = None,
    trust_remote_code: TrustRemoteCode = False,
    mask_id: MaskIdOpt = None,
    shifted_logits: ShiftedOpt = None,
    chat: ChatOpt = None,
    system: SystemOpt = None,
    dtype: DtypeOpt = None,
) -> None:
    """Run strategies (and sweeps) on the same problems and seeds; report them side by side, each
    against best-of-K at its measured forwards (K = 1, 2, 4, ... run until the curve reaches
    every strategy's cost) and against the first strategy, with paired tests."""
    from s3dsl.report import build_report, variants_from_runs

    if limit is not None and limit < 1:
        raise S3DSLError("--limit must be at least 1")
    if seeds < 1:
        raise S3DSLError("--seeds must be at least 1")
    if max_k < 1:
        raise S3DSLError("--max-k must be at least 1")
    check_device(device)
    check_output_folder(out, "--out")
    check_output_folder(trace, "--trace")
    set_threads(threads)
    from s3dsl.distributed import current_world

    world = current_world(device)  # torchrun: problems sharded over ranks, rank 0 reports
    device = world.device(device)
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
                     tuple(disable_pass), batch_size, trace is not None, world)
    with Store(MEMORY if no_db or not world.is_main else db) as store:
        per_spec = runner.run_all(specs, store)
        if reference:
            curves = run_curves(runner, store, specs, per_spec, the_task, max_k, notes)
        if not world.is_main:  # every rank ran its share of every run; rank 0 reports
            world.finish()
            return
        asked = {r.key for runs in per_spec for r in runs}
        if reference:
            per_spec += curves
        unique = list({r.key: r for runs in per_spec for r in runs}.values())
        added = {r.key for r in unique} - asked
        context = describe_context(the_task, data, split, the_model.name, len(problems),
                                   seed_list)
        report = build_report(context_title(context), variants_from_runs(store, unique), notes,
                              context, added)
        if trace is not None:
            page = write_compare_traces(store, report, unique, trace)
            report.notes.append(f"trace: {page}")
    world.finish()
    _emit(report, out)


def measured_forwards(store: Store, runs: list[RunRecord]) -> float:
    """Forward passes per problem, measured, over the finished problems of these runs."""
    done = [s for run in runs for s in store.run_results(run)]
    return sum(s.result.nfe for s in done) / max(len(done), 1)


def run_curves(runner: _Runner, store: Store, specs: list[Spec], per_spec: list[list[RunRecord]],
               task, max_k: int, notes: list[str]) -> list[list[RunRecord]]:
    """Best-of-K at K = 1, 2, 4, ... (per set of decode settings) until its measured forwards
    reach those of every strategy sharing the settings, or K would pass `max_k`."""
    targets: dict[tuple, tuple[Spec, float]] = {}
    for spec, spec_runs in zip(specs, per_spec):
        if spec.name == REFERENCE:
            continue
        ref = reference_spec(spec, 1, task)
        key = tuple(sorted((k, v) for k, v in ref.overrides.items() if k != "k"))
        need = runner.measured(store, spec_runs)
        old = targets.get(key)
        targets[key] = (ref, max(need, old[1] if old else 0.0))
    out: list[list[RunRecord]] = []
    for base, need in targets.values():
        have: dict[int, float] = {}
        while (k := ks_to_run(need, have, max_k)) is not None:
            spec = Spec(REFERENCE, base.path, {**base.overrides, "k": str(k)})
            (runs,) = runner.run_all([spec], store)
            have[k] = runner.measured(store, runs)
            out.append(runs)
        if have and max(have.values()) < need:
            notes.append(f"best-of-K reaches {max(have.values()):,.1f} forwards per problem at "
                         f"K={max(have)} (--max-k {max_k}); strategies above that are compared "
                         "with a cheaper best-of-K")
    return out


def describe_context(task, data: Path | None, split: str, model: str, n: int,
                     seeds: list[int]) -> dict:
    """What was compared, with each part named: the task or data file, the model, the split
    (a data file has none), the problem count and the seeds."""
    return {"task": None if data is not None else task.name,
            "data_file": str(data) if data is not None else None,
            "model": model, "split": None if data is not None else split,
            "problems": n, "seeds": seeds}


def context_title(c: dict) -> str:
    what = f"data file {c['data_file']}" if c.get("data_file") else f"task {c['task']}"
    split = f"{c['split']} split, " if c.get("split") else ""
    seeds = ",".join(map(str, c["seeds"]))
    return f"{what}, model {c['model']}: {split}{c['problems']} problems, seeds {seeds}"


def write_compare_traces(store: Store, report, runs: list[RunRecord], out: Path) -> Path:
    """The trace page of the first seed: every variant that is not only part of the best-of-K
    curve, and the best-of-K run its McNemar test used (win / loss per problem against it)."""
    from s3dsl.trace_view import write_traces

    by_short = {r.short: r for r in runs}
    shown: list[RunRecord] = []
    reference: dict[str, str] = {}
    for m in report.matches:
        row = report.row(m.variant)
        if row.curve_only:
            continue
        own = by_short[row.runs[0]]
        shown.append(own)
        if m.mcnemar_run is not None:
            ref = by_short[report.row(m.mcnemar_run).runs[0]]
            reference[own.short] = ref.short
            if ref not in shown:
                shown.append(ref)
    return write_traces(store, shown, out, report.title, reference)


class _Runner:
    """Runs specs x seeds through the store with one progress display."""

    def __init__(self, task, model, problems, split, seeds, opt_level, disable, batch_size,
                 trace: bool = False, world=None):
        from s3dsl.distributed import SINGLE

        self.task, self.model, self.problems, self.split = task, model, problems, split
        self.seeds, self.opt_level, self.disable = seeds, opt_level, disable
        self.batch_size, self.trace, self.world = batch_size, trace, world or SINGLE

    def measured(self, store: Store, runs: list[RunRecord]) -> float:
        """`measured_forwards`, read by rank 0 (the only rank with the store) and told to every
        rank, so all of them choose the same best-of-K runs next."""
        value = measured_forwards(store, runs) if self.world.is_main else 0.0
        return self.world.broadcast(value)

    def run_all(self, specs: list[Spec], store: Store) -> list[list[RunRecord]]:
        """The runs of each spec, one per seed, in spec order (variants keep the order given)."""
        from s3dsl.cli.app import _progress
        from s3dsl.compiler.passes import plan
        from s3dsl.resume import run_stored
        from s3dsl.session import check_run_limits, check_run_options, compile_file

        # every spec compiled and checked before the first runs: an error in the last one must
        # not wait for (or, with --no-db, throw away) the runs of the others
        plans = []
        for spec in specs:
            program = compile_file(spec.path, spec.overrides, self.task.gen_length,
                                   self.task.default_verifier)
            plans.append(plan(program, self.opt_level, self.disable))
            check_run_limits(plans[-1], self.model, self.problems, self.seeds[0],
                             self.batch_size)
        check_run_options(self.seeds[-1], self.batch_size)
        runs = []
        with _progress(self.world.is_main) as bar:
            for spec, the_plan in zip(specs, plans):
                shown = " ".join(f"{k}={v}" for k, v in spec.overrides.items())
                runs.append([])
                for s in self.seeds:
                    job = bar.add_task(f"{spec.name} {shown} seed {s}".strip(),
                                       total=len(self.problems))
                    stored = run_stored(
                        the_plan, self.model, self.task, self.problems, s, self.batch_size,
                        store, self.split, self.disable, advance=lambda k, j=job: bar.advance(j, k),
                        world=self.world, trace=self.trace,
                    )
                    runs[-1].append(stored.run)
        return runs


def _emit(report, out: Path | None) -> None:
    from s3dsl.plots import SKIPPED, have_matplotlib, write_plots
    from s3dsl.report import to_json
    from s3dsl.report_view import to_markdown, to_rich

    check_output_folder(out, "--out")  # (`compare` checked it before its runs; `report` here)
    failed: OSError | None = None
    if out is not None:
        try:
            if have_matplotlib():
                for path in write_plots(report, out):
                    report.notes.append(f"plot: {path}")
            else:
                report.notes.append(SKIPPED)
            (out / "report.md").write_text(to_markdown(report))
            (out / "report.json").write_text(json.dumps(to_json(report), indent=2))
        except OSError as e:  # (the disk filled up, the folder went away since the check)
            failed = e
    console.print(to_rich(report))  # (the report reaches the terminal either way)
    if failed is not None:
        raise S3DSLError(f"--out {out}: cannot write the report ({failed.strerror or failed})")
    if out is not None:
        console.print(f"wrote {out / 'report.md'} and {out / 'report.json'}")
