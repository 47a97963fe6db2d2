"""Comparison statistics (by brute force and by hand) and `s3dsl compare/report` end to end."""

from __future__ import annotations

import itertools
import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from s3dsl.cli.app import app
from s3dsl.dsl.errors import S3DSLError
from s3dsl.metrics import distinct_answers, maj_at_k, pass_at_k, powers_of_two, wilson
from s3dsl.runtime.scoring import ParticleOutcome, choose

SMALL = ["--model", "tiny-random", "--set", "gen_length=8", "--set", "steps=8"]


def brute_pass_at_k(flags: list[bool], k: int) -> float:
    subsets = list(itertools.combinations(range(len(flags)), k))
    return sum(any(flags[i] for i in s) for s in subsets) / len(subsets)


@given(st.integers(1, 9).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n),
                                                     st.integers(1, n))))
def test_pass_at_k_matches_brute_force(nck):
    n, c, k = nck
    flags = [True] * c + [False] * (n - c)
    assert pass_at_k(n, c, k) == pytest.approx(brute_pass_at_k(flags, k), abs=1e-12)
    assert pass_at_k(n, c, k) == pytest.approx(1 - math.comb(n - c, k) / math.comb(n, k))


def test_pass_at_k_edges():
    assert pass_at_k(8, 0, 4) == 0.0 and pass_at_k(8, 8, 1) == 1.0
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)
    with pytest.raises(ValueError):
        pass_at_k(4, 1, 5)
    assert powers_of_two(1) == [1] and powers_of_two(12) == [1, 2, 4, 8]


def test_wilson_hand_cases():
    lo, hi = wilson(5, 10)
    assert (round(lo, 4), round(hi, 4)) == (0.2366, 0.7634)
    assert wilson(0, 10)[0] == 0.0 and round(wilson(0, 10)[1], 4) == 0.2775
    assert wilson(10, 10)[1] == 1.0 and round(wilson(10, 10)[0], 4) == 0.7225
    assert wilson(0, 0) == (0.0, 1.0)
    lo, hi = wilson(30, 40)
    assert lo < 0.75 < hi


def _o(answer, nll):
    return ParticleOutcome(completion=str(answer), answer=answer, nll=nll, score=0.0)


def test_vote_tie_break_and_maj_at_k_by_hand():
    outs = [_o("1", 0.5), _o("2", 1.0), _o("2", 2.0), _o("1", 3.0)]
    correct = [o.answer == "1" for o in outs]
    assert choose(outs, "vote") == 0  # 2 votes each: the lowest NLL holder wins
    assert choose([_o(None, 0.1), _o("7", 5.0)], "vote") == 1  # no answer never wins a vote
    assert maj_at_k(outs, correct, 4) == 1.0
    assert maj_at_k(outs, correct, 1) == 0.5
    # pairs: {0,1} {0,2} {0,3} right; {1,2} {1,3} {2,3} pick "2"
    assert maj_at_k(outs, correct, 2) == 0.5
    assert maj_at_k(outs, correct, 3) == pytest.approx(2 / 4)  # {0,1,2},{1,2,3} wrong
    assert distinct_answers(outs + [_o(None, 9.0)]) == 2


def test_maj_at_k_sampled_when_too_many_subsets():
    outs = [_o(str(i % 3), float(i)) for i in range(30)]
    correct = [o.answer == "0" for o in outs]
    a = maj_at_k(outs, correct, 15, max_subsets=200)
    assert a == maj_at_k(outs, correct, 15, max_subsets=200)  # fixed seed
    assert 0.0 <= a <= 1.0


