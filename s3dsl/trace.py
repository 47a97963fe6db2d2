"""Traces of a search: per problem and per step, what the population looked like.

The engine calls an observer after init, after every step and after final
(`s3dsl.runtime.engine.drive`); the observer here asks the backend for its `snapshot()` (the same
fields from the reference interpreter and the batched executor) and keeps one record per problem
per step: particle count, scores (min/mean/max), the ESS of the latest resample, resample /
remask / accept events in that step, distinct answers, forwards spent so far.

Traces are stored next to the results (a `traces` table, created on first use, keyed like
results: configuration and problem), exported as JSON, and drawn by s3dsl.trace_view.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from s3dsl.compiler.passes import Plan
from s3dsl.runtime.engine import StepContext
from s3dsl.runtime.model import MaskedLM
from s3dsl.runtime.results import ProblemResult
from s3dsl.store import RunRecord, Store, problem_key
from s3dsl.tasks.base import Problem

_SCHEMA = """
CREATE TABLE IF NOT EXISTS traces (
    config_key TEXT NOT NULL,
    problem_key TEXT NOT NULL,
    trace TEXT NOT NULL,
    PRIMARY KEY (config_key, problem_key)
);
"""
_CUMULATIVE = ("resamples", "remasks", "accepted", "proposed")

Trace = list[dict[str, Any]]  # one record per step of one problem


class Recorder:
    """The observer: one record per problem per step, events as per-step counts."""

    def __init__(self) -> None:
        self.traces: dict[str, Trace] = {}
        self._last: dict[str, dict] = {}

    def __call__(self, ctx: StepContext, backend: Any) -> None:
        phase = "init" if ctx.step < 0 else "final" if ctx.step >= ctx.steps else "step"
        for snap in backend.snapshot():
            pid = snap["id"]
            before = self._last.get(pid, {})
            record = {"step": ctx.step, "block": ctx.block, "phase": phase,
                      **{k: v for k, v in snap.items() if k != "id"}}
            for key in _CUMULATIVE:
                record[f"{key}_events"] = snap[key] - before.get(key, 0)
            self.traces.setdefault(pid, []).append(record)
            self._last[pid] = snap


def execute_traced(
    the_plan: Plan,
    model: MaskedLM,
    problems: Sequence[Problem],
    extract: Callable[[str], str | None],
    is_correct: Callable[[str | None, str], bool],
    seed: int = 0,
    batch_size: int = 8,
) -> tuple[list[ProblemResult], Any, dict[str, Trace]]:
    """`s3dsl.session.execute` with a recorder attached: the same results (observing
    reads state, draws no randomness), plus each problem's trace."""
    from s3dsl.session import execute

    recorder = Recorder()
    results, counters = execute(the_plan, model, problems, extract, is_correct, seed, batch_size,
                                observer=recorder)
    return results, counters, recorder.traces


# -- the store --------------------------------------------------------------------------------
def _ensure(store: Store) -> None:
    with store.db:
        store.db.executescript(_SCHEMA)


def save_traces(store: Store, config_key: str, items: Sequence[tuple[Problem, Trace]]) -> None:
    _ensure(store)
    with store.db:
        store.db.executemany("INSERT OR REPLACE INTO traces VALUES (?,?,?)",
                             [(config_key, problem_key(p), json.dumps(t)) for p, t in items])


def load_traces(store: Store, run: RunRecord) -> dict[str, Trace]:
    """The stored traces of a run's problems, by problem key (problems without one are absent)."""
    if store.read_only and not store.has_table("traces"):
        return {}  # a read-only store without traces: nothing to create, none stored
    if not store.read_only:
        _ensure(store)
    rows = store.db.execute("SELECT problem_key, trace FROM traces WHERE config_key=?",
                            (run.config_key,)).fetchall()
    wanted = set(run.problem_keys)
    return {pk: json.loads(t) for pk, t in rows if pk in wanted}


def delete_traces(store: Store, config_key: str) -> None:
    _ensure(store)
    with store.db:
        store.db.execute("DELETE FROM traces WHERE config_key=?", (config_key,))


def export(store: Store, runs: Sequence[RunRecord]) -> dict[str, Any]:
    """Runs with their per-problem results and traces, as one JSON-able document."""
    out = []
    for run in runs:
        traces = load_traces(store, run)
        done = store.finished(run.config_key, run.problem_keys)
        problems = []
        for pk in run.problem_keys:
            if pk not in done:
                continue
            s = done[pk]
            r = s.result
            problems.append({
                "id": r.id, "prompt": r.prompt, "gold": r.answer, "prediction": r.prediction,
                "correct": r.correct, "forwards": r.nfe, "score": r.score,
                "particles": [{"answer": p.answer, "score": p.score, "nll": p.nll,
                               "correct": ok, "completion": p.completion}
                              for p, ok in zip(r.particles, s.particle_correct)],
                "trace": traces.get(pk),
            })
        out.append({"run": run.short, "strategy": run.strategy, "task": run.task,
                    "model": run.model, "seed": run.seed, "params": run.config.get("params", {}),
                    "problems": problems})
    return {"runs": out}
