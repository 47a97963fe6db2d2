"""The results store: keys, round trips, and resume after a killed process (same results)."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from s3dsl.dsl.errors import S3DSLError
from s3dsl.runtime.results import ProblemResult
from s3dsl.runtime.scoring import ParticleOutcome
from s3dsl.store import Store, StoredResult, data_hash, problem_key, result_from_json
from s3dsl.tasks.base import Problem

CLI = [sys.executable, "-c", "from s3dsl.cli import main; main()"]
SMALL = ["--model", "tiny-random", "--set", "gen_length=8", "--set", "steps=8"]


def _result(pid: str, correct: bool) -> ProblemResult:
    particles = [ParticleOutcome("1#2", "2", 0.5, 0.25), ParticleOutcome("x", None, 1.5, 0.0)]
    return ProblemResult(pid, "1+1=", "2", "2", "1#2", correct, 9, 0.25, particles,
                         accepted=1, proposed=3, resamples=2, min_ess=0.5)


def test_result_json_round_trip():
    r = _result("a", True)
    assert result_from_json(json.loads(json.dumps(r.to_json()))) == r


def test_store_round_trip_and_lookup(tmp_path):
    problems = [Problem(f"p{i}", f"{i}+1=", str(i + 1)) for i in range(3)]
    config = {"strategy": "s", "task": "t", "model": {"name": "m"}, "seed": 0, "opt_level": 2}
    with Store(tmp_path / "r.db") as store:
        run = store.open_run(config, problems, {"single_nfe": 8})
        assert store.open_run(config, problems, {"single_nfe": 9}).id == run.id
        assert store.run_results(run) == []
        store.add(run.config_key, [(problems[1], StoredResult(_result("p1", True), [True, False],
                                                               0.5, 10.0))])
        got = store.run_results(run)
        assert len(got) == 1 and got[0].result == _result("p1", True)
        assert got[0].particle_correct == [True, False] and got[0].wall_s == 0.5
        assert store.get_run(str(run.id)).key == run.key
        assert store.get_run(run.key[:6]).meta == {"single_nfe": 9}
        # a run over a superset of problems reuses what the same configuration finished
        bigger = store.open_run(config, [*problems, Problem("p3", "9+1=", "10")], {})
        assert bigger.id != run.id and store.count_done(bigger) == 1
        with pytest.raises(S3DSLError, match="no run"):
            store.get_run("zzzz")
    assert data_hash(problems) != data_hash(problems[:2])
    assert problem_key(problems[0]) != problem_key(Problem("p0", "0+1=", "2"))


def _done(db) -> int:
    try:
        with sqlite3.connect(db, timeout=5) as con:
            return con.execute("SELECT COUNT(*) FROM results").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def _results(db) -> dict[str, dict]:
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT problem_id, result FROM results").fetchall()
    return {pid: json.loads(r) for pid, r in rows}


def test_resume_after_kill_gives_the_uninterrupted_results(tmp_path):
    # batches of ~0.4 s, so the kill sent at the first stored batch lands before the last one
    args = ["run", "s3", "--model", "tiny-random", "--set", "gen_length=64", "--set", "steps=64",
            "--set", "particles=4", "--set", "candidates=4", "--limit", "8", "--batch-size", "2"]
    killed = tmp_path / "killed.db"
    proc = subprocess.Popen([*CLI, *args, "--db", str(killed)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=tmp_path)
    deadline = time.time() + 120
    while _done(killed) == 0 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    done = _done(killed)
    assert 0 < done < 8, f"kill landed at {done} of 8 problems; the test needs a mid-run kill"
    assert done % 2 == 0  # whole batches only

    resumed = subprocess.run([*CLI, *args, "--db", str(killed)], capture_output=True, text=True,
                             cwd=tmp_path, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed: {done} of 8 problems already done" in resumed.stdout

    from typer.testing import CliRunner

    from s3dsl.cli.app import app

    fresh = tmp_path / "fresh.db"
    whole = CliRunner().invoke(app, [*args, "--db", str(fresh)])
    assert whole.exit_code == 0, whole.output
    assert "resumed" not in whole.output
    assert _results(killed) == _results(fresh) and len(_results(fresh)) == 8


def test_no_db_writes_nothing_and_rerun_skips(tmp_path):
    from typer.testing import CliRunner

    from s3dsl.cli.app import app

    runner = CliRunner()
    base = ["run", "single", *SMALL, "--limit", "2"]
    result = runner.invoke(app, [*base, "--no-db", "--db", str(tmp_path / "x.db")])
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "x.db").exists()
    db = str(tmp_path / "y.db")
    assert runner.invoke(app, [*base, "--db", db]).exit_code == 0
    again = runner.invoke(app, [*base, "--db", db, "--limit", "3"])
    assert again.exit_code == 0, again.output
    assert "resumed: 2 of 3 problems already done" in again.output
    listing = runner.invoke(app, ["runs", "--db", db])
    assert listing.exit_code == 0 and "single" in listing.output


def test_approximate_runs_are_stored_apart_from_exact_ones():
    from s3dsl.catalog import builtin_strategies
    from s3dsl.compiler.passes import plan
    from s3dsl.models.registry import load_model
    from s3dsl.resume import run_config
    from s3dsl.session import compile_file
    from s3dsl.tasks.registry import get_task

    task, model = get_task("arith"), load_model("tiny-random")
    program = compile_file(builtin_strategies()["single"], {}, task.gen_length)
    exact = run_config(plan(program, 2), model, task, 0)
    assert "approximate" not in exact  # exact plans keep the keys they always had
    approx = run_config(plan(program, 2, enable=("approx-prompt-cache",)), model, task, 0)
    assert approx["approximate"] == ["approx-prompt-cache"]