def test_compare_two_strategies_end_to_end_and_report(tmp_path):
    db, out = str(tmp_path / "runs.db"), tmp_path / "out"
    runner = CliRunner()
    result = runner.invoke(app, [
        "compare", "single", "s3", *SMALL, "--set", "particles=2", "--set", "candidates=2",
        "--limit", "2", "--db", db, "--out", str(out),
    ])
    assert result.exit_code == 0, result.output
    assert "--set particles ignored for single" in result.output
    data = json.loads((out / "report.json").read_text())
    labels = [v["label"] for v in data["variants"]]
    assert labels[:2] == ["single", "s3"]
    refs = [v for v in data["variants"] if v["strategy"] == "best_of_k"]
    assert refs and all(v["reference"] for v in refs)
    by_label = {v["label"]: v for v in data["variants"]}
    for m in data["compute_matched"]:
        assert by_label[m["reference"]]["params"]["k"] == m["k"]
        assert m["k"] == max(1, round(by_label[m["variant"]]["nfe_per_problem"] / 8))
    s3 = by_label["s3"]
    assert s3["trials"] == 2 and 0 <= s3["ci"][0] <= s3["accuracy"] <= s3["ci"][1] <= 1
    assert set(s3["pass_at_k"]) == {"1", "2"} and s3["ess"] is not None
    assert by_label["single"]["pass_at_k"].keys() == {"1"}

    md = (out / "report.md").read_text()
    tables = [line for line in md.splitlines() if line.startswith("|")]
    header = next(line for line in tables if line.startswith("| variant | n |"))
    width = header.count("|")
    assert all(line.count("|") - line.count("\\|") == width for line in tables[:len(labels) + 2])
    assert "| single |" in md and "compute-matched" in md
    plots = {p.name for p in out.glob("*.png")}
    assert plots == {"accuracy_vs_forwards.png", "pass_at_k.png"} or \
        "plots skipped: matplotlib not installed" in md

    # re-running computes nothing new; `report` re-renders the stored runs identically
    again = runner.invoke(app, ["compare", "single", "s3", *SMALL, "--set", "particles=2",
                                "--set", "candidates=2", "--limit", "2", "--db", db])
    assert again.exit_code == 0, again.output
    keys = [r for v in data["variants"] for r in v["runs"]]
    rerender = runner.invoke(app, ["report", *keys, "--db", db, "--out", str(tmp_path / "re")])
    assert rerender.exit_code == 0, rerender.output
    re_data = json.loads((tmp_path / "re" / "report.json").read_text())
    strip = ("notes", "title")
    assert {k: v for k, v in re_data.items() if k not in strip} == \
        {k: v for k, v in data.items() if k not in strip}


def test_sweep_skips_strategies_without_the_key(tmp_path):
    result = CliRunner().invoke(app, [
        "compare", "single", "best_of_k", *SMALL, "--sweep", "k=1,2", "--limit", "2",
        "--no-db", "--no-reference", "--out", str(tmp_path),
    ])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "report.json").read_text())
    assert [v["label"] for v in data["variants"]] == ["single", "best_of_k k=1", "best_of_k k=2"]
    assert "sweep k skipped for single (no such param)" in data["notes"]


def test_unknown_keys_are_errors(tmp_path):
    result = CliRunner().invoke(app, ["compare", "single", "s3", *SMALL, "--sweep",
                                      "partcles=1,2", "--no-db"])
    assert isinstance(result.exception, S3DSLError)
    assert "did you mean 'particles'" in str(result.exception)
    bad = CliRunner().invoke(app, ["compare", "s3", *SMALL, "--sweep", "particles", "--no-db"])
    assert isinstance(bad.exception, S3DSLError)


def test_replication_benchmark_quick_smoke(tmp_path):
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "replication.py"
    spec = importlib.util.spec_from_file_location("replication_bench", path)
    bench = importlib.util.module_from_spec(spec)
    sys.modules["replication_bench"] = bench
    spec.loader.exec_module(bench)
    assert bench.mcnemar_p(0, 0) == 1.0 and bench.mcnemar_p(6, 0) == pytest.approx(2 / 64)
    bench.main(["--quick", "--model", "tiny-random", "--tasks", "arith", "--n", "1",
                "--out", str(tmp_path / "res"), "--db", str(tmp_path / "r.db")])
    md = (tmp_path / "res" / "replication.md").read_text()
    assert "Accuracy at equal compute" in md and "Pass@k frontier" in md
    assert "| s3 |" in md and "| imh |" in md and "| random_remask |" in md
    assert (tmp_path / "res" / "arith" / "report.json").is_file()


def test_seeds_do_not_shrink_the_interval_as_if_they_were_new_problems(tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(app, [
        "compare", "best_of_k", *SMALL, "--set", "k=2", "--set", "temperature=1.0",
        "--limit", "2", "--seeds", "3", "--no-reference", "--no-db", "--out", str(out),
    ])
    assert result.exit_code == 0, result.output
    (row,) = json.loads((out / "report.json").read_text())["variants"]
    assert row["trials"] == 6
    assert tuple(row["ci"]) == pytest.approx(wilson(row["accuracy"] * 2, 2))
