"""The overlap pass: two batches in flight give bit for bit the serial engine's results (tokens,
scores, weights, NLLs, forwards, every counter, traces), GIL-bound verifiers go to the process
pool, and the lanes really overlap (a forward starts while another batch's verifier runs)."""

from __future__ import annotations

import threading

import pytest

from s3dsl.catalog import builtin_strategies
from s3dsl.compiler.passes import lowered_for, plan
from s3dsl.runtime import host_pool, overlap
from s3dsl.session import compile_file, execute
from s3dsl.tasks.registry import get_task
from s3dsl.verifiers import slow

ARITH = get_task("arith")
SETS = {"s3": {"gen_length": "16", "particles": "2", "candidates": "2"},
        "best_of_k": {"gen_length": "16", "k": "3"}}


@pytest.fixture(autouse=True)
def slow_verifier(monkeypatch):
    """`slow` is a verifier name for these tests only (the registry is restored after each)."""
    from s3dsl.verifiers.registry import VERIFIERS

    monkeypatch.setitem(VERIFIERS, slow.NAME, (slow.SlowVerifier, "test only"))


@pytest.fixture(scope="module")
def arith_model():
    from s3dsl.models.registry import load_model

    return load_model("arith")


def _program(name: str, verifier: str = "slow(ms=0.2)"):
    text = builtin_strategies()[name].read_text().replace("v: task-default", f"v: {verifier}")
    from s3dsl.compiler.build import build
    from s3dsl.dsl.loader import parse_strategy

    return build(parse_strategy(text, f"{name}.yaml"), dict(SETS[name]), 16, "arith-heuristic")


def _run(program, model, disable=(), batch_size=2, observer=None, problems=4, enable=()):
    the_plan = plan(program, 3, disable, enable=enable)
    results, counters = execute(the_plan, model, ARITH.problems("test", problems),
                                ARITH.extract_answer, ARITH.is_correct, 3, batch_size,
                                observer=observer)
    seen = [(r.id, r.prediction, r.chosen, r.nfe, r.resamples, r.min_ess,
             [(p.tokens, p.score, p.nll, p.logw, p.answer) for p in r.particles])
            for r in results]
    return the_plan, seen, counters


@pytest.mark.parametrize("name", ["s3", "best_of_k"])
def test_overlap_is_bit_for_bit_the_serial_engine(name, arith_model):
    program = _program(name)
    serial_plan, serial, serial_counters = _run(program, arith_model, ("overlap",))
    lanes_plan, lanes, lanes_counters = _run(program, arith_model)
    assert serial_plan.flags.overlap_lanes == 1 and lanes_plan.flags.overlap_lanes == 2
    assert lanes == serial  # floats compared exactly: every batch ran the serial shapes
    assert lanes_counters == serial_counters
    assert host_pool.usable() and host_pool._pools  # the slow verifier ran in the pool
    # an odd batch count: the last batch runs alone on lane 0
    _, odd, _ = _run(program, arith_model, batch_size=3, problems=7)
    _, odd_serial, _ = _run(program, arith_model, ("overlap",), batch_size=3, problems=7)
    assert odd == odd_serial


def test_overlap_with_a_block_kv_cache_is_the_serial_engine(arith_model):
    """Each lane keeps its own block KV cache (`kv_cache.py`): the same results, counters."""
    program = _program("s3")
    _, serial, serial_counters = _run(program, arith_model, ("overlap",), enable=("dual-cache",))
    _, lanes, lanes_counters = _run(program, arith_model, enable=("dual-cache",))
    assert lanes == serial and lanes_counters == serial_counters
    assert lanes_counters.kv_refreshes > 0


def test_traces_under_overlap_are_the_serial_ones(arith_model):
    from s3dsl.trace import Recorder

    program = _program("s3")
    serial, lanes = Recorder(), Recorder()
    _run(program, arith_model, ("overlap",), observer=serial)
    _run(program, arith_model, observer=lanes)
    assert lanes.traces == serial.traces and len(lanes.traces) == 4


