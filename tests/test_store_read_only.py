"""A results database the user cannot write is served, not refused: what it holds is read (runs,
report, run / compare of stored results); what would need a new result exits 2 before computing.

Tests may run as root, whom chmod does not stop: the store is made read-only here either
explicitly (`Store(path, read_only=True)`, a `mode=ro` URI) or by standing in for the permission
check (`_writable`), so the code paths are exercised either way; the real permission check is
tested where the tests do not run as root.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import sys

import pytest
from typer.testing import CliRunner

import s3dsl.store as store_module
from s3dsl.cli.app import app
from s3dsl.dsl.errors import S3DSLError
from s3dsl.runtime.results import ProblemResult
from s3dsl.store import Store, StoredResult
from s3dsl.tasks.base import Problem

SMALL = ["--model", "tiny-random", "--set", "gen_length=8", "--set", "steps=8", "--threads", "1"]
CONFIG = {"strategy": "s", "task": "t", "model": {"name": "m"}, "seed": 0, "opt_level": 2}


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _stored(path, n: int = 2) -> list[Problem]:
    problems = [Problem(f"p{i}", f"{i}+1=", str(i + 1)) for i in range(n + 1)]
    with Store(path) as store:
        run = store.open_run(CONFIG, problems[:n], {"single_nfe": 8})
        store.add(run.config_key, [
            (p, StoredResult(ProblemResult(p.id, p.prompt, p.answer, p.answer, p.answer, True,
                                           8, 0.0, []), [True], 0.1, 1.0))
            for p in problems[:n]])
    return problems


def test_a_read_only_store_serves_what_it_holds_and_refuses_writes(tmp_path):
    path = tmp_path / "r.db"
    problems = _stored(path)
    before = _digest(path)
    with Store(path, read_only=True) as store:
        assert store.read_only
        (run,) = store.runs()
        assert store.open_run(CONFIG, problems[:2], {"other": 1}).key == run.key
        assert len(store.run_results(run)) == 2
        # a subset of a stored run: not recorded, but every result is there
        subset = store.open_run(CONFIG, problems[:1], {})
        assert subset.id == 0 and store.count_done(subset) == 1
        bigger = store.open_run(CONFIG, problems, {})
        assert store.count_done(bigger) == 2
        with pytest.raises(S3DSLError, match="read-only and cannot keep new results") as err:
            store.add(run.config_key, [])
        assert "--db" in err.value.hint and "--no-db" in err.value.hint
        with pytest.raises(S3DSLError, match="runs cannot be deleted"):
            store.delete_runs([run])
        with pytest.raises(sqlite3.OperationalError, match="readonly"):  # the URI itself
            store.db.execute("DELETE FROM runs")
    assert _digest(path) == before
    wal = tmp_path / "r.db-wal"  # a reader of a WAL file may leave an empty one, nothing more
    assert not wal.exists() or wal.stat().st_size == 0
    with pytest.raises(S3DSLError, match="no results database"):
        Store(tmp_path / "absent.db", read_only=True)


@pytest.fixture
def read_only_files(monkeypatch):
    """Every existing database counts as one the user cannot write (what os.access says for a
    chmod 444 file or a read-only folder, unless one is root)."""
    monkeypatch.setattr(store_module, "_writable", lambda path: False)


def _main(args: list[str], monkeypatch, capsys) -> tuple[int, str]:
    """The installed entry point (errors: one line, exit 2): its exit code and stderr."""
    from s3dsl.cli import main

    monkeypatch.setattr(sys, "argv", ["s3dsl", *args])
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        main()
    return int(stop.value.code or 0), capsys.readouterr().err


def test_cli_serves_stored_runs_and_refuses_new_ones_before_computing(tmp_path, monkeypatch,
                                                                      capsys):
    db = tmp_path / "r.db"
    runner = CliRunner()
    base = ["run", "single", *SMALL, "--db", str(db)]
    first = runner.invoke(app, [*base, "--limit", "2"])
    assert first.exit_code == 0, first.output
    before = _digest(db)
    monkeypatch.setattr(store_module, "_writable", lambda path: False)
    served = runner.invoke(app, [*base, "--limit", "2"])
    assert served.exit_code == 0, served.output
    assert "resumed: 2 of 2 problems already done" in served.output
    assert runner.invoke(app, [*base, "--limit", "1"]).exit_code == 0  # a stored subset
    listing = runner.invoke(app, ["runs", "--db", str(db)])
    assert listing.exit_code == 0 and "single" in listing.output
    report = runner.invoke(app, ["report", "1", "--db", str(db)])
    assert report.exit_code == 0, report.output

    import s3dsl.resume as resume

    def no_compute(*args, **kwargs):
        raise AssertionError("computed with nowhere to keep the result")

    monkeypatch.setattr(resume, "_run_batch", no_compute)
    code, err = _main([*base, "--limit", "3"], monkeypatch, capsys)
    assert code == 2 and len([x for x in err.splitlines() if x.startswith("error:")]) == 1, err
    assert "read-only and 1 of 3 problems of this run are not stored" in err
    assert "--no-db" in err
    code, err = _main([*base, "--limit", "2", "--set", "temperature=1.0"], monkeypatch, capsys)
    assert code == 2 and "2 of 2 problems" in err
    code, err = _main(["runs", "--db", str(db), "--strategy", "single", "--delete"],
                      monkeypatch, capsys)
    assert code == 2 and "cannot be deleted" in err
    assert _digest(db) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes read-only files and folders")
def test_permissions_decide_read_only(tmp_path):
    path = tmp_path / "r.db"
    _stored(path)
    with Store(path) as store:
        assert not store.read_only
    path.chmod(0o444)
    try:
        with Store(path) as store:
            assert store.read_only and len(store.runs()) == 1
    finally:
        path.chmod(0o644)
    tmp_path.chmod(0o555)  # a read-only folder: WAL's -shm cannot be made next to the file
    try:
        with Store(path) as store:
            assert store.read_only and len(store.runs()) == 1
    finally:
        tmp_path.chmod(0o755)
