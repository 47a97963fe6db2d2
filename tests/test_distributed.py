"""torchrun sharding: two CPU processes (gloo) give exactly the predictions of one process, only
rank 0 writes the store, and a partly finished sharded run resumes under another world size."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from s3dsl.distributed import World
from s3dsl.store import Store

RUN = ["s3dsl", "run", "s3", "--task", "arith", "--threads", "1", "--batch-size", "2"]


def _run(args: list[str], cwd: Path, procs: int = 1) -> subprocess.CompletedProcess:
    launcher = [sys.executable, "-m"]
    if procs > 1:
        # --standalone: a rendezvous on a free local port (parallel runs never collide on 29500)
        launcher += ["torch.distributed.run", "--standalone", "--nproc-per-node", str(procs),
                     "-m"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([*launcher, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def _completions(path: Path) -> list[tuple[str, str]]:
    rows = json.loads(path.read_text())["per_problem"]
    return [(r["id"], r["completion"]) for r in rows]


def test_shards_cover_every_item_once_and_rounds_agree():
    items = list(range(11))
    worlds = [World(r, 3) for r in range(3)]
    shards = [w.shard(items) for w in worlds]
    assert sorted(x for s in shards for x in s) == items
    assert max(map(len, shards)) - min(map(len, shards)) <= 1
    assert {w.rounds(len(items), 2) for w in worlds} == {2}
    assert World().rounds(0, 4) == 0


@pytest.mark.skipif(sys.platform != "linux", reason="gloo over loopback")
def test_torchrun_two_processes_match_one_and_resume(tmp_path):
    _run([*RUN, "--limit", "10", "--json", "one.json", "--no-db"], tmp_path)
    first = _run([*RUN, "--limit", "6", "--db", "runs.db", "--json", "part.json"], tmp_path, 2)
    assert "wrote part.json" in first.stdout  # rank 0 reports once
    assert first.stdout.count("wrote") == 1
    resumed = _run([*RUN, "--limit", "10", "--db", "runs.db", "--json", "two.json"], tmp_path, 2)
    assert "resumed: 6 of 10" in resumed.stdout
    assert _completions(tmp_path / "two.json") == _completions(tmp_path / "one.json")
    with Store(tmp_path / "runs.db") as store:
        runs = store.runs()
        assert store.count_done(runs[-1]) == 10
    # and a one-process run over the same store finds everything finished
    again = _run([*RUN, "--limit", "10", "--db", "runs.db"], tmp_path)
    assert "resumed: 10 of 10" in again.stdout
