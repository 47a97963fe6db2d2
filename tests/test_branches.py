"""Runtime conditions on every stage: a count-changing stage under `when=` runs only for the
problems whose condition holds (the batch splits into cohorts), the others pass through
unchanged; the compiler follows every path for shapes and for its forward bound."""

from __future__ import annotations

import math

import pytest

from s3dsl.catalog import builtin_strategies
from s3dsl.compiler.build import build
from s3dsl.compiler.passes import plan
from s3dsl.dsl.errors import S3DSLError
from s3dsl.dsl.expr import compile_condition
from s3dsl.dsl.loader import parse_strategy
from s3dsl.session import compile_file, execute
from s3dsl.tasks.registry import get_task

ARITH = get_task("arith")


def program_of(text: str, gen_length: int = 8, **overrides: str):
    return build(parse_strategy(text, "t.yaml"), overrides, gen_length, "arith-heuristic")


def run(program, model, problems, level: int, batch_size: int = 8, seed: int = 3):
    results, _ = execute(plan(program, level), model, problems, ARITH.extract_answer,
                         ARITH.is_correct, seed, batch_size)
    return results


def observed(results) -> list:
    return [(r.prediction, r.chosen, r.nfe, r.resamples,
             [(p.tokens, p.answer) for p in r.particles]) for r in results]


def test_the_compiler_decides_what_the_static_signals_settle():
    cond = compile_condition("n == 1 and max_score < 2", ["n", "max_score"])
    assert (cond.decide({"n": 4}), cond.decide({"n": 1})) == (False, None)
    assert compile_condition("step >= 2 or ess < 1", ["step", "ess"]).decide({"step": 3}) is True


EXPANDING = ("verifiers: {v: arith-heuristic}\nprogram:\n  step:\n"
             "    - denoise\n    - score(v)\n"
             '    - expand(4, at=block_end, when="n == 1 and max_score < 3")\n'
             '    - resample(2, when="n > 2")\n  final: select\n')


def test_a_conditional_expand_opens_paths_with_their_own_counts():
    program = program_of(EXPANDING, block_length="4")
    expand, resample = program.step[2], program.step[3]
    assert (expand.n_in, expand.n_out) == (1, 4)  # n == 1 decides it: never 4 -> 16
    assert (resample.n_in, resample.n_out) == (4, 2)
    cost = plan(program, 2).cost  # at T=0 the copies coincide: every path pays the same
    assert cost.paths > 1 and cost.exact
    sampled = program_of(EXPANDING, block_length="4", temperature="1.0")
    assert not plan(sampled, 2).cost.exact


def test_mh_accept_needs_the_groups_on_every_path():
    with pytest.raises(S3DSLError) as info:
        program_of("verifiers: {v: arith-heuristic}\nprogram:\n  step:\n"
                   '    - expand(2, when="max_score < 3")\n    - denoise\n    - score(v)\n'
                   "    - mh-accept(target=tilted(v, 0.5))\n  final: select\n")
    assert "groups" in info.value.message and "path" in info.value.message


UNSCORED = ("verifiers: {v: arith-heuristic}\nprogram:\n  step:\n    - expand(2)\n"
            '    - denoise\n    - score(v, when="max_score < 0.45")\n    - ${consumer}\n'
            "  final: select\n")


@pytest.mark.parametrize("consumer", ["resample(1, method=ssp, weights=score)",
                                      "resample(1, method=residual, weights=score)",
                                      "weight(by=score)", "weight(by=diff)"])
def test_a_score_consumer_after_a_score_that_may_not_have_run_is_refused(consumer):
    """max_score is nan until a score runs, so this score never runs: explicit score weights
    would read nan (an internal error at run time, found by S3DSL_EXPLORE); the compiler says so."""
    text = UNSCORED.replace("${consumer}", consumer)
    with pytest.raises(S3DSLError) as info:
        program_of(text)
    assert "needs every particle scored" in info.value.message
    assert info.value.span is not None and info.value.span.line == 7  # the consumer
    assert "without when=" in info.value.hint


