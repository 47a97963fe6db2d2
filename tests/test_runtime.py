"""The runtime: primitive semantics on a hand-predictable model, and the Halide rule: every plan
gives the reference interpreter's tokens at the same seed, for any batch size and chunking."""

from __future__ import annotations

import math

import pytest
import torch

from s3dsl.catalog import builtin_strategies
from s3dsl.compiler.build import build
from s3dsl.compiler.passes import plan
from s3dsl.dsl.errors import S3DSLError
from s3dsl.dsl.loader import parse_strategy
from s3dsl.runtime import resampling, rng, transition
from s3dsl.runtime.executor import BatchedExecutor, Flags
from s3dsl.runtime.reference import ReferenceInterpreter
from s3dsl.runtime.scoring import ParticleOutcome, choose
from s3dsl.session import compile_file, execute, run_strategy
from s3dsl.tasks.base import Problem
from s3dsl.tasks.registry import get_task

ARITH = get_task("arith")
SMALL = {"gen_length": "16", "steps": "16"}


def builtin(name: str):
    """A built-in strategy, shrunk to SMALL, for the arith task."""
    return compile_file(builtin_strategies()[name], SMALL, ARITH.gen_length, ARITH.default_verifier)


def program_of(text: str, gen_length: int = 8, **overrides: str):
    return build(parse_strategy(text, "t.yaml"), overrides, gen_length, "confidence")


def tokens(results) -> list[list[str]]:
    return [[p.completion for p in r.particles] for r in results]


def run(program, model, problems, level: int, seed: int = 3, batch_size: int = 8, **flags):
    the_plan = plan(program, level)
    if flags:
        from dataclasses import replace

        the_plan.flags = replace(the_plan.flags, **flags)
    results, _ = execute(
        the_plan, model, problems, ARITH.extract_answer, ARITH.is_correct, seed, batch_size
    )
    return results


# -- the base transition ----------------------------------------------------------------------


def test_commit_counts_follow_llada_schedule():
    masked = torch.tensor([10])
    counts = []
    for steps_left in (4, 3, 2, 1):
        k = int(transition.commit_counts(masked, steps_left)[0])
        counts.append(k)
        masked = masked - k
    assert counts == [3, 3, 2, 2]


def test_low_confidence_commits_most_confident_positions_first(toy_model):
    program = program_of("program:\n  step: denoise\n", gen_length=8, steps="4")
    problem = Problem("p", "1+1=", "2")
    interp = ReferenceInterpreter(program, toy_model, ARITH.extract_answer, 0)
    interp.states = [interp.initial_state(problem)]
    from s3dsl.runtime.engine import step_contexts

    ctx = next(step_contexts(program.decode))
    interp.apply(program.step[0], ctx)
    gen = interp.states[0].particles[0].ids[-8:]
    committed = (gen != toy_model.mask_id).nonzero().flatten().tolist()
    assert committed == [0, 1]  # 8 masks over 4 steps: 2 now, the earliest (most confident)
    assert toy_model.tokenizer.decode(gen[:2].tolist()) == "45"  # prompt is 4 long: i % 10


def test_threshold_commits_all_confident_positions(toy_model):
    text = "decode: {commit: threshold, threshold: 0.5}\nprogram:\n  step: denoise\n"
    program = program_of(text, gen_length=8, steps="8")
    results = run(program, toy_model, [Problem("p", "1+1=", "2")], level=2)
    assert results[0].nfe == 1  # every position is confident: one step decodes all
    assert results[0].completion == "45678901"


def test_gumbel_window_matches_full_draw():
    keys = torch.tensor([5, -7])
    full = rng.gumbel(keys, 3, (6, 4))
    part = rng.gumbel(keys, 3, (2, 4), offset=3 * 4)
    assert torch.equal(full[:, 3:5], part)


# -- population stages ------------------------------------------------------------------------


def test_expand_children_differ_only_in_noise(tiny_model, arith_problems):
    text = "decode: {temperature: 1.0}\nprogram:\n  init: expand(6)\n  step: denoise\n"
    program = program_of(text, gen_length=8)
    results = run(program, tiny_model, arith_problems[:1], level=2)
    completions = [p.completion for p in results[0].particles]
    assert len(completions) == 6 and len(set(completions)) > 1


