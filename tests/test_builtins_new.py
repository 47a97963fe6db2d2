"""The issue-13 built-ins (remdm, beam, fk, prism): each validates, runs on both shipped tasks with
their shipped models, and gives the reference interpreter's tokens at opt level 2."""

from __future__ import annotations

import pytest

from s3dsl.catalog import builtin_strategies
from s3dsl.compiler.lint import lint
from s3dsl.compiler.passes import plan
from s3dsl.dsl.loader import load_strategy
from s3dsl.models.registry import load_model
from s3dsl.session import compile_file, execute
from s3dsl.tasks.registry import get_task

NEW = ("remdm", "beam", "fk", "prism")
# fewer steps keep the reference interpreter quick; blocks and schedules stay as shipped
SMALL = {"arith": {"steps": "24"}, "sudoku": {"steps": "28"}}


@pytest.fixture(scope="module")
def models():
    return {name: load_model(get_task(name).default_model) for name in ("arith", "sudoku")}


def test_the_new_builtins_are_shipped_with_a_cited_header():
    for name in NEW:
        path = builtin_strategies()[name]
        header = path.read_text().splitlines()[0]
        assert header.startswith("# ") and ("arXiv" in path.read_text()[:600]
                                            or "BACKGROUND" in path.read_text()[:600])


@pytest.mark.parametrize("task", ["arith", "sudoku"])
@pytest.mark.parametrize("name", NEW)
def test_new_builtin_runs_with_identical_tokens_at_opt_0_and_2(name, task, models):
    the_task = get_task(task)
    path = builtin_strategies()[name]
    overrides = dict(SMALL[task])
    if name == "prism":
        overrides.pop("steps")  # prism fixes its own steps (4 blocks x spb)
    program = compile_file(path, overrides, the_task.gen_length, the_task.default_verifier)
    assert lint(program, load_strategy(path), task) == []
    problems = the_task.problems("test", 1)
    outs = []
    for level in (0, 2):
        results, _ = execute(plan(program, level), models[task], problems,
                             the_task.extract_answer, the_task.is_correct, seed=1)
        outs.append([[p.completion for p in r.particles] for r in results])
        assert all(r.nfe > 0 for r in results)
    assert outs[0] == outs[1]
