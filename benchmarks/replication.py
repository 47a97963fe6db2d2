"""The replication table: do the S3 and IMH papers' claims hold on the shipped models?

S3 (arXiv 2604.06260) claims that moving compute *into* denoising beats best-of-K at equal forward
passes. IMH (arXiv 2604.00375) claims a better Pass@1 vs Pass@k frontier than low-confidence
remasking (best-of-K's samples, and single decoding) and random remasking.

Protocol (every number comes from s3dsl.report / s3dsl.matching, the code `s3dsl compare` uses):
1. Tuning on a *validation* split: problems drawn like the test split but from another seed
   (`--val-seed`), minus any test prompt. Every strategy gets the same search budget: the first
   `--grid` configurations of its grid below (all near `--budget` decodes per problem), run on
   `--val-n` problems with seed 0; the most accurate is kept (ties: fewer forwards, then grid
   order). Single decoding has nothing to tune.
2. Test: the chosen configuration on the first `--n` problems of the held-out test split, for
   `--seeds` run seeds.
3. The best-of-K curve (K = 1, 2, 4, ..., at best-of-K's tuned temperature) is run until its
   measured forwards reach every strategy's, up to `--max-k`; each strategy is compared with the
   curve interpolated at its measured forwards (paired bootstrap 95% CI of the difference,
   McNemar exact p) and with single decoding.
4. Stability: the difference per run seed is listed next to the pooled one.

    python benchmarks/replication.py [--tasks arith sudoku] [--n 200] [--seeds 3] [--val-n 50]
        [--grid 4] [--budget 8] [--strategies ...] [--threads 1] [--quick] [--out DIR] [--db PATH]

Results are stored as they finish (`--db`, resumable: re-running skips finished problems);
writes `replication.md` and per-task `report.md`/`report.json` and PNG plots into `--out`.
`--quick` is a smoke run (2 problems, budget 4, gen_length 16, grid 1) for `--model tiny-random`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from s3dsl.catalog import builtin_strategies, resolve_strategy
from s3dsl.compiler.passes import plan
from s3dsl.matching import ks_to_run
from s3dsl.models.registry import load_model
from s3dsl.plots import SKIPPED, have_matplotlib, write_plots
from s3dsl.report import REFERENCE, Report, build_report, to_json, variants_from_runs
from s3dsl.report_view import to_markdown
from s3dsl.resume import run_stored
from s3dsl.session import compile_file
from s3dsl.stats import mcnemar_exact
from s3dsl.store import RunRecord, Store
from s3dsl.tasks.registry import get_task

ROOT = Path(__file__).resolve().parent
console = Console(stderr=True, highlight=False)
DEFAULT_STRATEGIES = ["single", "s3", "imh", "smc", "random_remask", "fk", "beam", "remdm",
                      "prism", "adaptive", "s3_agree", "hex", "dream-origin", "dream-maskgit_plus",
                      "dream-topk_margin", "dream-entropy", "llada-low_confidence",
                      "llada-random", "best_of_k"]
# A row per official sampler rule (issue 13): the built-in file and the param that picks the rule.
VARIANTS: dict[str, tuple[str, dict[str, str]]] = {
    **{f"dream-{alg}": ("dream", {"alg": alg})
       for alg in ("origin", "maskgit_plus", "topk_margin", "entropy")},
    **{f"llada-{rule}": ("llada", {"remasking": rule}) for rule in ("low_confidence", "random")},
}
mcnemar_p = mcnemar_exact  # kept for callers of the old name


# adaptive's escalation threshold is on the task verifier's scale (arith-heuristic up to ~4,
# sudoku-constraints in [0, 1]): candidates per verifier, from benchmarks/adaptive.py's grid.
ADAPTIVE_THRESHOLDS = {"arith": ("3.5", "3.25"), "sudoku": ("0.95", "0.98")}


def grid(name: str, budget: int, task: str = "arith") -> list[dict[str, str]]:
    """Each strategy's hyperparameter grid, most promising first; every entry spends about
    `budget` decodes per problem. `--grid G` evaluates the first G of each (equal budget)."""
    thresholds = ADAPTIVE_THRESHOLDS.get(task, ADAPTIVE_THRESHOLDS["arith"])
    per = max(1, budget // 4)
    half = max(1, budget // 2)
    temps = ["1.0", "0.7", "1.3", "0.5"]
    grids: dict[str, list[dict[str, str]]] = {
        "single": [{}],
        "s3": [{"particles": "4", "candidates": str(per), "beta": b} for b in ("0.5", "2.0")]
        + [{"particles": "2", "candidates": str(half), "beta": b} for b in ("0.5", "2.0")],
        "imh": [{"chains": "4", "proposals": str(per), "alpha": a} for a in ("4.0", "2.0")]
        + [{"chains": "2", "proposals": str(half), "alpha": a} for a in ("4.0", "2.0")],
        "smc": [{"particles": str(budget), "temperature": t} for t in temps],
        "fk": [{"particles": str(budget), "lam": lam} for lam in ("4.0", "1.0", "10.0")]
        + [{"particles": str(budget), "lam": "4.0", "temperature": "0.7"}],
        "random_remask": [{"samples": str(budget), "temperature": t} for t in temps],
        "beam": [{"beams": "2", "width": str(half)}, {"beams": str(half), "width": "2"},
                 {"beams": "2", "width": str(half), "temperature": "0.7"},
                 {"beams": "1", "width": str(budget)}],
        "remdm": [{"samples": str(budget), "temperature": t} for t in ("1.0", "0.7")]
        + [{"samples": str(budget), "temperature": "1.0", "count": "2"},
           {"samples": str(budget), "temperature": "1.3"}],
        "prism": [{"width": str(budget), "keep": k} for k in ("2", "4")]
        + [{"width": str(budget), "keep": "2", "fraction": "0.5"},
           {"width": str(budget), "keep": "2", "temperature": "0.7"}],
        "adaptive": [{"particles": "4", "candidates": str(per), "beta": "0.5",
                      "threshold": t, "agree": "0.75"} for t in thresholds]
        + [{"particles": "4", "candidates": str(per), "beta": "0.5", "threshold": thresholds[0],
            "agree": "1.0"}],
        "s3_agree": [{"particles": "4", "candidates": str(per), "beta": "0.5", "agree": a}
                     for a in ("0.75", "0.5")]
        + [{"particles": "2", "candidates": str(half), "beta": "0.5", "agree": "0.75"}],
        "hex": [{"per_schedule": str(max(1, round(budget / 3))), "temperature": t}
                for t in ("1.0", "0.7")]
        + [{"per_schedule": "1", "temperature": "0.0"},
           {"per_schedule": str(max(1, round(budget / 3))), "temperature": "1.3"}],
        "best_of_k": [{"k": str(budget), "temperature": t} for t in temps],
    }
    return grids.get(name, [{}])


def validation_task(task, seed: int):
    """The task with its test split drawn from another seed: a validation split for tuning."""
    return dataclasses.replace(task, test_seed=seed)


def validation_problems(task, seed: int, n: int) -> list:
    test = {p.prompt for p in task.problems("test")}
    return [p for p in validation_task(task, seed).problems("test") if p.prompt not in test][:n]


class Bench:
    def __init__(self, args: argparse.Namespace, store: Store):
        self.args, self.store = args, store

    def run(self, task, model, problems, name: str, overrides: dict[str, str], seed: int,
            split: str, bar: Progress) -> RunRecord:
        name, fixed = VARIANTS.get(name, (name, {}))
        sets = {**self.args.sets, **fixed, **overrides}
        path = resolve_strategy(name)
        known = set(compile_file(path, None, task.gen_length, task.default_verifier).params)
        from s3dsl.compiler.build import DECODE_DEFAULTS

        sets = {k: v for k, v in sets.items() if k in known | set(DECODE_DEFAULTS)}
        program = compile_file(path, sets, task.gen_length, task.default_verifier)
        shown = " ".join(f"{k}={v}" for k, v in {**fixed, **overrides}.items())
        job = bar.add_task(f"{task.name} {split}: {name} {shown} seed {seed}".strip(),
                           total=len(problems))
        stored = run_stored(plan(program), model, task, problems, seed, self.args.batch_size,
                            self.store, split, advance=lambda k: bar.advance(job, k))
        return stored.run

    def accuracy(self, run: RunRecord) -> tuple[float, float]:
        done = self.store.run_results(run)
        n = max(len(done), 1)
        return (sum(s.result.correct for s in done) / n, sum(s.result.nfe for s in done) / n)

    def tune(self, task, model, name: str, bar: Progress) -> tuple[dict[str, str], list[str]]:
        """The grid entry with the best validation accuracy, and one log line per entry."""
        args = self.args
        entries = grid(name, args.budget, task.name)[: args.grid]
        if len(entries) == 1:
            return entries[0], []
        problems = validation_problems(task, args.val_seed,
                                       args.val_n.get(task.name, args.val_n["*"]))
        scored = []
        for i, overrides in enumerate(entries):
            run = self.run(task, model, problems, name, overrides, 0, "validation", bar)
            acc, fwd = self.accuracy(run)
            scored.append((-acc, fwd, i, overrides))
        chosen = min(scored)[3]
        log = [f"{name} {' '.join(f'{k}={v}' for k, v in o.items())}: {100 * -a:.1f}% "
               f"at {f:,.0f} forwards{' (chosen)' if o is chosen else ''}"
               for a, f, _, o in scored]
        return chosen, log

    def task_report(self, task_name: str) -> tuple[Report, list[str]]:
        args = self.args
        task = get_task(task_name)
        model = load_model(args.model or task.default_model)
        problems = task.problems("test", args.n.get(task_name, args.n["*"]))
        seeds = list(range(args.seed, args.seed + args.seeds.get(task_name, args.seeds["*"])))
        runs: list[RunRecord] = []
        added: set[str] = set()
        tuning: list[str] = []
        with _progress() as bar:
            chosen: dict[str, dict[str, str]] = {}
            for name in args.strategies:
                chosen[name], log = self.tune(task, model, name, bar)
                tuning += log
            for name in args.strategies:
                if name != REFERENCE:
                    runs += [self.run(task, model, problems, name, chosen[name], s, "test", bar)
                             for s in seeds]
            need = max((self.accuracy(r)[1] for r in runs), default=0.0)
            base = {k: v for k, v in chosen.get(REFERENCE, {}).items() if k != "k"}
            have: dict[int, float] = {}
            while (k := ks_to_run(need, have, args.max_k)) is not None:
                ref_runs = [self.run(task, model, problems, REFERENCE, {**base, "k": str(k)}, s,
                                     "test", bar) for s in seeds]
                have[k] = sum(self.accuracy(r)[1] for r in ref_runs) / len(ref_runs)
                runs += ref_runs
                added |= {r.key for r in ref_runs}
        title = (f"task {task.name}, model {model.name}: test split, first {len(problems)} "
                 f"problems, seeds {','.join(map(str, seeds))}")
        notes = [f"sets: {args.sets}"] if args.sets else []
        if have and max(have.values()) < need:
            notes.append(f"best-of-K stops at K={max(have)} ({max(have.values()):,.0f} forwards,"
                         f" --max-k {args.max_k}): dearer strategies meet a cheaper best-of-K")
        context = {"task": task.name, "model": model.name, "split": "test",
                   "problems": len(problems), "seeds": seeds, "chosen": chosen}
        report = build_report(title, variants_from_runs(self.store, runs), notes, context, added)
        return report, tuning


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def _ci(e) -> str:
    return f"{100 * e.value:+.1f} [{100 * e.lo:+.1f}, {100 * e.hi:+.1f}]"


def _p(p: float | None) -> str:
    return "-" if p is None else ("<0.001" if p < 0.001 else f"{p:.3f}")


def _p_eq(p: float | None) -> str:
    text = _p(p)
    return f"p {text}" if text.startswith("<") else f"p={text}"


def per_seed_deltas(report: Report, variant: str) -> list[float]:
    """The strategy minus the best-of-K curve at its forwards, one value per run seed."""
    from s3dsl.matching import Point, match

    row = report.row(variant)
    refs = [r for r in report.rows if r.strategy == REFERENCE]
    out = []
    for seed in row.seeds:
        def only(r, seed=seed) -> Point:
            outs = {k: float(v) for k, v in r.outcomes.items() if k[0] == seed}
            fwd = [p["forwards"] for p in r.problems]  # per problem means over seeds
            k = int(r.params.get("k", 0)) if r.strategy == REFERENCE else 0
            return Point(r.label, sum(fwd) / max(len(fwd), 1), outs, k)

        m = match(only(row), [only(r) for r in refs])
        if m.vs_curve is not None:
            out.append(m.vs_curve.difference.value)
    return out


def s3_table(report: Report) -> list[str]:
    """Each strategy vs the best-of-K curve at its measured forwards, and vs the first."""
    first = report.rows[0].label
    lines = ["| strategy (tuned) | forwards / problem | accuracy % [95% CI] | best-of-K: K range "
             "| best-of-K accuracy % there [95% CI] | Δ pts [95% CI] | p | Δ per seed | "
             f"Δ vs {first} [95% CI] | p vs {first} |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for m in report.matches:
        v = report.row(m.variant)
        if v.curve_only:
            continue
        acc = f"{_pct(v.accuracy)} [{_pct(v.ci[0])}, {_pct(v.ci[1])}]"
        c = m.vs_curve
        seeds = ", ".join(f"{100 * d:+.1f}" for d in per_seed_deltas(report, v.label)) \
            if c is not None and len(v.seeds) > 1 else "-"
        cells = [v.label, f"{v.nfe_per_problem:,.0f}", acc,
                 m.k_range if m.position not in ("reference", "none") else m.position,
                 _matched_accuracy(m), _ci(c.difference) if c else "-",
                 _p(c.difference.p) if c else "-", seeds,
                 _ci(m.vs_first.difference) if m.vs_first else "-",
                 _p(m.vs_first.difference.p) if m.vs_first else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _matched_accuracy(m) -> str:
    """Best-of-K's accuracy at the strategy's forwards, with its 95% interval (s3dsl.matching)."""
    if m.reference_ci is None:
        return _pct(m.reference_accuracy)
    return f"{_pct(m.reference_accuracy)} [{_pct(m.reference_ci[0])}, {_pct(m.reference_ci[1])}]"


def frontier_table(report: Report) -> list[str]:
    ks = sorted({k for r in report.rows for k in r.pass_at_k})
    lines = ["| strategy | samples | forwards / problem | "
             + " | ".join(f"pass@{k} %" for k in ks) + " | distinct answers |",
             "|---|---:|---:|" + "---:|" * len(ks) + "---:|"]
    for r in report.rows:
        cells = " | ".join(_pct(r.pass_at_k.get(k)) for k in ks)
        lines.append(f"| {r.label} | {r.samples} | {r.nfe_per_problem:,.0f} | {cells} | "
                     f"{r.diversity:.2f} |")
    return lines


def verdicts(report: Report) -> list[str]:
    """Plain statements of what the numbers say, with how stable they are across seeds."""
    out = []
    for m in report.matches:
        v = report.row(m.variant)
        c = m.vs_curve
        if c is None or v.strategy in (REFERENCE, "single"):
            continue
        e = c.difference
        word = "ahead of" if e.value > 0 else "behind" if e.value < 0 else "level with"
        sig = "significant at 5%" if e.p is not None and e.p < 0.05 else "not significant at 5%"
        deltas = per_seed_deltas(report, v.label) if len(v.seeds) > 1 else []
        same = (all(d > 0 for d in deltas) or all(d < 0 for d in deltas)) if deltas else None
        shown = ", ".join(f"{100 * d:+.1f}" for d in deltas)
        stable = "" if same is None else (f" Every seed has the same sign ({shown})." if same else
                                          f" The seeds do not share a sign ({shown}).")
        interval = "excludes" if e.lo is not None and (e.lo > 0 or e.hi < 0) else "includes"
        out.append(f"{v.label} is {word} best-of-K at its measured forwards (K {m.k_range}): "
                   f"{_pct(v.accuracy)}% vs {_pct(m.reference_accuracy)}%, Δ {_ci(e)} pts "
                   f"(the 95% CI {interval} 0; McNemar {_p_eq(e.p)}, {sig}).{stable}")
    return out


def frontier_plot(report: Report, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.2, 4.4))
    for r in report.rows:
        if not r.pass_at_k:
            continue
        k_hi = max(r.pass_at_k)
        ax.plot([100 * r.pass_at_k[1]], [100 * r.pass_at_k[k_hi]], "o", label=f"{r.label} "
                f"(k={k_hi})")
    ax.set_xlabel("pass@1 (%)")
    ax.set_ylabel("pass@k (%), k = samples drawn")
    ax.set_title(report.title, fontsize=8)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_task(report: Report, tuning: list[str], out: Path, task: str) -> list[str]:
    folder = out / task
    folder.mkdir(parents=True, exist_ok=True)
    plots: list[str] = []
    if have_matplotlib():
        plots = [p.name for p in write_plots(report, folder)]
        frontier_plot(report, folder / "frontier.png")
        plots.append("frontier.png")
    else:
        report.notes.append(SKIPPED)
    (folder / "report.md").write_text(to_markdown(report))
    (folder / "report.json").write_text(json.dumps(to_json(report), indent=2))
    import torch

    compute = sum(r.wall_s for r in report.rows)
    lines = [f"## {task}", "", f"*{report.title}; {compute / 60:,.1f} min of measured compute "
             f"over the test runs (torch threads in this invocation: {torch.get_num_threads()})*",
             "", "### Tuning on the validation split", ""]
    lines += [f"- {t}" for t in tuning] or ["- nothing tuned (grid of 1)"]
    lines += ["", "### Accuracy at equal measured compute (S3 paper's claim)", "",
              *s3_table(report), "", "### Pass@k frontier (IMH paper's claim)", "",
              *frontier_table(report), "", "### What the numbers say", "",
              *[f"- {v}" for v in verdicts(report)], ""]
    lines += [f"![{p}]({task}/{p})" for p in plots] + [""]
    return lines


def parse_n(items: list[str], default: int) -> dict[str, int]:
    """`["40", "sudoku=20"]` -> {"*": 40, "sudoku": 20}."""
    out = {"*": default}
    for item in items:
        task, _, n = item.rpartition("=")
        out[task or "*"] = int(n)
    return out


def describe_n(n: dict[str, int], tasks: list[str]) -> str:
    return ", ".join(f"{n.get(t, n['*'])} ({t})" for t in tasks)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", nargs="+", default=["arith", "sudoku"])
    ap.add_argument("--strategies", nargs="+", default=None,
                    help=f"default: those of {DEFAULT_STRATEGIES} that are built in")
    ap.add_argument("--n", action="append", default=[],
                    help="test problems per task: 200, or TASK=N for one task (repeatable)")
    ap.add_argument("--seeds", action="append", default=[],
                    help="run seeds per test configuration: 3, or TASK=N (repeatable)")
    ap.add_argument("--seed", type=int, default=0, help="first run seed")
    ap.add_argument("--val-n", action="append", default=[],
                    help="validation problems for tuning: 50, or TASK=N (repeatable)")
    ap.add_argument("--val-seed", type=int, default=7, help="seed of the validation draw")
    ap.add_argument("--grid", type=int, default=4, help="configurations tried per strategy")
    ap.add_argument("--budget", type=int, default=None, help="decodes per problem (default 8)")
    ap.add_argument("--max-k", type=int, default=64, help="largest best-of-K on the curve")
    ap.add_argument("--model", default=None, help="one model for every task (tiny-random)")
    ap.add_argument("--set", dest="sets", action="append", default=[],
                    help="decode override for every strategy, e.g. steps=32")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 problems, budget 4")
    ap.add_argument("--out", type=Path, default=ROOT / "results")
    ap.add_argument("--db", type=Path, default=Path(tempfile.gettempdir()) / "s3dsl-replication.db")
    args = ap.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    builtins = builtin_strategies()
    args.strategies = args.strategies or [s for s in DEFAULT_STRATEGIES
                                          if VARIANTS.get(s, (s,))[0] in builtins]
    args.n = parse_n(args.n, 2 if args.quick else 200)
    args.seeds = parse_n(args.seeds, 3)
    args.val_n = parse_n(args.val_n, 2 if args.quick else 50)
    args.budget = args.budget or (4 if args.quick else 8)
    sets = dict(s.split("=", 1) for s in args.sets)
    if args.quick:
        sets = {"gen_length": "16", "steps": "16", **sets}
        args.grid, args.seeds, args.max_k = min(args.grid, 2), {"*": 1}, 4
    args.sets = sets
    return args


FULL_PROTOCOL = {"n": 200, "seeds": 3, "val_n": 50, "grid": 4, "max_k": 64}


def _reduced(args: argparse.Namespace) -> str:
    """Says so when this run is smaller than the full protocol, and how."""
    got = {"n": min(args.n.get(t, args.n["*"]) for t in args.tasks),
           "seeds": min(args.seeds.get(t, args.seeds["*"]) for t in args.tasks),
           "val_n": min(args.val_n.get(t, args.val_n["*"]) for t in args.tasks),
           "grid": args.grid, "max_k": args.max_k}
    shown = {"n": describe_n(args.n, args.tasks), "val_n": describe_n(args.val_n, args.tasks),
             "seeds": describe_n(args.seeds, args.tasks)}
    smaller = [f"{k.replace('_', '-')} {shown.get(k, got[k])} (full: {v})"
               for k, v in FULL_PROTOCOL.items() if got[k] < v]
    if not smaller or args.quick:
        return ""
    return ("REDUCED PROTOCOL, to fit the machine: " + ", ".join(smaller) + "; differences "
            "smaller than the intervals below are not findings. ")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    sections = []
    with Store(args.db) as store:
        bench = Bench(args, store)
        for task in args.tasks:
            report, tuning = bench.task_report(task)
            sections += write_task(report, tuning, args.out, task)
    command = " ".join(["python benchmarks/replication.py", *(argv or sys.argv[1:])])
    head = [
        "# Replication: S3 and IMH claims on the shipped models", "",
        f"Test split, first {describe_n(args.n, args.tasks)} problems, "
        f"{describe_n(args.seeds, args.tasks)} run seeds from {args.seed}, "
        f"budget {args.budget} decodes per problem "
        f"for every search strategy. Hyperparameters: each strategy's first {args.grid} grid "
        f"configurations (benchmarks/replication.py `grid`) tried on "
        f"{describe_n(args.val_n, args.tasks)} validation "
        f"problems (drawn with seed {args.val_seed}, test prompts removed), the most accurate "
        f"kept: the same search budget for every strategy. "
        f"{'QUICK SMOKE RUN. ' if args.quick else ''}"
        f"{_reduced(args)}"
        f"Generated by `{command}` ({time.perf_counter() - start:,.0f}s for this invocation; "
        "stored results are reused, the per-task compute below is what the runs measured).", "",
        "Each strategy is compared with the best-of-K curve (K = 1, 2, 4, ... at best-of-K's "
        "tuned temperature) interpolated at its own *measured* forward passes per problem, on "
        "the same problems and seeds (paired): Δ's 95% CI is a paired bootstrap over problems, "
        "p is McNemar's exact test (with several seeds: the exact sign test over problems on "
        "seed-averaged outcomes) against the bracketing best-of-K run that spent at least as "
        "much (strategy ahead) or at most as much (behind). Forward passes are measured after "
        "the plan's passes (dedup merges identical sample states, so a confident model's "
        "best-of-K and S3 cost less than K x steps). pass@k is the unbiased estimator over each "
        "problem's final samples (S3's particles after resampling are not independent).", "",
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "replication.md").write_text("\n".join(head + sections))
    console.print(f"wrote {args.out / 'replication.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
