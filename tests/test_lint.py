"""Compiler warnings (silent no-ops) with file:line:col, --strict, and `validate` listing every
independent error of a file."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from s3dsl.catalog import builtin_strategies
from s3dsl.cli.app import app
from s3dsl.compiler.build import build
from s3dsl.compiler.lint import all_errors, lint, particles_per_block
from s3dsl.dsl.loader import load_strategy, parse_strategy
from s3dsl.session import compile_file
from s3dsl.tasks.registry import get_task

runner = CliRunner()


def warnings_of(text: str, task: str | None = None) -> list[str]:
    strategy = parse_strategy(text, "w.yaml")
    program = build(strategy, None, 48, "arith-heuristic")
    return [w.render() for w in lint(program, strategy, task)]


def test_ess_condition_without_weight_never_changes():
    text = """program:
  init: expand(4)
  step:
    - denoise
    - score(confidence)
    - resample(4, weights=score, when="ess < 0.5")
  final: select(by=vote)
"""
    (w,) = warnings_of(text)
    assert w.startswith("w.yaml:6:7: warning: resample(") and "no `weight`" in w


def test_ess_condition_on_score_weights_reads_the_log_weights():
    text = """program:
  init: expand(4)
  step:
    - denoise
    - weight(logprob)
    - score(confidence)
    - resample(4, when="ess < 0.5")
  final: select(by=vote)
"""
    (w,) = warnings_of(text)
    assert "w.yaml:7:7" in w and "not of those score weights" in w


def test_weights_nothing_reads():
    text = "program:\n  init: expand(2)\n  step: denoise | weight(logprob)\n"
    (w,) = warnings_of(text)
    assert w.startswith("w.yaml:3:19: warning: weight updates log-weights that nothing reads")


def test_select_by_score_without_a_score_stage():
    (w,) = warnings_of("program:\n  step: denoise\n  final: select(by=score)\n")
    assert w.startswith("w.yaml:3:10: warning: select(by=score)") and "by=logprob" in w


def test_strata_ignored_with_by_answer_and_unused_strata():
    text = """program:
  init: expand(4)
  step:
    - denoise
    - score(confidence)
    - stratify(3, by=answer)
  final: select(by=vote)
"""
    ws = warnings_of(text)
    assert any("strata= is ignored" in w and "w.yaml:6:7" in w for w in ws)
    assert any("no resample(within=strata)" in w for w in ws)
    used = text.replace("    - stratify(3, by=answer)\n",
                        "    - stratify(by=answer)\n    - resample(4, within=strata)\n")
    assert warnings_of(used) == []


def test_a_stage_whose_schedule_matches_no_step():
    text = ("decode:\n  steps: 8\nprogram:\n  step:\n    - denoise\n"
            "    - remask(count=1, every=16, offset=9)\n")
    (w,) = warnings_of(text)
    assert w.startswith("w.yaml:6:7: warning: remask [every=16+9] never runs")


def test_a_task_verifier_on_another_task():
    text = "verifiers:\n  v: sudoku-constraints\nprogram:\n  step: denoise | score(v)\n"
    (w,) = warnings_of(text, task="arith")
    assert w.startswith("w.yaml:2:6: warning: verifier 'v' uses sudoku-constraints")
    assert warnings_of(text, task="sudoku") == []
    assert warnings_of(text) == []  # task unknown: no check


@pytest.mark.parametrize("name", sorted(builtin_strategies()))
@pytest.mark.parametrize("task", ["arith", "sudoku"])
def test_builtins_have_no_warnings(name, task):
    t = get_task(task)
    path = builtin_strategies()[name]
    program = compile_file(path, None, t.gen_length, t.default_verifier)
    assert lint(program, load_strategy(path), task) == []


def test_validate_lists_warnings_exit_0_and_strict_makes_them_errors(tmp_path):
    path = tmp_path / "w.yaml"
    path.write_text("program:\n  step: denoise\n  final: select(by=score)\n")
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 0 and "w.yaml:3:10: warning:" in result.output
    result = runner.invoke(app, ["validate", str(path), "--strict"])
    assert result.exit_code == 2
    result = runner.invoke(app, ["compile", str(path), "--strict"])
    assert result.exit_code == 2


def test_validate_reports_every_independent_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("""decode:
  stepz: 3
verifiers:
  v: arith-heuristc
program:
  init: expand(4)
  step:
    - denoise(rule=confidnce)
    - score(v)
    - resample(4, method=sspp)
  final: select(by=votes)
""")
    errors = all_errors(load_strategy(path), None, 48, "arith-heuristic")
    assert [(e.span.line, e.span.column) for e in errors] == [
        (2, 3), (4, 6), (8, 15), (10, 19), (11, 17)]
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2 and result.output.count("error:") == 5


def test_explain_shows_schedules_and_particles_per_block():
    result = runner.invoke(app, ["compile", "prism", "--task", "arith", "--explain"])
    assert result.exit_code == 0, result.output
    assert "[every=32+7]" in result.output
    assert "particles per block" in result.output
    t = get_task("arith")
    program = compile_file(builtin_strategies()["prism"], None, t.gen_length, t.default_verifier)
    assert particles_per_block(program)[0] == (8, 8, 4)
    smc = runner.invoke(app, ["compile", "smc", "--explain"])
    flat = "".join(ch for ch in smc.output if ch not in " \n│")
    assert 'at=block_endwhen="ess<0.5"' in flat


def test_run_warns_about_a_verifier_of_another_task_and_strict_stops_it(tmp_path):
    path = tmp_path / "v.yaml"
    path.write_text("verifiers:\n  v: sudoku-constraints\nprogram:\n  step: denoise | score(v)\n")
    result = runner.invoke(app, ["run", str(path), "--task", "arith", "--strict", "--no-db"])
    assert result.exit_code == 2
    assert "v.yaml:2:6: warning: verifier 'v' uses sudoku-constraints" in result.output
