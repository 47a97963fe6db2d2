"""Captured steps: a whole S3 step (expand, denoise, a tensor verifier, weight, resample) as one
fixed-shape, sync-free function, equal to the eager engine and the reference interpreter; the
device forms of resampling and of `confidence` equal the host ones bit for bit; replaying one
graph over same-shape chunks keeps every chunk's outputs."""

from __future__ import annotations

import math

import pytest
import torch
from example_budget import examples
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from s3dsl.catalog import builtin_strategies
from s3dsl.compiler.build import build
from s3dsl.compiler.explain import explain_lines
from s3dsl.compiler.passes import plan
from s3dsl.dsl.loader import parse_strategy
from s3dsl.runtime import captured, resampling, static_resample
from s3dsl.runtime.executor import BatchedExecutor
from s3dsl.session import compile_file, execute
from s3dsl.tasks.registry import get_task
from s3dsl.verifiers import Candidate, Confidence, WeightedSum
from s3dsl.verifiers.tensor import confidence_scores, tensor_scorer

ARITH = get_task("arith")
HEALTH = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
SETTINGS = examples(40, suppress_health_check=HEALTH)


def s3(gen: int = 8, verifier: str = "confidence", **sets: str):
    return compile_file(builtin_strategies()["s3"], sets or None, gen, verifier)


def observed(results) -> list:
    """Everything a run reports, floats exactly."""
    return [(r.prediction, r.chosen, r.nfe, r.resamples, r.min_ess,
             [(p.tokens, p.completion, p.answer, p.score, p.logw, p.nll) for p in r.particles])
            for r in results]


def run_executor(program, model, problems, the_plan, step_fn=None, replays=False, chunk=None,
                 batch_size=8):
    ex = BatchedExecutor(program, model, ARITH.extract_answer, 5, the_plan.flags,
                         lowered=the_plan.lowered)
    if step_fn is not None:
        ex.captured.step_fn, ex.captured.replays = step_fn, replays
    if chunk is not None:
        ex.chunk_rows = chunk
    with torch.inference_mode():
        results = ex.run(problems, batch_size=batch_size)
    return results, ex.counters


# -- the device forms equal the host ones -------------------------------------------------------
weights_rows = st.lists(
    st.lists(st.sampled_from([0.0, 1.0, 2.0, 3.0, 0.5, 1e-9, 7.0]), min_size=2, max_size=9),
    min_size=1, max_size=4,
).filter(lambda rows: len({len(r) for r in rows}) == 1 and all(sum(r) > 0 for r in rows))


@SETTINGS
@given(rows=weights_rows, n=st.integers(1, 9), seed=st.integers(0, 2**31))
def test_device_resampling_equals_each_problem_scheme(rows, n, seed):
    w = torch.tensor(rows, dtype=torch.float64) + 1e-3 * torch.rand(
        len(rows), len(rows[0]), generator=torch.Generator().manual_seed(seed), dtype=torch.float64
    ) * (seed % 2)  # exact ties half the time, near-ties otherwise
    w = w / w.sum(dim=1, keepdim=True)
    u = torch.rand(len(rows), 2 * w.shape[1] + n + 2, dtype=torch.float64,
                   generator=torch.Generator().manual_seed(seed + 1))
    for method in static_resample.METHODS:
        got = static_resample.resample_rows(w, n, method, u)
        want = torch.stack([resampling.resample(w[b], n, method, u[b]) for b in range(len(rows))])
        assert torch.equal(got, want), method


def test_ssp_on_the_device_keeps_floor_or_ceil_copies_of_n_times_the_weight():
    w = torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.25, 0.25, 0.25, 0.25]], dtype=torch.float64)
    u = torch.rand(2, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    ancestors = static_resample.ssp_rows(w, 6, u)
    for b in range(2):
        counts = torch.bincount(ancestors[b], minlength=4)
        assert int(counts.sum()) == 6
        assert all(math.floor(6 * x) <= c <= math.floor(6 * x) + 1
                   for x, c in zip(w[b].tolist(), counts.tolist()))


@SETTINGS
@given(data=st.data())
def test_tensor_confidence_equals_the_verifier(data):
    rows, width, eos = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 7)), 3
    tokens = torch.tensor([[data.draw(st.integers(2, 5)) for _ in range(width)]
                           for _ in range(rows)])
    values = st.sampled_from([-0.5, -1e-3, -2.25, -150.0, -math.inf, math.nan, -100.0, 0.0])
    logps = torch.tensor([[data.draw(values) for _ in range(width)] for _ in range(rows)],
                         dtype=torch.float32)
    filled = torch.zeros(rows, width, dtype=torch.bool)
    cands = []
    for tok, lp in zip(tokens.tolist(), logps.tolist()):
        cut = tok.index(eos) if eos in tok else len(tok)
        cands.append(Candidate("", "", tuple(lp[:cut]), (False,) * cut))
    want = Confidence().score(cands)
    assert confidence_scores(tokens, logps, filled, eos).tolist() == want
    weighted = WeightedSum([(0.5, Confidence()), (2.0, Confidence())]).score(cands)
    scorer = tensor_scorer(((0.5, "confidence", ()), (2.0, "confidence", ())))
    assert scorer(tokens, logps, filled, eos).tolist() == weighted
    assert tensor_scorer(((1.0, "arith-heuristic", ()),)) is None


