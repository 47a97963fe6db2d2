"""What already held in issue 12's fuzzing, kept: an interrupted run (SIGINT) resumes to the
uninterrupted results, two writers on one database lose nothing, and the same seed gives the same
tokens at any torch thread count. (SIGKILL: tests/test_store.py; batch size, chunk size and opt
level: tests/test_runtime.py.)"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time

import torch
from test_store import _done, _results  # the store's readers, shared with the kill test

from s3dsl.catalog import resolve_strategy
from s3dsl.compiler.passes import plan
from s3dsl.session import compile_file, execute
from s3dsl.tasks.registry import get_task

CLI = [sys.executable, "-c", "from s3dsl.cli import main; main()"]
ARGS = ["run", "s3", "--model", "tiny-random", "--set", "gen_length=8", "--set", "steps=8",
        "--set", "particles=2", "--set", "candidates=2", "--limit", "8", "--batch-size", "2"]
# Batches that take a while (~0.4 s each here): with ARGS' few milliseconds a fast engine finished
# all 8 problems before the SIGINT sent at the first stored batch landed (exit 0, not 130).
SLOW_ARGS = [*ARGS, "--set", "gen_length=64", "--set", "steps=64", "--set", "particles=4",
             "--set", "candidates=4"]


def test_resume_after_sigint_gives_the_uninterrupted_results(tmp_path):
    stopped = tmp_path / "stopped.db"
    # SIGINT at its default in the child, whatever this process inherited: a test suite started
    # in the background by a non-interactive shell ignores SIGINT, its children would too, and
    # the run would finish untouched (exit 0)
    proc = subprocess.Popen([*CLI, *SLOW_ARGS, "--db", str(stopped)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while _done(stopped) == 0 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    done = _done(stopped)
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err, err
    assert 0 < done < 8 and done % 2 == 0, f"SIGINT landed at {done} of 8 problems"
    resumed = subprocess.run([*CLI, *SLOW_ARGS, "--db", str(stopped)], capture_output=True,
                             text=True, cwd=tmp_path, timeout=300)
    assert resumed.returncode == 0 and f"resumed: {done} of 8" in resumed.stdout, resumed.stderr
    from typer.testing import CliRunner

    from s3dsl.cli.app import app

    fresh = tmp_path / "fresh.db"
    whole = CliRunner().invoke(app, [*SLOW_ARGS, "--db", str(fresh)])
    assert whole.exit_code == 0, whole.output
    assert _results(stopped) == _results(fresh) and len(_results(fresh)) == 8


def test_two_writers_on_one_database_lose_nothing(tmp_path):
    db = tmp_path / "shared.db"
    writers = [subprocess.Popen([*CLI, *ARGS, "--seed", str(seed), "--batch-size", "1",
                                 "--limit", "5", "--db", str(db)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, cwd=tmp_path)
               for seed in (1, 2)]
    for proc in writers:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    with sqlite3.connect(db) as con:
        per_config = con.execute(
            "SELECT COUNT(*) FROM results GROUP BY config_key").fetchall()
        runs = con.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    assert sorted(n for (n,) in per_config) == [5, 5] and runs == 2


def test_same_seed_same_tokens_at_any_thread_count(tiny_model):
    task = get_task("arith")
    program = compile_file(resolve_strategy("s3"), {"gen_length": "8", "steps": "8",
                                                    "particles": "2", "candidates": "2"})
    problems = task.problems("test", 2)

    def tokens(threads: int) -> list[list[str]]:
        torch.set_num_threads(threads)
        try:
            results, _ = execute(plan(program, 2), tiny_model, problems, task.extract_answer,
                                 task.is_correct, 7, 2)
        finally:
            torch.set_num_threads(1)
        return [[p.completion for p in r.particles] for r in results]

    assert tokens(2) == tokens(1)
