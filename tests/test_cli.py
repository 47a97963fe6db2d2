"""The CLI end to end, as a user runs it: exit codes, one-line errors, reports, JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SMALL = [
    "--task",
    "arith",
    "--model",
    "tiny-random",
    "--set",
    "gen_length=8",
    "--set",
    "steps=8",
    "--no-db",
]


def s3dsl(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "s3dsl", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def no_db(args: list[str]) -> list[str]:
    """`--no-db` only where the results store exists."""
    import inspect

    from s3dsl.cli.app import run

    return (
        args
        if "no_db" in inspect.signature(run).parameters
        else [a for a in args if a != "--no-db"]
    )


def test_run_builtin_by_name_writes_json(tmp_path):
    out = tmp_path / "r.json"
    proc = s3dsl(
        "run",
        "s3",
        "--limit",
        "2",
        "--set",
        "particles=2",
        *no_db(SMALL),
        "--json",
        str(out),
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "accuracy" in proc.stdout
    data = json.loads(out.read_text())
    for key in (
        "strategy",
        "model",
        "task",
        "n_problems",
        "accuracy",
        "nfe_total",
        "nfe_per_problem",
        "wall_s",
        "tokens_per_s",
        "per_problem",
    ):
        assert key in data
    assert data["n_problems"] == 2 and data["strategy"] == "s3"
    row = data["per_problem"][0]
    assert {"id", "prediction", "answer", "correct", "nfe", "score"} <= set(row)


def test_opt_levels_print_the_same_predictions(tmp_path):
    preds = []
    for level in ("0", "2"):
        out = tmp_path / f"{level}.json"
        proc = s3dsl(
            "run",
            "best_of_k",
            "--limit",
            "2",
            "--set",
            "k=3",
            *no_db(SMALL),
            "--opt-level",
            level,
            "--json",
            str(out),
            cwd=tmp_path,
        )
        assert proc.returncode == 0, proc.stderr
        preds.append([r["completion"] for r in json.loads(out.read_text())["per_problem"]])
    assert preds[0] == preds[1]


@pytest.mark.parametrize(
    ("content", "where", "hint"),
    [
        ("program:\n  step: denoise | resampel(4)\n", ":2:19: error:", "did you mean 'resample'?"),
        ("progam:\n  step: denoise\n", ":1:1: error:", "did you mean 'program'?"),
        ("program:\n  step: denoise | resample(4)\n", ":2:19: error:", "score(v)"),
        ("params: {k: 2}\nprogram:\n  init: expand(${kk})\n  step: denoise\n", ":3:", "'k'"),
    ],
)
def test_strategy_errors_are_one_line_with_position(tmp_path, content, where, hint):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    proc = s3dsl("run", str(path), *no_db(SMALL), cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith(str(path)) and where in line and hint in line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "missing.yaml"], "no such strategy file"),
        (["run", "s4"], "did you mean 's3'?"),
        (["run", "s3", "--model", "arith2"], "did you mean 'arith'?"),
        (["run", "s3", "--task", "arithm"], "did you mean 'arith'?"),
        (["run", "s3", "--set", "particels=2"], "did you mean 'particles'?"),
        (["list", "strategy"], "did you mean 'strategies'?"),
    ],
)
def test_user_errors_exit_2_without_traceback(tmp_path, args, message):
    proc = s3dsl(*args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and message in proc.stderr


def test_compile_explain_shows_passes():
    proc = s3dsl("compile", "s3", "--explain", "--model", "tiny-random")
    assert proc.returncode == 0, proc.stderr
    for word in ("IR", "forward-reuse", "share-parent-forward", "dedup", "peak memory"):
        assert word in proc.stdout


def test_validate_reports_each_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("program:\n  step: denoise | score(nope)\n")
    proc = s3dsl("validate", "single", str(bad))
    assert proc.returncode == 2
    assert "ok single" in proc.stdout and "bad.yaml:2:" in proc.stdout


def test_list_and_schema():
    for what in ("strategies", "primitives", "verifiers", "models", "tasks", "passes"):
        proc = s3dsl("list", what)
        assert proc.returncode == 0, proc.stderr
    assert "s3" in s3dsl("list", "strategies").stdout
    schema = json.loads(s3dsl("schema").stdout)
    assert schema["type"] == "object" and "program" in schema["properties"]


def test_text_form_strategy_runs(tmp_path):
    path = tmp_path / "mine.s3"
    path.write_text(
        'strategy mine "best of two by confidence"\n'
        "param k = 2\n"
        "init: expand(${k})\n"
        "step: denoise\n"
        "final: score(confidence) | select(by=score)\n"
    )
    proc = s3dsl("run", str(path), "--limit", "1", *no_db(SMALL), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "mine on arith" in proc.stdout


def test_the_run_table_says_whether_the_predicted_forwards_are_exact():
    from rich.console import Console

    from s3dsl.cli.views import run_table
    from s3dsl.session import run_strategy

    small = {"gen_length": "8", "steps": "8"}
    for strategy, label in (("single", "(exact)"), ("s3", "(upper bound)")):
        summary = run_strategy(strategy, "tiny-random", task="arith", limit=1, overrides=small)
        console = Console(width=120, record=True)
        console.print(run_table(summary))
        assert f"predicted per problem {label}" in console.export_text()
        assert summary.to_json()["predicted_exact"] is (label == "(exact)")


def test_help_reflows_paragraphs_at_80_columns():
    """A docstring's line breaks are not kept (they broke every wrapped line twice at 80 columns),
    and the options' help column keeps room to read (no `--no-` twin of a flag widens it)."""
    import os

    env = {**os.environ, "COLUMNS": "80"}
    out = subprocess.run([sys.executable, "-m", "s3dsl", "run", "--help"], capture_output=True,
                         text=True, env=env, timeout=300).stdout
    prose = out.split("╭")[0].splitlines()
    for line, after in zip(prose, prose[1:]):
        if line.strip() and after.strip():  # inside a paragraph: the line is filled
            assert len(line.rstrip()) > 45, line
    assert "math500.jsonl reads" in out.replace("`", "")
    assert "--no-trust-remote-code" not in out
    model_row = next(row for row in out.splitlines() if row.startswith("│ --model"))
    assert model_row.index("Model name") < 56, model_row