# -- the plan -----------------------------------------------------------------------------------
def test_s3_with_confidence_is_one_captured_step_and_a_host_verifier_keeps_it_split():
    top = plan(s3(), 3)
    assert top.flags.static_steps and top.lowered.nodes("captured-step")
    head = top.lowered.step[0].nodes[0]
    assert head.kind == "captured-step"
    assert head.get("stages") == "expand | denoise | score | resample"
    assert not any(n.kind == "host" for stage in top.lowered.step for n in stage.nodes)
    text = "\n".join(explain_lines(top))
    assert "captured-step" in text and "host_syncs=none" in text
    assert plan(s3(), 3, enable=("compile-steps",)).lowered.nodes("captured-step")[0].get(
        "compiled") == "yes"
    split = plan(s3(verifier="arith-heuristic"), 3)
    assert not split.lowered.has("captured-step") and not split.flags.static_steps
    assert not plan(s3(), 2).lowered.has("captured-step")


# -- the same run -------------------------------------------------------------------------------
def test_captured_s3_gives_the_eager_engines_and_the_references_tokens(tiny_model):
    problems = ARITH.problems("test", 3)
    program = s3(gen=16)
    captured_plan = plan(program, 3)
    results, counters = execute(captured_plan, tiny_model, problems, ARITH.extract_answer,
                                ARITH.is_correct, 5, 2)
    eager, _ = execute(plan(program, 2), tiny_model, problems, ARITH.extract_answer,
                       ARITH.is_correct, 5, 2)
    reference, _ = execute(plan(program, 0), tiny_model, problems, ARITH.extract_answer,
                           ARITH.is_correct, 5, 2)
    for other in (eager, reference):
        assert [[p.tokens for p in r.particles] for r in results] == \
            [[p.tokens for p in r.particles] for r in other]
        assert [r.prediction for r in results] == [r.prediction for r in other]
        for r, o in zip(results, other):
            assert r.resamples == o.resamples
            assert math.isclose(r.min_ess, o.min_ess, rel_tol=1e-6)
            for p, q in zip(r.particles, o.particles):
                assert math.isclose(p.score, q.score, rel_tol=1e-5)
                assert math.isclose(p.nll, q.nll, rel_tol=1e-5)
                assert p.logw == q.logw
    # the plan's predicted forwards are the rows that ran (no dedup in a fixed-shape step)
    assert {r.nfe for r in results} == {captured_plan.cost.forwards}
    assert counters.forward_rows == sum(r.nfe for r in results)


capturable_texts = st.builds(
    lambda k, n, method, weight, temperature, blocks, steps, commit, order: "\n".join([
        "name: gen", "decode:", f"  block_length: {8 // blocks}", f"  steps: {steps}",
        f"  temperature: {temperature}", f"  commit: {commit}",
        "verifiers:", "  w: confidence + 0.5 * confidence", "program:", f"  init: expand({n})",
        "  step: " + " | ".join(order(k, n, method, weight)), "  final: select(by=vote)", ""]),
    st.integers(2, 3), st.integers(1, 3), st.sampled_from(static_resample.METHODS),
    st.sampled_from(["", "weight(by=logprob)", "weight(by=score)", "weight(by=diff)"]),
    st.sampled_from([0.0, 1.0]), st.sampled_from([1, 2]), st.sampled_from([4, 8]),
    st.sampled_from(["confidence", "margin", "entropy", "random"]),
    st.sampled_from([
        lambda k, n, m, w: [f"expand({k})", "denoise", "score(w)", *([w] if w else []),
                            f"resample({n}, method={m})"],
        lambda k, n, m, w: ["score(w)", f"resample({n}, method={m})",
                            f"expand({k}, at=block_start)", "denoise",
                            *([w] if w else []), f"resample({n}, method={m}, at=block_end)"],
    ]),
)