def test_ssp_gives_floor_or_ceil_copies():
    weights = torch.tensor([0.05, 0.3, 0.15, 0.5], dtype=torch.float64)
    for seed in range(20):
        u = torch.rand(32, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
        counts = torch.bincount(resampling.ssp(weights, 6, u), minlength=4)
        assert int(counts.sum()) == 6
        expected = 6 * weights
        assert torch.all(counts >= torch.floor(expected)) and torch.all(
            counts <= torch.ceil(expected)
        )


@pytest.mark.parametrize("method", sorted(resampling.METHODS))
def test_every_resampler_returns_n_sorted_ancestors(method):
    weights = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    u = torch.rand(32, dtype=torch.float64)
    ancestors = resampling.METHODS[method](weights, 7, u)
    assert len(ancestors) == 7 and torch.equal(ancestors, ancestors.sort().values)


def test_resampling_within_strata_keeps_every_stratum():
    weights = torch.tensor([0.97, 0.01, 0.01, 0.01], dtype=torch.float64)
    strata = torch.tensor([0, 0, 1, 2])
    ancestors = resampling.resample(
        weights, 4, "systematic", torch.rand(16, dtype=torch.float64), strata
    )
    assert {int(strata[a]) for a in ancestors} == {0, 1, 2}


def test_imh_power_one_accepts_every_proposal():
    from s3dsl.runtime.semantics import imh_chain

    u = torch.full((4,), 0.999, dtype=torch.float64)
    state, accepted = imh_chain([-5.0, -1.0, -9.0, -3.0], "power", {"alpha": 1.0}, u)
    assert (state, accepted) == (3, 3)
    state, accepted = imh_chain([-5.0, -1.0, -9.0, -3.0], "power", {"alpha": 50.0}, u)
    assert state == 1  # a sharp target keeps the most likely proposal


def test_mh_accept_keeps_one_particle_per_group(tiny_model, arith_problems):
    text = (
        "decode: {temperature: 1.0}\nprogram:\n  init: expand(2)\n"
        "  step:\n    - expand(3, at=block_start)\n    - denoise\n"
        "    - mh-accept(target=power(2.0), at=block_end)\n"
    )
    program = program_of(text, gen_length=8)
    results = run(program, tiny_model, arith_problems[:2], level=2)
    for r in results:
        assert len(r.particles) == 2 and r.proposed == 2 * 2  # 2 chains x (3 - 1) proposals


def test_remask_reopens_the_least_confident_committed_tokens(toy_model):
    """The toy model commits positions left to right, each less confident than the one before;
    remask(count=2) must reopen the two least confident of them, and only those."""
    text = "program:\n  step:\n    - denoise\n    - remask(count=2, at=last_step)\n"
    program = program_of(text, gen_length=8, steps="8")
    interp = ReferenceInterpreter(program, toy_model, ARITH.extract_answer, 0)
    interp.states = [interp.initial_state(Problem("p", "1+1=", "2"))]
    from s3dsl.runtime.engine import step_contexts

    contexts = list(step_contexts(program.decode))
    for ctx in contexts[:5]:
        interp.apply(program.step[0], ctx)
    particle = interp.states[0].particles[0]
    assert interp.masked(particle).nonzero().flatten().tolist() == [5, 6, 7]
    particle.logp[1] = -50.0  # now position 1 is the least confident, then position 4
    interp.apply(program.step[1], contexts[-1])
    assert interp.masked(particle).nonzero().flatten().tolist() == [1, 4, 5, 6, 7]
    assert float(particle.logp[1]) == 0.0 and float(particle.logp[4]) == 0.0
    results = run(program, toy_model, [Problem("p", "1+1=", "2")], level=2)
    assert results[0].completion == "45678901" and results[0].nfe == 8 + 1  # + finishing step


def test_vote_breaks_ties_by_lowest_nll():
    outs = [
        ParticleOutcome("a", "1", nll=5.0, score=0.0),
        ParticleOutcome("b", "2", nll=1.0, score=0.0),
        ParticleOutcome("c", "1", nll=2.0, score=0.0),
        ParticleOutcome("d", "2", nll=3.0, score=0.0),
    ]
    assert choose(outs, "vote") == 1
    assert choose(outs[:3], "vote") == 2  # '1' wins 2-1; its lowest-NLL particle
    assert choose(outs, "score") == 1
    assert choose(outs, "logprob") == 1


def test_none_answers_lose_the_vote():
    outs = [
        ParticleOutcome("x", None, 0.1, 0.0),
        ParticleOutcome("y", None, 0.2, 0.0),
        ParticleOutcome("z", "3", 9.0, 0.0),
    ]
    assert choose(outs, "vote") == 2


# -- the Halide rule ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(builtin_strategies()))
def test_every_builtin_plan_matches_the_reference(name, tiny_model, arith_problems):
    program = builtin(name)
    problems = arith_problems[:2]
    reference = tokens(run(program, tiny_model, problems, level=0))
    assert tokens(run(program, tiny_model, problems, level=1)) == reference
    assert tokens(run(program, tiny_model, problems, level=2)) == reference
    assert tokens(run(program, tiny_model, problems, level=3)) == reference


@pytest.mark.parametrize("name", ["s3", "smc", "paths"])
def test_batch_size_and_chunking_do_not_change_tokens(name, tiny_model):
    program = builtin(name)
    problems = ARITH.problems("test", 5)
    base = tokens(run(program, tiny_model, problems, level=2, batch_size=1))
    assert tokens(run(program, tiny_model, problems, level=2, batch_size=4)) == base
    assert tokens(run(program, tiny_model, problems, level=2, batch_size=16, chunk_rows=3)) == base


def test_forward_sharing_cuts_s3_forward_passes(tiny_model, arith_problems):
    program = builtin("s3")
    reference = sum(r.nfe for r in run(program, tiny_model, arith_problems[:2], level=0))
    planned = sum(r.nfe for r in run(program, tiny_model, arith_problems[:2], level=2))
    assert planned <= 0.55 * reference
    assert plan(program, 2).cost.forwards * 2 <= plan(program, 0).cost.forwards + 32


def test_batched_executor_counts_match_reference_without_sharing(tiny_model, arith_problems):
    program = builtin("best_of_k")
    ref = [r.nfe for r in run(program, tiny_model, arith_problems[:2], level=0)]
    assert [r.nfe for r in run(program, tiny_model, arith_problems[:2], level=1)] == ref


@pytest.mark.parametrize("static_steps", [False, True])
def test_memory_chunking_halves_on_out_of_memory(static_steps, tiny_model, arith_problems):
    class Flaky:
        """Fails with OOM whenever a call has more than 4 rows."""

        def __init__(self, inner):
            self.inner = inner

        def forward(self, ids, attn, gen_length=None):
            return self.forward_last(ids, attn, gen_length, None)

        def forward_last(self, ids, attn, gen_length, last):
            if ids.shape[0] > 4:
                raise torch.OutOfMemoryError("simulated")
            return self.inner.forward_last(ids, attn, gen_length, last)

        def __getattr__(self, name):
            return getattr(self.inner, name)

    program = builtin("best_of_k")
    the_plan = plan(program, 2)
    executor = BatchedExecutor(
        program,
        Flaky(tiny_model),
        ARITH.extract_answer,
        3,
        Flags(chunk_rows=64, static_steps=static_steps),
    )
    with torch.inference_mode():
        flaky = tokens(executor.run(arith_problems[:2]))
    assert executor.counters.oom_halvings >= 1
    assert flaky == tokens(run(the_plan.program, tiny_model, arith_problems[:2], level=0))


@pytest.mark.parametrize("name", ["s3", "imh"])
def test_prompt_cache_encodes_each_prompt_once_and_keeps_the_tokens(
    name, tiny_model, arith_problems
):
    program = builtin(name)
    the_plan = plan(program, 2)
    assert "prompt-cache" in the_plan.enabled
    executor = BatchedExecutor(program, tiny_model, ARITH.extract_answer, 3, the_plan.flags)
    with torch.inference_mode():
        cached = tokens(executor.run(arith_problems[:3]))
    assert executor.counters.prompt_encodes == 3
    assert cached == tokens(run(program, tiny_model, arith_problems[:3], level=0))


def test_prompt_cache_is_approximate_only_on_request_for_full_attention_models(arith_problems):
    from dataclasses import replace

    from s3dsl.models.registry import TINY_CONFIG, build_random_model

    full = build_random_model(replace(TINY_CONFIG, isolate_prompt=False))
    program = builtin("single")
    exact, approx = plan(program, 2), plan(program, 2, enable=("approx-prompt-cache",))
    assert "approx-prompt-cache" not in exact.enabled
    for the_plan, encodes in ((exact, 0), (approx, 2)):
        executor = BatchedExecutor(program, full, ARITH.extract_answer, 3, the_plan.flags)
        with torch.inference_mode():
            executor.run(arith_problems[:2])
        assert executor.counters.prompt_encodes == encodes
    summary = run_strategy(
        "single", full, task="arith", limit=1, overrides=SMALL, enable=("approx-prompt-cache",)
    )
    assert summary.approximate == ["approx-prompt-cache"]


def test_only_opt_in_passes_are_enabled_by_name():
    program = builtin("single")
    with pytest.raises(S3DSLError, match="only opt-in"):
        plan(program, 2, enable=("dedup",))
    with pytest.raises(S3DSLError, match="no such pass"):
        plan(program, 2, enable=("aprox-prompt-cache",))


@pytest.mark.parametrize("name", ["single", "best_of_k", "random_remask"])
def test_static_steps_run_denoise_only_strategies_without_the_data_dependent_path(
    name, tiny_model, arith_problems
):
    program = builtin(name)
    the_plan = plan(program, 3)
    assert the_plan.flags.static_steps
    executor = BatchedExecutor(program, tiny_model, ARITH.extract_answer, 3, the_plan.flags)
    with torch.inference_mode():
        static = executor.run(arith_problems[:3], batch_size=2)
    # one fixed-shape call per step and batch, every row every step, the reference's forwards
    assert executor.counters.forward_calls == 2 * program.decode.steps
    reference = run(program, tiny_model, arith_problems[:3], level=0)
    assert tokens(static) == tokens(reference)
    assert [r.nfe for r in static] == [r.nfe for r in reference]


def test_static_plans_skip_strategies_with_data_dependent_steps():
    for name in ("s3", "imh", "threshold"):
        program = builtin(name)
        assert not plan(program, 3).flags.static_steps


def test_a_static_step_is_captured_whole_by_torch_compile(tiny_model, arith_problems):
    """fullgraph=True fails on any graph break, i.e. on any host sync or data-dependent Python
    branch; the eager backend keeps the arithmetic (and so the tokens) exactly as it is."""
    from s3dsl.runtime import static

    program = builtin("best_of_k")
    flags = plan(program, 3).flags
    eager = BatchedExecutor(program, tiny_model, ARITH.extract_answer, 3, flags)
    captured = BatchedExecutor(program, tiny_model, ARITH.extract_answer, 3, flags)
    captured.step_fn = torch.compile(
        static.denoise_step, fullgraph=True, dynamic=False, backend="eager"
    )
    with torch.inference_mode():
        want = tokens(eager.run(arith_problems[:2]))
        assert tokens(captured.run(arith_problems[:2])) == want


def test_smc_resamples_exactly_when_ess_is_low(arith_problems):
    """ESS-triggered resampling fires only at block ends and only below the threshold: on the
    arith model at `ess < 0.9` some block ends resample and others do not, a threshold of 0 never
    fires and one above 1 fires at every block end. (At smc's own `ess < 0.5` these short runs
    never degenerate that far.)"""
    from s3dsl.models.registry import load_model

    model = load_model("arith")
    source = builtin_strategies()["smc"].read_text()
    blocks = builtin("smc").decode.num_blocks
    for threshold, low, high in (("0.0", 0, 0), ("0.9", 0, blocks - 1), ("1.01", blocks, blocks)):
        text = source.replace("ess < 0.5", f"ess < {threshold}")
        program = build(parse_strategy(text, "smc.yaml"), SMALL, 16, "confidence")
        results = run(program, model, arith_problems, level=2)
        assert all(low <= r.resamples <= high for r in results), threshold
        if threshold == "0.9":  # some block ends fired, and others did not
            assert sum(r.resamples for r in results) > 0
        for r in results:
            assert (r.min_ess is None) == (r.resamples == 0)
            assert r.min_ess is None or 0 < r.min_ess < float(threshold)
            assert not math.isnan(r.particles[0].nll)


# -- the shared semantics, by hand (both interpreters call these, so equivalence cannot) -----


def test_weight_updates_follow_their_definitions():
    from s3dsl.runtime.semantics import weight_update

    t = lambda x: torch.tensor([x], dtype=torch.float64)  # noqa: E731
    logw, step_logp, score, prev, best = t(-1.0), t(-0.5), t(3.0), t(2.0), t(7.0)
    for by, scale, want in (("logprob", 2.0, -2.0), ("score", 1.0, 2.0), ("diff", 1.0, 0.0),
                            ("max", 0.5, 3.5)):
        got = weight_update(logw, step_logp, score, prev, best, {"by": by, "scale": scale})
        assert float(got) == want, by
    first = weight_update(logw, step_logp, score, t(float("nan")), best, {"by": "diff", "scale": 1})
    assert float(first) == 2.0  # no earlier score: the whole score is the change


def test_tilted_mh_prefers_the_higher_reward():
    from s3dsl.runtime.semantics import imh_chain

    u = torch.full((2,), 0.9, dtype=torch.float64)
    assert imh_chain([0.0, 5.0], "tilted", {"beta": 1.0}, u) == (1, 1)
    assert imh_chain([5.0, 0.0], "tilted", {"beta": 1.0}, u) == (0, 0)
    assert imh_chain([0.0, -5.0], "power", {"alpha": 3.0}, u) == (0, 0)


def test_strata_put_the_best_scores_first_and_resample_weights_scale_by_beta():
    from s3dsl.runtime.semantics import resample_logweights, score_strata

    scores = torch.tensor([0.1, 0.9, 0.5, 0.7], dtype=torch.float64)
    assert score_strata(scores, 2).tolist() == [1, 0, 1, 0]
    args = {"weights": "auto", "beta": 0.5}
    assert resample_logweights([1.0, 2.0], [9.0, 9.0], args).tolist() == [2.0, 4.0]
    assert resample_logweights([NAN_, NAN_], [9.0, 8.0], args).tolist() == [9.0, 8.0]


NAN_ = float("nan")


def test_select_uses_its_criterion():
    outs = [
        ParticleOutcome("a", "1", nll=1.0, score=0.2),
        ParticleOutcome("b", "2", nll=3.0, score=0.9),
        ParticleOutcome("c", "1", nll=2.0, score=0.1),
    ]
    assert (choose(outs, "score"), choose(outs, "logprob"), choose(outs, "vote")) == (1, 0, 0)


def test_particle_nll_is_minus_the_committed_log_probability(toy_model):
    program = program_of("program:\n  step: denoise\n", gen_length=8, steps="8")
    (result,) = run(program, toy_model, [Problem("p", "1+1=", "2")], level=0)
    logits = toy_model.forward(torch.zeros(1, 12, dtype=torch.long), None)[0, 4:]
    want = -float(torch.log_softmax(logits, -1).max(-1).values.double().sum())
    assert result.particles[0].nll == want and want > 0


def test_prune_keeps_the_best_scoring_particles_in_order(tiny_model, arith_problems):
    from s3dsl.runtime.semantics import prune_survivors

    assert prune_survivors([0.5, NAN_, 0.9, 0.5, 0.1], 3) == [0, 2, 3]
    assert prune_survivors([0.2, 0.1], 5) == [0, 1]
    text = ("decode: {temperature: 1.0}\nverifiers:\n  v: confidence\nprogram:\n  init: expand(6)\n"
            "  step:\n    - denoise\n    - score(v)\n    - prune(2, at=last_step)\n"
            "  final: select(by=score)\n")
    program = program_of(text, gen_length=8)
    assert program.step[2].n_out == 2
    ref = run(program, tiny_model, arith_problems[:2], level=0)
    for r in ref:
        assert len(r.particles) == 2
    full = program_of(text.replace("    - prune(2, at=last_step)\n", ""), gen_length=8)
    for r, everyone in zip(ref, run(full, tiny_model, arith_problems[:2], level=0)):
        best = sorted((p.score for p in everyone.particles), reverse=True)[:2]
        assert sorted((p.score for p in r.particles), reverse=True) == best
    assert tokens(run(program, tiny_model, arith_problems[:2], level=2)) == tokens(ref)


def test_margin_is_top1_minus_top2_probability_and_entropy_prefers_peaked_positions():
    """Dream's topk_margin: position 0 is more confident (p=0.5 vs 0.45) but position 1 has the
    larger gap between its two best tokens (0.40 vs 0.05)."""
    probs = torch.full((1, 2, 13), 1e-6)
    probs[0, 0, :3] = torch.tensor([0.5, 0.45, 0.05])
    probs[0, 1, 0], probs[0, 1, 1:12] = 0.45, 0.05
    logp = torch.log(probs / probs.sum(-1, keepdim=True))
    gen = torch.full((1, 2), 12)
    picks = {}
    for rule in ("confidence", "margin", "entropy"):
        _, commit, _ = transition.propose_and_commit(
            logp, gen, torch.tensor([1]), mask_id=12, w0=0, block_end=2, steps_left=2, step=0,
            temperature=0.0, rule=rule, threshold=0.9,
        )
        picks[rule] = commit[0].nonzero().flatten().tolist()
    assert picks == {"confidence": [0], "margin": [1], "entropy": [0]}


def test_agreement_is_the_share_holding_the_most_common_answer():
    from s3dsl.compiler.schedule import StepContext
    from s3dsl.runtime.semantics import condition_env

    ctx = StepContext(0, 0, 0, 1, 1, 8, 8)
    env = condition_env([0.0] * 4, [NAN_] * 4, ["7", "7", None, "3"], ctx)
    assert (env["agreement"], env["n_answers"]) == (0.5, 2)
    env = condition_env([0.0] * 2, [NAN_] * 2, [None, None], ctx)
    assert (env["agreement"], env["n_answers"]) == (0.0, 0)


def test_stop_finishes_the_problem_and_spends_no_later_forward(tiny_model, arith_problems):
    """One particle, 8 steps: denoise at steps 0 and 1, then stop's one finishing forward; the
    remask after it may not reopen the problem, so nothing after step 1 runs a forward."""
    text = ("verifiers:\n  v: confidence\nprogram:\n  step:\n    - denoise\n"
            '    - stop(when="step >= 1")\n    - remask(count=2)\n  final: select\n')
    program = program_of(text, gen_length=8)
    ref = run(program, tiny_model, arith_problems[:2], level=0)
    assert [r.nfe for r in ref] == [3, 3]
    for level in (1, 2, 3):
        results = run(program, tiny_model, arith_problems[:2], level=level)
        assert tokens(results) == tokens(ref) and [r.nfe for r in results] == [3, 3], level
    assert plan(program, 2).cost.forwards >= 3  # a bound: stop's forward counted where it may fire


def test_s3_agree_on_arith_stops_early_with_the_same_tokens_at_opt_0_and_2(arith_problems):
    from s3dsl.models.registry import load_model

    model = load_model("arith")
    program = compile_file(builtin_strategies()["s3_agree"], None, ARITH.gen_length,
                           ARITH.default_verifier)
    problems = arith_problems[:2]
    ref = run(program, model, problems, level=0)
    opt2 = run(program, model, problems, level=2)
    assert tokens(opt2) == tokens(ref)
    bound = plan(program, 2).cost.forwards
    assert all(r.nfe < bound for r in opt2)  # the trained model's particles agree: it stopped


def test_a_strategy_is_planned_once_per_file_content_and_arguments(tmp_path):
    from s3dsl.session import planned

    path = tmp_path / "k.yaml"
    path.write_text(builtin_strategies()["best_of_k"].read_text())
    first = planned(path, {"k": "2"}, 16, "confidence")
    assert planned(path, {"k": "2"}, 16, "confidence") is first
    assert planned(path, {"k": "3"}, 16, "confidence").program.init != first.program.init
    assert planned(path, {"k": "2"}, 16, "confidence", opt_level=0).reference
    path.write_text(path.read_text().replace("best_of_k", "edited_k", 1))  # an edited file
    edited = planned(path, {"k": "2"}, 16, "confidence")
    assert edited is not first and edited.program.name == "edited_k"
    path.unlink()
    with pytest.raises(S3DSLError, match="k.yaml"):  # the loader's error, not an OSError
        planned(path, {"k": "2"}, 16, "confidence")
