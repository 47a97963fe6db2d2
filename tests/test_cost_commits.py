"""The cost model's reading of commits: how many masks each commit leaves, so a second `denoise`
in one step (or a block emptied before its last step) is counted as the run spends it."""

from __future__ import annotations

import pytest

from s3dsl.compiler.build import build
from s3dsl.compiler.cost import committed_after
from s3dsl.compiler.ir import DecodeConfig
from s3dsl.compiler.passes import plan
from s3dsl.compiler.schedule import step_contexts
from s3dsl.dsl.loader import parse_strategy
from s3dsl.session import execute
from s3dsl.tasks.registry import get_task

ARITH = get_task("arith")
GEN = 24

# the reproducer: two denoise stages per step, T=1, gen_length 24 (one block of 24 steps); the
# run empties the block after 12 steps, the old count paid all 24
TWICE = """name: twice
decode: {temperature: 1.0, commit: confidence}
verifiers:
  v: arith-heuristic
program:
  init: expand(4)
  step:
    - denoise
    - score(v)
    - weight(by=diff)
    - denoise
    - score(v)
    - weight(by=diff)
    - resample(4, method=multinomial, weights=logw, at=block_end)
  final: select(by=score)
"""


def compile_text(text: str):
    return build(parse_strategy(text, "s.yaml"), None, GEN, "arith-heuristic")


def run(program, model, problems, level: int, disable: tuple[str, ...] = ()):
    the_plan = plan(program, level, disable)
    results, _ = execute(the_plan, model, problems, ARITH.extract_answer, ARITH.is_correct, 3, 8)
    return the_plan, [r.nfe for r in results]


@pytest.fixture(scope="module")
def arith_model():
    from s3dsl.models.registry import load_model

    return load_model("arith")


def test_even_split_reproduces_llada_and_counts_a_second_commit():
    decode = DecodeConfig(4, 10, 10, 0.0, "confidence", 0.9)
    contexts = list(step_contexts(decode))
    committed, per_step = 0, []
    for ctx in contexts:  # one commit per step: LLaDA's precomputed 3, 3, 2, 2
        after = committed_after(committed, ctx, "confidence", decode)
        per_step.append(after - committed)
        committed = after
    assert per_step == [3, 3, 2, 2]
    committed = 0
    for ctx in contexts[:3]:  # two commits per step: 3 + 2, 2 + 1, 1 + 1: full a step early
        committed = committed_after(committed, ctx, "confidence", decode)
        per_step.append(committed)
        committed = committed_after(committed, ctx, "confidence", decode)
        per_step.append(committed)
    assert per_step[4:] == [3, 5, 7, 8, 9, 10]
    assert committed_after(committed, contexts[3], "confidence", decode) == 10
    linear = DecodeConfig(4, 10, 10, 0.0, "confidence", 0.9, schedule="linear")
    assert committed_after(0, contexts[0], "confidence", linear) == 0  # masks remain until...
    assert committed_after(0, contexts[3], "confidence", linear) == 10  # ...the last step


def test_two_denoises_per_step_are_counted_as_run(arith_model):
    program = compile_text(TWICE)
    problems = ARITH.problems("test", 2)
    ref_plan, ref = run(program, arith_model, problems, 0)
    assert ref_plan.cost.exact
    # 12 steps of 2 denoises and 2 scores per particle, less the last score (no masks left)
    assert ref == [4 * 47] * 2 == [ref_plan.cost.forwards] * 2
    opt1_plan, opt1 = run(program, arith_model, problems, 1)
    assert opt1_plan.cost.exact and opt1 == [opt1_plan.cost.forwards] * 2 == ref
    bound_plan, no_dedup = run(program, arith_model, problems, 2, ("dedup",))
    assert bound_plan.cost.exact and no_dedup == [bound_plan.cost.forwards] * 2


def test_a_denoise_only_step_with_two_denoises_is_not_a_static_step(arith_model):
    """A fixed-shape step runs every row's forward; when the block empties early it would spend
    forwards the reference does not (96 against 48 per problem here)."""
    program = compile_text("decode: {temperature: 1.0}\nprogram:\n  init: expand(2)\n"
                           "  step: denoise | denoise\n  final: select(by=logprob)\n")
    problems = ARITH.problems("test", 2)
    _, ref = run(program, arith_model, problems, 0)
    assert ref == [2 * 24] * 2
    for level in (1, 2, 3):
        the_plan, got = run(program, arith_model, problems, level, ("dedup",))
        assert not the_plan.flags.static_steps
        assert the_plan.cost.exact and got == [the_plan.cost.forwards] * 2 == ref, level


def test_two_denoises_per_step_with_particle_schedules(arith_model):
    program = compile_text("decode: {temperature: 1.0}\nprogram:\n"
                           "  init: expand(2, schedules=[schedule(block_length=8), 24])\n"
                           "  step: denoise | denoise\n  final: select(by=vote)\n")
    problems = ARITH.problems("test", 2)
    ref_plan, ref = run(program, arith_model, problems, 0)
    assert ref_plan.cost.exact and ref == [ref_plan.cost.forwards] * 2
    opt1_plan, opt1 = run(program, arith_model, problems, 1)
    assert opt1 == ref == [opt1_plan.cost.forwards] * 2


def test_a_remembered_count_is_the_walks_own_and_a_callers_copy():
    """`count` remembers recent plans (explain plans again per pass): the same plan gives the
    walk's count again, another program's plan is walked afresh, and a caller writing into the
    cost it got changes nothing the next caller sees."""
    from s3dsl.compiler import cost as cost_model
    from s3dsl.compiler.lowered import lower

    program = compile_text(TWICE)
    lowered = lower(program)
    first = cost_model.count(lowered, program)
    assert first == cost_model._count(lowered, program)
    first.forwards, first.by_stage["denoise"] = -1, -1
    again = cost_model.count(lowered, program)
    assert again == cost_model._count(lowered, program) and again.forwards > 0
    other = compile_text(TWICE.replace("expand(4)", "expand(2)"))
    assert cost_model.count(lower(other), other) == cost_model._count(lower(other), other)
    assert cost_model.count(lower(other), other).forwards != again.forwards