@examples(15, suppress_health_check=HEALTH)
@given(text=capturable_texts)
def test_generated_capturable_steps_match_the_eager_engine(text, tiny_model):
    program = build(parse_strategy(text, "gen.yaml"), None, 8, "confidence")
    captured_plan = plan(program, 3)
    assert captured_plan.lowered.has("captured-step"), text
    problems = ARITH.problems("test", 2)
    got, _ = run_executor(program, tiny_model, problems, captured_plan)
    want, _ = run_executor(program, tiny_model, problems, plan(program, 2))
    assert [[p.tokens for p in r.particles] for r in got] == \
        [[p.tokens for p in r.particles] for r in want]
    assert [(r.resamples, r.chosen) for r in got] == [(r.resamples, r.chosen) for r in want]
    for r, o in zip(got, want):
        assert (r.min_ess is None) == (o.min_ess is None)
        for p, q in zip(r.particles, o.particles):
            for a, b in ((p.score, q.score), (p.logw, q.logw), (p.nll, q.nll)):
                assert (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-5,
                                                                         abs_tol=1e-6)
    assert {r.nfe for r in got} == {captured_plan.cost.forwards}


def test_a_whole_s3_step_is_captured_by_torch_compile_fullgraph(tiny_model):
    """fullgraph=True fails on any graph break: a host sync, a data-dependent branch or shape.
    The eager backend keeps every operation as it is, so everything reported is equal bit for
    bit (one block, so the test traces three step shapes: first, middle, last)."""
    program = s3(gen=8, block_length="8", steps="4", particles="2", candidates="2")
    the_plan = plan(program, 3)
    problems = ARITH.problems("test", 2)
    step_fn = torch.compile(captured.run_step, fullgraph=True, dynamic=False, backend="eager")
    got, got_counters = run_executor(program, tiny_model, problems, the_plan, step_fn, True)
    want, want_counters = run_executor(program, tiny_model, problems, the_plan)
    assert observed(got) == observed(want)
    assert got_counters == want_counters
    reference, _ = execute(plan(program, 0), tiny_model, problems, ARITH.extract_answer,
                           ARITH.is_correct, 5, 2)
    assert [[p.tokens for p in r.particles] for r in got] == \
        [[p.tokens for p in r.particles] for r in reference]


class ReplayingGraph:
    """A stand-in for a CUDA graph: every call writes its outputs into the same memory as the
    previous call of the same shapes and returns that memory."""

    def __init__(self):
        self.buffers: dict = {}

    def __call__(self, *args):
        out = captured.run_step(*args)
        key = tuple((k, tuple(v.shape), v.dtype) for k, v in sorted(out.items()))
        if key not in self.buffers:
            self.buffers[key] = {k: torch.empty_like(v) for k, v in out.items()}
        mine = self.buffers[key]
        for k, v in out.items():
            mine[k].copy_(v)
        return dict(mine)


def test_replaying_one_graph_over_same_shape_chunks_keeps_every_chunk(tiny_model):
    program = s3(gen=8, particles="2", candidates="2")
    the_plan = plan(program, 3)
    problems = ARITH.problems("test", 4)
    # 4 rows per problem at the peak: chunks of one problem, four same-shape replays per step
    eager, eager_counters = run_executor(program, tiny_model, problems, the_plan, chunk=4)
    replayed, counters = run_executor(program, tiny_model, problems, the_plan, ReplayingGraph(),
                                      True, chunk=4)
    assert observed(replayed) == observed(eager)
    assert counters == eager_counters
    assert len({tuple(r.particles[0].tokens) for r in replayed}) > 1  # the chunks differ


@pytest.mark.parametrize("chunk", [4, 8])
def test_chunked_captured_steps_equal_one_chunk(chunk, tiny_model):
    program = s3(gen=8, particles="2", candidates="2")
    the_plan = plan(program, 3)
    problems = ARITH.problems("test", 3)  # chunk 8: two problems, then one
    whole, whole_counters = run_executor(program, tiny_model, problems, the_plan)
    chunked, counters = run_executor(program, tiny_model, problems, the_plan, chunk=chunk)
    got, want = observed(chunked), observed(whole)
    assert [(r[0], r[1], r[2], r[3], [p[:3] for p in r[5]]) for r in got] == \
        [(r[0], r[1], r[2], r[3], [p[:3] for p in r[5]]) for r in want]
    floats = [(p[3:], q[3:]) for r, o in zip(got, want) for p, q in zip(r[5], o[5])]
    assert all(math.isclose(a, b, rel_tol=1e-5) for x, y in floats for a, b in zip(x, y))
    assert counters.forward_calls == whole_counters.forward_calls * (3 if chunk == 4 else 2)


def test_block_kv_caches_are_refused_with_captured_steps():
    from s3dsl.errors import S3DSLError

    with pytest.raises(S3DSLError, match="static steps"):
        plan(s3(), 3, enable=("prefix-cache",))
