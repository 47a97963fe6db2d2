"""Planted bugs: how many semantic mutations of the runtime and compiler the fast tests catch.

Each mutant is one source patch (an exact text replaced once) in a primitive, a pass or a counter.
The harness copies the package and the tests to a temporary directory, applies one patch at a
time, runs the fast tests there (`pytest -x`: the run stops at the first failure; hypothesis does
not shrink there: S3DSL_NO_SHRINK) and records which test caught it. A mutant that makes the tests
time out counts as caught.

    python benchmarks/mutants.py --out benchmarks/results          # all mutants
    python benchmarks/mutants.py --only remask-inverted            # one
    python benchmarks/mutants.py --shard 0/2 --out R & python benchmarks/mutants.py --shard 1/2 \
        --out R; python benchmarks/mutants.py --report-only --out R   # two workers, then the report

Every finished mutant is appended to OUT/mutants.jsonl, so shards and interrupted runs combine
(mutants already there are skipped).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EQ = "tests/test_equivalence.py::test_"
TESTS = ("tests/test_dedup.py", "tests/test_runtime.py", "tests/test_compiler.py",
         EQ + "generated_strategies_match_the_reference_on_a_random_model",
         EQ + "predicted_forwards_equal_measured_at_temperature_zero",
         EQ + "stratified_resampling_matches_the_reference",
         EQ + "score_potentials_match_the_reference",
         EQ + "pure_denoise_builtins_match_the_reference_at_every_level",
         EQ + "generated_strategies_match_the_reference_on_a_trained_model",
         EQ + "the_generator_reaches_every_primitive_argument_and_schedule",
         EQ + "strategies_that_split_the_batch_match_the_reference", "tests/test_branches.py",
         "tests/test_particle_schedules.py", "tests/test_cost_commits.py",
         "tests/test_real_models.py::test_logits_of_the_last_positions_only")
EX, REF = "s3dsl/runtime/executor.py", "s3dsl/runtime/reference.py"
SEM, FW = "s3dsl/runtime/semantics.py", "s3dsl/runtime/forwards.py"
TR, COST = "s3dsl/runtime/transition.py", "s3dsl/compiler/cost.py"
COH, BR = "s3dsl/runtime/cohorts.py", "s3dsl/compiler/branches.py"


def op(name: str) -> str:
    """The module of one primitive (its facts, its math and its batched semantics)."""
    return f"s3dsl/compiler/ops/{name}.py"


@dataclass(frozen=True)
class Mutant:
    name: str
    area: str  # the primitive, pass or counter it breaks
    path: str
    old: str
    new: str


MUTANTS: tuple[Mutant, ...] = (
    Mutant("expand-same-child-keys", "expand", op("expand"),
           "rng.mix(pop.key, child)", "rng.mix(pop.key, 0)"),
    Mutant("expand-ref-key-step", "expand", REF,
           "key=rng.mix_int(p.key, op.uid, ctx.step, j)",
           "key=rng.mix_int(p.key, op.uid, ctx.step + 1, j)"),
    Mutant("denoise-forgets-logp", "denoise", EX,
           "torch.where(commit, x0_logp, logp)",
           "torch.where(commit, x0_logp, 0 * logp)"),
    Mutant("margin-reversed", "denoise (margin)", TR,
           "conf = top2[..., 0] - top2[..., 1]", "conf = top2[..., 1] - top2[..., 0]"),
    Mutant("commit-count-off-by-one", "denoise (schedule)", TR,
           "masked_in_region + (steps_left - 1)", "masked_in_region + (steps_left - 2)"),
    Mutant("score-prev-not-kept", "score", op("score"),
           "pop.prev_score, pop.score = pop.score, values",
           "pop.prev_score, pop.score = values, values"),
    Mutant("score-best-is-min", "score", op("score"),
           "pop.best_score = torch.maximum(pop.best_score, values)",
           "pop.best_score = torch.minimum(pop.best_score, values)"),
    Mutant("stratify-reversed", "stratify", op("stratify"),
           "score_strata(ex.pop.score[sl].cpu()", "score_strata(-ex.pop.score[sl].cpu()"),
    Mutant("stratify-shared-reversed", "stratify", op("stratify"),
           "order = torch.sort(-scores, stable=True).indices",
           "order = torch.sort(scores, stable=True).indices"),
    Mutant("stratify-answer-one-bin", "stratify", op("stratify"),
           "labels = [seen.setdefault(a, len(seen))", "labels = [seen.setdefault(a, 0)"),
    Mutant("resample-keeps-logw", "resample", op("resample"),
           "pop.logw = torch.where(moved, torch.zeros_like(pop.logw), pop.logw)",
           "pop.logw = pop.logw"),
    Mutant("resample-beta-multiplies", "resample", op("resample"),
           'torch.tensor(scores, dtype=torch.float64) / args["beta"]',
           'torch.tensor(scores, dtype=torch.float64) * args["beta"]'),
    Mutant("resample-ignores-strata", "resample", op("resample"),
           'strata = ex.pop.stratum[sl].cpu() if op.args["within"] == "strata" else None',
           "strata = None"),
    Mutant("resamples-counter", "counter: resamples", op("resample"),
           "ex.resamples[b] += 1", "ex.resamples[b] += 0"),
    Mutant("min-ess-is-max", "counter: min ESS", op("resample"),
           "min(ex.min_ess[b], ess)", "max(ex.min_ess[b], ess)"),
    Mutant("weight-prev-best-swapped", "weight", op("weight"),
           "pop.logw, pop.step_logp, pop.score, pop.prev_score, pop.best_score, op.args",
           "pop.logw, pop.step_logp, pop.score, pop.best_score, pop.prev_score, op.args"),
    Mutant("weight-logprob-uncommitted", "weight", op("base"),  # the executor's step log-prob
           "copy_(torch.where(commit, x0_logp, 0.0))",
           "copy_(torch.where(commit | True, x0_logp, 0.0))"),
    Mutant("mh-tilted-negated", "mh-accept", op("mh_accept"),
           'else 1.0 / targs["beta"]', 'else -1.0 / targs["beta"]'),
    Mutant("mh-accepted-counter", "counter: accepted", op("mh_accept"),
           "ex.accepted[b] += accepted", "ex.accepted[b] += k - 1"),
    Mutant("mh-proposed-counter", "counter: proposed", REF,
           "s.proposed += k - 1", "s.proposed += k"),
    Mutant("remask-inverted", "remask", op("remask"),
           "priority = logp.double()", "priority = -logp.double()"),
    Mutant("remask-stale-forward", "remask (forward cache)", op("remask"),
           "pop.slot[chosen.any(dim=1)] = -1", "pass"),
    Mutant("select-ignores-by", "select", op("select"),
           'if by == "score":', 'if by == "never":'),
    Mutant("nll-sign", "select (nll)", REF,
           "nll = -float(sequence_logprob(p.logp))", "nll = float(sequence_logprob(p.logp))"),
    Mutant("nfe-counter", "counter: nfe", FW,
           "self.nfe[b] += 1", "self.nfe[b] += 2"),
    Mutant("nfe-static-counter", "counter: nfe (static)", "s3dsl/runtime/static.py",
           "ex.nfe = [k + ex.n for k in ex.nfe]", "ex.nfe = [k + 1 for k in ex.nfe]"),
    Mutant("prune-worst", "prune", op("prune"), "sorted(key)[:n]", "sorted(key)[-n:]"),
    Mutant("share-parent-inverted", "pass: share-parent-forward", op("expand"),
           'gather is None or gather.get("cache") != "keep"',
           'gather is None or gather.get("cache") == "keep"'),
    Mutant("reuse-ignores-window", "pass: forward-reuse", FW,
           "covers = cache is not None and cache.w0 <= w0 and cache.w1 >= w1",
           "covers = cache is not None"),
    Mutant("dedup-wrong-rows", "pass: dedup", FW,
           "pop.slot[rows] = base + inverse", "pop.slot[rows] = base + inverse.flip(0)"),
    Mutant("dedup-trusts-the-hash", "pass: dedup", "s3dsl/runtime/dedup.py",
           "if not bool((ids[first][inverse] == ids).all()):", "if False:"),
    Mutant("denoise-window-unindexed", "pass: dedup", "s3dsl/compiler/ops/denoise.py",
           "    if not in_order:  # each row's cache row", "    if False:"),
    Mutant("prompt-cache-wrong-prompt", "pass: prompt-cache", FW,
           "answer_logits(self.model, self.prompts, owners,",
           "answer_logits(self.model, self.prompts, owners.flip(0),"),
    Mutant("static-forgets-logp", "pass: static-steps", "s3dsl/runtime/static.py",
           "commit_logp = torch.where(commit, x0_logp, commit_logp)",
           "commit_logp = torch.where(commit, x0_logp, 0 * commit_logp)"),
    Mutant("oom-halving-counter", "pass: chunking", FW,
           "self.counters.oom_halvings += 1", "self.counters.oom_halvings += 0"),
    Mutant("cost-ignores-dedup", "cost model", COST,
           "paid = 0 if free else (walk.distinct if dedup else walk.n)",
           "paid = 0 if free else walk.n"),
    Mutant("split-runs-the-wrong-cohort", "when= split (cohorts)", COH,
           "ran, passed = subset(part, active), subset(part, ~active)",
           "ran, passed = subset(part, ~active), subset(part, active)"),
    Mutant("split-loses-prompt-rows", "when= split (prompt cache)", COH,
           "part.owner = ex.owner[torch.tensor(problems, device=ex.owner.device)]",
           "part.owner = ex.owner[: len(problems)]"),
    Mutant("paths-merge-keeps-cheapest", "cost model (when= paths)", COST,
           "forwards=max(known.forwards, w.forwards)", "forwards=min(known.forwards, w.forwards)"),
    Mutant("paths-drop-the-untaken-branch", "cost model and shapes (when= paths)", BR,
           "        if decided is not True:\n            out.append(skip(path))",
           "        if decided is False:\n            out.append(skip(path))"),
    Mutant("rewrite-keeps-drop-cache", "pass: forward-reuse (rewrite)",
           "s3dsl/compiler/rewrites.py",
           'p = p.map_nodes("drop-cache", lambda s, n: None)',
           'p = p.map_nodes("drop-cache", lambda s, n: n)'),
    Mutant("schedule-commit-uses-decode", "per-particle schedules", op("denoise"),
           "ex.commit(op, at, rows, window, w0, decode)",
           "ex.commit(op, at, rows, window, w0)"),
    Mutant("schedule-children-shifted", "per-particle schedules", op("expand"),
           "pop.sched = table[child % len(table)]", "pop.sched = table[(child + 1) % len(table)]"),
    Mutant("schedule-ref-block-of-decode", "per-particle schedules", REF,
           "ctx = mine[step_ctx.step]", "ctx = self.contexts[0][step_ctx.step]"),
    Mutant("schedule-cost-never-fills", "cost model", "s3dsl/compiler/schedule_cost.py",
           "c.committed = committed_after(c.committed, at, rule, decode)",
           "c.committed = c.committed"),
    Mutant("schedule-cost-ignores-window", "cost model (per-particle schedules)",
           "s3dsl/compiler/schedule_cost.py", "if not reuse or walk.window < w1:",
           "if not reuse:"),
    Mutant("skipped-score-counts-as-scored", "compiler checks (when= paths)",
           "s3dsl/compiler/branches.py", 'prim.provides - {"groups", "scored"}',
           'prim.provides - {"groups"}'),
    Mutant("answer-logits-drop-the-shift", "forwards (answer-only logits)",
           "s3dsl/runtime/model.py",
           "return min(width, gen_length + int(model.shifted_logits))",
           "return min(width, gen_length)"),
    Mutant("answer-logits-off-by-one", "forwards (answer-only logits)",
           "s3dsl/models/transformer.py", "x = x[:, n - min(last, n):]",
           "x = x[:, n - min(last, n) - 1:n - 1]"),
    Mutant("cost-fills-only-at-block-end", "cost model (commits per denoise)", COST,
           "return committed + -(-masked // ctx.steps_left)", "return committed"),
    Mutant("static-step-with-emptied-blocks", "pass: static-steps", "s3dsl/compiler/rewrites.py",
           "    if len(denoise) != 1 or denoise[0].schedule.at",
           "    if len(denoise) < 1 or denoise[0].schedule.at"),
)


@dataclass
class Outcome:
    name: str
    area: str
    path: str
    caught: bool
    by: str  # the first failing test, "timeout", or "" when not caught
    seconds: float


def copy_tree(dest: Path) -> None:
    for folder in ("s3dsl", "tests", "strategies"):
        shutil.copytree(ROOT / folder, dest / folder,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", dest / "pyproject.toml")


def run_one(mutant: Mutant, work: Path, timeout: int) -> Outcome:
    target = work / mutant.path
    original = target.read_text()
    if original.count(mutant.old) != 1:
        raise SystemExit(f"mutant {mutant.name}: the text to replace occurs "
                         f"{original.count(mutant.old)} times in {mutant.path}")
    target.write_text(original.replace(mutant.old, mutant.new))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1",
           "S3DSL_NO_SHRINK": "1"}
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
             *TESTS],
            cwd=work, env=env, capture_output=True, text=True, timeout=timeout,
        )
        failed = re.findall(r"^FAILED (\S+)", proc.stdout, re.M)
        errors = re.findall(r"^ERROR (\S+)", proc.stdout, re.M)
        caught = proc.returncode != 0
        by = (failed or errors or [f"(exit {proc.returncode})"])[0] if caught else ""
    except subprocess.TimeoutExpired:
        caught, by = True, "timeout"
    finally:
        target.write_text(original)
    return Outcome(mutant.name, mutant.area, mutant.path, caught, by,
                   round(time.perf_counter() - start, 1))


def report(outcomes: list[Outcome]) -> str:
    caught = sum(o.caught for o in outcomes)
    rate = 100 * caught / max(len(outcomes), 1)
    lines = [
        "# Planted bugs caught by the fast tests",
        "",
        f"`python benchmarks/mutants.py` ran {len(outcomes)} mutants against "
        f"{', '.join(TESTS)} (`pytest -x`, 1 torch thread): **{caught} caught "
        f"({rate:.0f}%)**.",
        "",
        "| mutant | breaks | file | caught by | s |",
        "| --- | --- | --- | --- | ---: |",
    ]
    for o in outcomes:
        by = o.by.split("::")[-1] if o.caught else "**not caught**"
        lines.append(f"| `{o.name}` | {o.area} | `{o.path}` | {by} | {o.seconds:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--shard", default="0/1", help="i/k: run every k-th mutant from the i-th")
    parser.add_argument("--timeout", type=int, default=600)
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "mutants.jsonl"
    done = {}
    if log.exists():
        for line in log.read_text().splitlines():
            row = json.loads(line)
            done[row["name"]] = Outcome(**row)
    index, shards = (int(x) for x in args.shard.split("/"))
    chosen = [m for i, m in enumerate(MUTANTS)
              if (not args.only or m.name in args.only) and i % shards == index
              and m.name not in done]
    if not args.report_only and chosen:
        with tempfile.TemporaryDirectory(prefix="s3dsl-mutants-") as tmp:
            work = Path(tmp)
            copy_tree(work)
            for mutant in chosen:
                outcome = run_one(mutant, work, args.timeout)
                with log.open("a") as f:
                    f.write(json.dumps(asdict(outcome)) + "\n")
                print(f"{'caught' if outcome.caught else 'MISSED'}  {mutant.name:30s} "
                      f"{outcome.by}  ({outcome.seconds:.0f} s)", flush=True)
                done[mutant.name] = outcome
    outcomes = [done[m.name] for m in MUTANTS if m.name in done]
    text = report(outcomes)
    if len(outcomes) < len(MUTANTS):
        text += f"\n{len(MUTANTS) - len(outcomes)} of {len(MUTANTS)} mutants not run yet.\n"
    print(text)
    (args.out / "mutants.md").write_text(text)
    rows = [asdict(o) for o in outcomes]
    (args.out / "mutants.json").write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