@pytest.mark.parametrize("consumer", ["resample(1, method=ssp)", "prune(1)",
                                      "weight(by=max)\n    - resample(1, weights=logw)"])
def test_consumers_that_handle_unscored_particles_still_compile_and_run(consumer, tiny_model):
    """weights=auto falls back to the log-weights, prune ranks nan last, by=max reads the best
    score so far (-inf while unscored): both interpreters agree."""
    program = program_of(UNSCORED.replace("${consumer}", consumer))
    problems = ARITH.problems("test", 2)
    ref, opt = (run(program, tiny_model, problems, level) for level in (0, 2))
    assert [(r.prediction, r.chosen, [(p.tokens, p.answer) for p in r.particles]) for r in ref] \
        == [(r.prediction, r.chosen, [(p.tokens, p.answer) for p in r.particles]) for r in opt]


BRANCHY = ("decode: {temperature: 1.0, block_length: 4}\nverifiers: {v: arith-heuristic}\n"
           "program:\n  step:\n"
           '    - expand(2, when="n > 1")\n    - denoise\n    - score(v)\n'
           '    - resample(2, method=ssp, beta=0.5, when="n > 2")\n'
           '    - expand(2, at=block_end, when="n == 1 and max_score < ${cut}")\n'
           "  final: select(by=vote)\n")


@pytest.mark.parametrize("cut", ["0.0", "1.0"])
def test_problems_that_split_match_the_reference_at_every_level(cut, arith_model):
    """At cut 1.0 some of the 6 problems escalate and some do not (the batch splits); at 0.0
    none does. Every level gives the reference's tokens (and its forwards at opt 1), for batch
    sizes that cut the cohorts differently."""
    program = build(parse_strategy(BRANCHY.replace("${cut}", cut), "t.yaml"), None, 16,
                    "arith-heuristic")
    problems = ARITH.problems("test", 6)
    ref = run(program, arith_model, problems, 0)
    counts = {len(r.particles) for r in ref}
    assert counts == ({1, 2} if cut == "1.0" else {1})
    assert observed(run(program, arith_model, problems, 1, batch_size=4)) == observed(ref)
    bound = plan(program, 2).cost.forwards
    for level, batch in ((2, 8), (2, 1), (3, 4)):
        got = run(program, arith_model, problems, level, batch_size=batch)
        assert [o[4] for o in observed(got)] == [o[4] for o in observed(ref)], (level, batch)
        assert all(r.nfe <= bound for r in got)


def test_problems_that_do_not_escalate_are_the_single_decode(arith_model):
    """adaptive.yaml on the trained arith model: a problem that stays below no threshold is
    token for token the single decode and spends its forwards (48); the others escalate."""
    problems = ARITH.problems("test", 8)
    adaptive = compile_file(builtin_strategies()["adaptive"], None, ARITH.gen_length,
                            ARITH.default_verifier)
    single = compile_file(builtin_strategies()["single"], None, ARITH.gen_length,
                          ARITH.default_verifier)
    got, alone = run(adaptive, arith_model, problems, 2), run(single, arith_model, problems, 2)
    stayed = [i for i, r in enumerate(got) if len(r.particles) == 1]
    assert stayed and len(stayed) < len(problems)
    for i in stayed:
        assert got[i].particles[0].tokens == alone[i].particles[0].tokens
        assert got[i].nfe == alone[i].nfe
    assert all(r.nfe <= plan(adaptive, 2).cost.forwards for r in got)


