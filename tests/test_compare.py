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


def test_compare_matches_every_strategy_on_measured_forwards_and_report_rerenders(tmp_path):
    db, out = str(tmp_path / "runs.db"), tmp_path / "out"
    runner = CliRunner()
    args = ["compare", "single", "s3", "smc", "best_of_k", *SMALL, "--set", "particles=2",
            "--set", "candidates=2", "--set", "k=2", "--limit", "2", "--db", db, "--threads", "1"]
    result = runner.invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "--set particles ignored for single" in result.output
    data = json.loads((out / "report.json").read_text())
    assert data["context"] == {"task": "sudoku", "data_file": None, "model": "tiny-random",
                               "split": "test", "problems": 2, "seeds": [0]}
    assert data["title"].startswith("task sudoku, model tiny-random: test split, 2 problems")
    labels = [v["label"] for v in data["variants"]]
    assert labels[:4] == ["single", "s3", "smc", "best_of_k k=2"]
    by_label = {v["label"]: v for v in data["variants"]}
    curve = sorted((v for v in data["variants"] if v["strategy"] == "best_of_k"),
                   key=lambda v: v["nfe_per_problem"])
    ks = [int(v["params"]["k"]) for v in curve]
    assert ks[0] == 1 and ks == sorted(ks)  # K = 1, 2, 4, ... until the dearest strategy
    dearest = max(by_label[x]["nfe_per_problem"] for x in ("s3", "smc"))
    assert curve[-1]["nfe_per_problem"] >= dearest
    matched = {m["variant"]: m for m in data["compute_matched"]}
    for name in ("s3", "smc"):
        m, v = matched[name], by_label[name]
        assert m["position"] == "inside" and m["forwards_per_problem"] == v["nfe_per_problem"]
        lo = next(c for c in curve if int(c["params"]["k"]) == m["k_lo"])
        hi = next(c for c in curve if int(c["params"]["k"]) == m["k_hi"])
        assert lo["nfe_per_problem"] <= v["nfe_per_problem"] <= hi["nfe_per_problem"]
        diff = m["vs_best_of_k"]["difference"]
        assert set(diff) == {"value", "lo", "hi", "p"} and 0 <= diff["p"] <= 1
        assert diff["lo"] <= diff["value"] <= diff["hi"]
        matched_acc = m["best_of_k_accuracy"]  # its own interval (s3dsl.matching: Wilson)
        assert 0 <= matched_acc["lo"] <= matched_acc["value"] <= matched_acc["hi"] <= 1
        assert m["vs_first"]["against"] == "single"
    assert matched["best_of_k k=2"]["position"] == "reference"
    s3 = by_label["s3"]
    acc = s3["accuracy"]
    assert s3["trials"] == 2 and 0 <= acc["lo"] <= acc["value"] <= acc["hi"] <= 1
    assert set(s3["pass_at_k"]) == {"1", "2"} and s3["ess"] is not None
    assert [p["id"] for p in s3["problems"]] == ["sudoku-test-0", "sudoku-test-1"]
    assert s3["verifier"] == "v=sudoku-constraints" and by_label["single"]["verifier"] == "-"

    md = (out / "report.md").read_text()
    tables = [line for line in md.splitlines() if line.startswith("|")]
    header = next(line for line in tables if line.startswith("| variant | problems x seeds |"))
    width = header.count("|")
    assert all(line.count("|") - line.count("\\|") == width for line in tables[:len(labels) + 2])
    assert "| sudoku-test-0 |" in md and "compute-matched on measured forwards" in md
    assert "| its accuracy | its 95% CI |" in md
    assert "predicted forwards / problem (upper bound)" in md
    plots = {p.name for p in out.glob("*.png")}
    assert plots == {"accuracy_vs_forwards.png", "pass_at_k.png"} or \
        "plots skipped: matplotlib not installed" in md

    # re-running computes nothing new; `report` of the strategies alone finds the curve itself
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    own = [r for v in data["variants"] if v["strategy"] != "best_of_k" for r in v["runs"]]
    rerender = runner.invoke(app, ["report", *own, by_label["best_of_k k=2"]["runs"][0],
                                   "--db", db, "--out", str(tmp_path / "re")])
    assert rerender.exit_code == 0, rerender.output
    re_data = json.loads((tmp_path / "re" / "report.json").read_text())
    assert "K=1: not run" not in rerender.output
    assert sorted(m["variant"] for m in re_data["compute_matched"]) == \
        sorted(m["variant"] for m in data["compute_matched"])
    re_matched = {m["variant"]: m for m in re_data["compute_matched"]}
    for name in ("s3", "smc"):
        assert re_matched[name]["vs_best_of_k"] == matched[name]["vs_best_of_k"]
        assert re_matched[name]["k_range"] == matched[name]["k_range"]


def test_runs_filter_show_source_hash_and_delete(tmp_path):
    db = str(tmp_path / "runs.db")
    runner = CliRunner()
    for name in ("single", "best_of_k"):
        assert runner.invoke(app, ["run", name, *SMALL, "--limit", "1", "--db", db,
                                   "--set", "k=2" if name == "best_of_k" else "steps=8"]
                             ).exit_code == 0
    listing = runner.invoke(app, ["runs", "--db", db, "--strategy", "single"])
    assert listing.exit_code == 0, listing.output
    assert "single" in listing.output and "best_of_k" not in listing.output
    from s3dsl.store import Store

    with Store(db) as store:
        (run,) = [r for r in store.runs() if r.strategy == "single"]
    assert run.config["source_hash"][:8] in listing.output
    refused = runner.invoke(app, ["runs", "--db", db, "--delete"])
    assert isinstance(refused.exception, S3DSLError)
    gone = runner.invoke(app, ["runs", "--db", db, "--strategy", "single", "--task", "sudoku",
                               "--delete"])
    assert gone.exit_code == 0 and "deleted 1 run(s) and 1 stored result(s)" in gone.output
    with Store(db) as store:
        assert [r.strategy for r in store.runs()] == ["best_of_k"]


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
    bench.main(["--quick", "--model", "tiny-random", "--tasks", "arith", "--n", "1",
                "--out", str(tmp_path / "res"), "--db", str(tmp_path / "r.db")])
    md = (tmp_path / "res" / "replication.md").read_text()
    assert "Accuracy at equal measured compute" in md and "Pass@k frontier" in md
    assert "Tuning on the validation split" in md and "(chosen)" in md
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
    acc = row["accuracy"]
    assert (acc["lo"], acc["hi"]) == pytest.approx(wilson(acc["value"] * 2, 2))