def test_the_plan_says_where_verifiers_run():
    program = _program("s3", "arith-heuristic + 0.5 * confidence")
    the_plan = plan(program, 3)
    hosts = [n for s in the_plan.lowered.step for n in s.nodes if n.kind == "host"]
    assert [n.get("pool") for n in hosts] == ["process"]  # one GIL-bound term is enough
    assert all(n.get("lanes") == 2 for n in the_plan.lowered.nodes("forward"))
    oracle = plan(_program("s3", "oracle"), 3).lowered
    assert [n.get("pool") for s in oracle.step for n in s.nodes if n.kind == "host"] == ["inline"]
    conf = plan(_program("s3", "confidence"), 3)  # a tensor verifier: a captured step instead
    assert conf.lowered.has("captured-step") and conf.flags.overlap_lanes == 1
    assert "overlap" not in plan(program, 2).enabled  # an -O3 pass
    assert lowered_for(program, the_plan.flags) == the_plan.lowered
    compiled = plan(_program("best_of_k"), 3, enable=("compile-steps",))
    assert compiled.flags.overlap_lanes == 1  # one capture per lane: not combined
    single = compile_file(builtin_strategies()["single"], None, 16, "arith-heuristic")
    assert plan(single, 3).flags.overlap_lanes == 1  # no verifier, no host work to overlap


def test_a_forward_runs_while_another_batch_is_verified(arith_model, monkeypatch):
    """The overlap happens: some forward starts while a verifier call of the other lane is in
    the process pool (recorded, not timed)."""
    state = {"verifying": 0, "forward_during_verify": 0}
    lock = threading.Lock()
    verify, forward = overlap.LaneExecutor.verify, overlap.LaneExecutor.forward

    def counting_verify(self, *args):
        with lock:
            state["verifying"] += 1
        try:
            return verify(self, *args)
        finally:
            with lock:
                state["verifying"] -= 1

    def counting_forward(self, *args):
        with lock:
            state["forward_during_verify"] += state["verifying"] > 0
        return forward(self, *args)

    monkeypatch.setattr(overlap.LaneExecutor, "verify", counting_verify)
    monkeypatch.setattr(overlap.LaneExecutor, "forward", counting_forward)
    _run(_program("s3", "slow(ms=2)"), arith_model)
    assert state["forward_during_verify"] > 0


def test_the_pool_scores_each_distinct_candidate_once(arith_model, monkeypatch):
    """Identical rows share one Candidate and are scored once, in place and in the pool alike:
    the pool gets exactly the candidates the serial engine scores (it once got every row)."""
    from s3dsl.runtime import scoring

    in_place, pooled = [], []
    score_in_place, score_in_pool = scoring._in_place, host_pool.score

    def count_in_place(verifier, cands, gold):
        in_place.append(len(cands))
        return score_in_place(verifier, cands, gold)

    def count_in_pool(workers, verifier, cands, gold):
        pooled.append(len(cands))
        assert len({id(c) for c in cands}) == len(cands), "a candidate shipped twice"
        return score_in_pool(workers, verifier, cands, gold)

    program = _program("s3")
    monkeypatch.setattr(scoring, "_in_place", count_in_place)
    _, serial, _ = _run(program, arith_model, ("overlap",))
    monkeypatch.setattr(host_pool, "score", count_in_pool)
    _, lanes, _ = _run(program, arith_model)
    assert lanes == serial
    assert sum(pooled) == sum(in_place) > 0 and len(pooled) == len(in_place)
    assert sum(in_place) < 4 * 4 * 16, "identical rows merged (4 problems x 4 rows x 16 steps)"


def test_overlap_bench_smoke(tmp_path):
    """benchmarks/overlap_bench.py end to end at a tiny size: structure and identity, no timing."""
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "overlap_bench.py"
    spec = importlib.util.spec_from_file_location("overlap_bench", path)
    bench = importlib.util.module_from_spec(spec)
    sys.modules["overlap_bench"] = bench
    spec.loader.exec_module(bench)
    rows = bench.main(["--quick", "--gen", "16", "--verifiers", "slow(ms=0.0)", "--out",
                       str(tmp_path)])
    assert [r["identical"] for r in rows] == [True]
    assert set(rows[0]["wall_s"]) == set(bench.MODES)
    text = (tmp_path / "overlap_bench.md").read_text()
    assert "| s3 particles=4 candidates=4 | slow(ms=0.0) | arith (0.88M) |" in text


def test_a_pool_that_cannot_start_scores_in_place(arith_model, monkeypatch):
    """A spawned worker re-imports an unguarded main script and dies: the run goes on with the
    verifier in place (same numbers) and says so once."""
    from concurrent.futures.process import BrokenProcessPool

    def broken(*args):
        raise BrokenProcessPool("no workers")

    program = _program("s3")
    _, serial, _ = _run(program, arith_model, ("overlap",))
    monkeypatch.setattr(host_pool, "submit", broken)
    monkeypatch.setattr(host_pool, "_broken", [])
    with pytest.warns(RuntimeWarning, match="run in place"):
        _, lanes, _ = _run(program, arith_model)
    assert lanes == serial and not host_pool.usable()
