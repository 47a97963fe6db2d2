"""Traces: both backends record the same search, tracing changes no result, and the drawings
and the HTML page are written from the store."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from s3dsl.catalog import builtin_strategies
from s3dsl.cli.app import app
from s3dsl.compiler.passes import plan
from s3dsl.models.registry import load_model
from s3dsl.session import compile_file, execute
from s3dsl.tasks.registry import get_task
from s3dsl.trace import execute_traced

SMALL = {"gen_length": "8", "steps": "8", "particles": "3", "candidates": "2"}


def _traced(opt_level: int):
    task, model = get_task("arith"), load_model("tiny-random")
    program = compile_file(builtin_strategies()["s3"], SMALL, task.gen_length,
                           task.default_verifier)
    the_plan = plan(program, opt_level)
    problems = task.problems("test", 3)
    args = (the_plan, model, problems, task.extract_answer, task.is_correct, 0, 2)
    return execute(*args)[0], execute_traced(*args)


def test_both_backends_trace_the_same_search_and_tracing_changes_nothing():
    plain0, (traced0, _, trace0) = _traced(0)
    plain2, (traced2, _, trace2) = _traced(2)
    assert [r.completion for r in plain0] == [r.completion for r in traced0]
    assert [r.completion for r in plain2] == [r.completion for r in traced2]
    assert set(trace0) == {r.id for r in plain0}
    for pid, steps in trace0.items():
        assert [t["step"] for t in steps] == list(range(-1, 9))  # init, 8 steps, final
        assert [t["phase"] for t in steps][::9] == ["init", "final"]
        assert all(t["particles"] == 3 for t in steps)
        assert sum(t["resamples_events"] for t in steps) == 8  # one resample per step
        assert steps[-1]["forwards"] == next(r.nfe for r in traced0 if r.id == pid)
        forwards = [t["forwards"] for t in steps]
        assert forwards == sorted(forwards)
        # the executor shares forwards (dedup), so only the forward count may differ; scores
        # and ESS to float32 round-off (batched forwards change the last bits of the logits)
        drop = ("forwards",)
        for mine, theirs in zip(steps, trace2[pid], strict=True):
            assert {k for k in mine if k not in drop} == {k for k in theirs if k not in drop}
            for k, v in mine.items():
                if k not in drop:
                    assert theirs[k] == (pytest.approx(v, rel=1e-5, abs=1e-6)
                                         if isinstance(v, float) else v), k
        assert all(0 < t["ess"] <= 1 for t in steps[1:])


def test_trace_is_stored_exported_and_drawn(tmp_path):
    db, out = str(tmp_path / "r.db"), tmp_path / "trace"
    args = ["compare", "s3", "--model", "tiny-random", "--task", "arith", "--limit", "2",
            "--db", db, "--threads", "1", "--max-k", "2",
            *[x for k, v in SMALL.items() for x in ("--set", f"{k}={v}")]]
    result = CliRunner().invoke(app, [*args, "--trace", str(out)])
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "trace.json").read_text())
    strategies = [r["strategy"] for r in doc["runs"]]
    assert strategies[0] == "s3" and "best_of_k" in strategies
    s3 = doc["runs"][0]["problems"][0]
    assert len(s3["trace"]) == 10 and len(s3["particles"]) == 3
    assert {"answer", "score", "correct"} <= set(s3["particles"][0])
    page = (out / "index.html").read_text()
    assert "arith-test-1" in page and "vs ref" in page and s3["prompt"] in page
    assert (out / "overview.png").stat().st_size > 0 and (out / "problem-1.png").is_file()
    # a second traced compare reads the traces from the store: nothing recomputed, same page
    again = CliRunner().invoke(app, [*args, "--trace", str(tmp_path / "again")])
    assert again.exit_code == 0, again.output
    assert json.loads((tmp_path / "again" / "trace.json").read_text()) == doc
