"""`torchrun -m s3dsl compare`: two CPU processes (gloo) shard every run's problems, rank 0 writes
the store and prints the report once, and the report's numbers are those of one process (the
best-of-K curve, chosen from measured forwards, included)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from test_distributed import _run  # the launcher (torchrun --standalone), shared

COMPARE = ["s3dsl", "compare", "s3", "--task", "arith", "--limit", "5", "--threads", "1",
           "--batch-size", "2", "--set", "particles=2", "--set", "candidates=2",
           "--set", "gen_length=16", "--max-k", "2"]
TIMING = ("wall_s", "tokens_per_s", "peak_mb", "best_in")


def _numbers(path: Path) -> dict:
    report = json.loads((path / "report.json").read_text())
    for v in report["variants"]:
        for key in TIMING:
            v.pop(key, None)
    report.pop("notes")
    return report


@pytest.mark.skipif(sys.platform != "linux", reason="gloo over loopback")
def test_torchrun_compare_matches_one_process(tmp_path):
    _run([*COMPARE, "--no-db", "--out", "one"], tmp_path)
    two = _run([*COMPARE, "--db", "runs.db", "--out", "two"], tmp_path, 2)
    assert two.stdout.count("wrote two/report.md") == 1  # rank 0 reports once
    assert _numbers(tmp_path / "two") == _numbers(tmp_path / "one")
    from s3dsl.store import Store

    with Store(tmp_path / "runs.db") as store:
        runs = store.runs()
        assert len(runs) == 3 and all(store.count_done(r) == 5 for r in runs)  # s3, K=1, K=2