def test_resample_when_the_score_ess_drops_can_follow_an_expand(tiny_model):
    """The issue's case: expand, then resample back down only where the ESS of the weights it
    draws by (exp(score / beta)) is low; elsewhere the population keeps its size."""
    text = ("decode: {temperature: 1.0}\nverifiers: {v: arith-heuristic}\nprogram:\n"
            "  step:\n    - expand(2, at=block_start)\n    - denoise\n    - score(v)\n"
            '    - resample(1, beta=0.1, at=block_end, when="score_ess < 0.9")\n'
            "  final: select(by=vote)\n")
    program = build(parse_strategy(text, "t.yaml"), {"block_length": "4"}, 8, "arith-heuristic")
    problems = ARITH.problems("test", 4)
    ref = run(program, tiny_model, problems, 0)
    assert len({len(r.particles) for r in ref}) > 1  # it fired for some problems only
    assert observed(run(program, tiny_model, problems, 1, batch_size=3)) == observed(ref)
    got = run(program, tiny_model, problems, 2, batch_size=3)
    assert [o[4] for o in observed(got)] == [o[4] for o in observed(ref)]


def test_score_ess_is_the_ess_of_the_stage_s_score_weights():
    from s3dsl.compiler.schedule import StepContext
    from s3dsl.runtime.semantics import condition_env

    ctx = StepContext(0, 0, 0, 1, 1, 8, 8)
    env = condition_env([0.0, 0.0], [0.0, math.log(3.0) * 0.5], [None, None], ctx, beta=0.5)
    assert env["score_ess"] == pytest.approx(1 / (2 * (0.25**2 + 0.75**2)))
    assert math.isnan(condition_env([0.0], [math.nan], [None], ctx)["score_ess"])


@pytest.fixture(scope="module")
def arith_model():
    from s3dsl.models.registry import load_model

    return load_model("arith")


def test_a_condition_the_static_signals_make_false_everywhere_is_a_warning():
    from s3dsl.compiler.lint import lint

    program = program_of("verifiers: {v: confidence}\nprogram:\n  step:\n    - expand(2)\n"
                         "    - 'denoise(when=\"n == 1\")'\n    - denoise\n    - score(v)\n"
                         "    - resample(1)\n  final: select\n")
    (warning,) = lint(program)
    assert "never runs" in warning.message and warning.span.line == 5
    assert not lint(compile_file(builtin_strategies()["adaptive"], None, ARITH.gen_length,
                                 ARITH.default_verifier))


def test_the_reported_ess_is_that_of_the_weights_resample_drew_by(tiny_model, monkeypatch):
    """S3 resamples by exp(score / beta): the ESS `run` reports is of those weights (the
    log-weights' ESS would be 1 here, since nothing weights them)."""
    import torch

    from s3dsl.runtime import resampling
    from s3dsl.runtime.reference import ReferenceInterpreter

    seen: list[float] = []
    original = ReferenceInterpreter.resample

    def spy(self, s, op, ctx):
        scores = torch.tensor([p.score for p in s.particles], dtype=torch.float64)
        seen.append(resampling.ess(resampling.normalize(scores / op.args["beta"])))
        original(self, s, op, ctx)

    monkeypatch.setattr(ReferenceInterpreter, "resample", spy)
    program = compile_file(builtin_strategies()["s3"], {"gen_length": "8", "beta": "0.05"}, 8,
                           "arith-heuristic")
    (result,) = run(program, tiny_model, ARITH.problems("test", 1), 0)
    assert result.min_ess == pytest.approx(min(seen)) and min(seen) < 0.99
    (batched,) = run(program, tiny_model, ARITH.problems("test", 1), 2)
    assert batched.min_ess == pytest.approx(result.min_ess)


def test_a_split_batch_keeps_its_block_kv_cache_rows_apart(arith_model):
    """With a block KV cache (rows refreshed in place), a batch that splits gives each problem
    the tokens it gets alone."""
    program = compile_file(builtin_strategies()["adaptive"], None, ARITH.gen_length,
                           ARITH.default_verifier)
    problems = ARITH.problems("test", 6)

    def tokens(batch_size: int) -> list:
        the_plan = plan(program, 2, enable=("prefix-cache",))
        results, _ = execute(the_plan, arith_model, problems, ARITH.extract_answer,
                             ARITH.is_correct, 0, batch_size)
        return [[p.tokens for p in r.particles] for r in results]

    together = tokens(6)
    assert len({len(t) for t in together}) > 1  # some escalated, some did not: it split
    assert together == tokens(1)
