"""Per-particle schedules (`expand(k, schedules=[...])`): checked by the compiler, counted by the
cost model, run by both interpreters, each particle decoding as a one-schedule program would."""

from __future__ import annotations

import pytest

from s3dsl.catalog import builtin_strategies
from s3dsl.compiler.build import build
from s3dsl.compiler.passes import plan
from s3dsl.dsl.errors import S3DSLError
from s3dsl.dsl.loader import parse_strategy
from s3dsl.session import compile_file, execute
from s3dsl.tasks.registry import get_task

ARITH = get_task("arith")
GEN = 24  # arith's answers fit; half the task's 48 keeps the runs short


def compile_text(text: str, gen: int = 48):
    return build(parse_strategy(text, "s.yaml"), None, gen, "arith-heuristic")


def error(text: str) -> S3DSLError:
    with pytest.raises(S3DSLError) as err:
        compile_text(text)
    return err.value


@pytest.mark.parametrize("init, message, where", [
    ("expand(2, schedules=[schedule(block_length=5), 8])",
     "gen_length 48 is not a multiple of block_length 5", (2, 39)),
    ("expand(2, schedules=[schedule(blok_length=4), 8])", "did you mean 'block_length'", (2, 39)),
    ("expand(1, schedules=[4, 8])", "gives 1 children but 2 schedules", (2, 9)),
    ("expand(2, schedules=[schedule(steps=96), 8])", "exceed decode.steps 48", (2, 39)),
    ("expand(2, schedules=[schedule(commit=margn), 8])", "unknown commit rule", (2, 39)),
    ("expand(2, schedules=[])", "non-empty list", (2, 19)),
    ("expand(2, schedules=[tilt(4)])", "'tilt' is not a schedule", (2, 30)),
])
def test_schedule_errors_point_at_what_was_written(init, message, where):
    err = error(f"program:\n  init: {init}\n  step: denoise\n")
    text = err.message + " " + (err.hint or "")
    assert message in text
    assert (err.span.line, err.span.column) == where


def test_schedules_belong_to_init():
    err = error("program:\n  step: expand(2, schedules=[4, 8]) | denoise\n")
    assert "only applies in init" in err.message


HETERO = ("decode: {temperature: %s}\nprogram:\n  init: expand(4, schedules=[4, "
          "schedule(block_length=24, commit=margin), schedule(block_length=12, steps=12), "
          "schedule(block_length=8, temperature=1.0)])\n  step: denoise\n"
          "  final: select(by=vote)\n")


def run(program, model, problems, level: int, disable: tuple[str, ...] = ()):
    the_plan = plan(program, level, disable)
    results, _ = execute(the_plan, model, problems, ARITH.extract_answer, ARITH.is_correct, 3, 8)
    return the_plan, results


@pytest.fixture(scope="module")
def arith_model():
    from s3dsl.models.registry import load_model

    return load_model("arith")


def test_each_particle_decodes_as_its_own_single_schedule_program(arith_model):
    """Particle j of a mixed population equals a one-particle program with schedule j's
    settings as its decode: the per-row commit math is the one-schedule math."""
    problems = ARITH.problems("test", 2)
    program = compile_text(HETERO % "0.0", GEN)
    alone = ["block_length: 4", "block_length: 24, commit: margin",
             "block_length: 12, steps: 12", "block_length: 8, temperature: 1.0"]
    for level in (0, 2):
        _, mixed = run(program, arith_model, problems, level)
        for j, settings in enumerate(alone):
            # child j of expand(4) has the key of child j: the one-particle program draws it too
            single = compile_text(f"decode: {{{settings}}}\nprogram:\n  init: expand(4)\n"
                                  "  step: denoise\n  final: select(by=vote)\n", GEN)
            _, ref = run(single, arith_model, problems, 1)  # opt 1 = opt 0 (test_equivalence)
            for got, want in zip(mixed, ref):
                assert got.particles[j].completion == want.particles[j].completion, (level, j)


def test_opt_levels_agree_and_the_count_is_exact_without_dedup(arith_model):
    problems = ARITH.problems("test", 2)
    program = compile_text(HETERO % "0.0", GEN)
    ref_plan, ref = run(program, arith_model, problems, 0)
    want = [[p.completion for p in r.particles] for r in ref]
    # without dedup a row's forwards follow from its schedule alone, sampled or not:
    # 24 + 24 + 12 (a 12-step schedule) + 24
    assert ref_plan.cost.exact and ref_plan.cost.forwards == 84
    assert [r.nfe for r in ref] == [84, 84]
    for level, disable in ((1, ()), (2, ("dedup",)), (2, ()), (3, ())):
        the_plan, got = run(program, arith_model, problems, level, disable)
        assert [[p.completion for p in r.particles] for r in got] == want, (level, disable)
        assert all(r.nfe <= the_plan.cost.forwards for r in got)
    greedy = compile_text(HETERO.replace(", temperature=1.0", "") % "0.0", GEN)
    for level, disable, exact in ((0, (), True), (1, (), True), (2, ("dedup",), True),
                                  (2, (), False)):
        the_plan, got = run(greedy, arith_model, problems, level, disable)
        assert the_plan.cost.exact is exact, (level, disable)
        if exact:
            assert [r.nfe for r in got] == [the_plan.cost.forwards] * 2, (level, disable)
        assert all(r.nfe <= the_plan.cost.forwards for r in got)


@pytest.mark.parametrize("task", ["arith", "sudoku"])
def test_hex_gives_the_same_tokens_at_opt_0_and_2(task):
    from s3dsl.models.registry import load_model

    the_task = get_task(task)
    program = compile_file(builtin_strategies()["hex"], None, the_task.gen_length,
                           the_task.default_verifier)
    assert [d.block_length for d in program.schedules] == [the_task.gen_length // 4,
                                                           the_task.gen_length // 2,
                                                           the_task.gen_length]
    model, problems = load_model(the_task.default_model), the_task.problems("test", 1)
    out = []
    for level in (0, 2):
        the_plan = plan(program, level)
        results, _ = execute(the_plan, model, problems, the_task.extract_answer,
                             the_task.is_correct, 0, 8)
        out.append([[p.completion for p in r.particles] + [r.prediction] for r in results])
    assert out[0] == out[1]


def test_explain_lists_the_schedules():
    from s3dsl.compiler.explain import explain_lines

    program = compile_text(HETERO % "0.0", GEN)
    text = "\n".join(explain_lines(plan(program, 2)))
    assert "schedule 2: block_length=24 (1 blocks x 24 steps), steps=24, commit=margin" in text
    assert "schedule 3: block_length=12 (2 blocks x 6 steps), steps=12" in text
    assert "schedules=[schedule(block_length=4), schedule(block_length=24, commit=margin)" in text


def test_block_points_under_own_block_lengths_warn():
    from s3dsl.compiler.lint import lint

    program = compile_text("verifiers: {v: arith-heuristic}\nprogram:\n"
                           "  init: expand(2, schedules=[12, 24])\n"
                           "  step: denoise | score(v, at=block_end) | weight"
                           " | resample(2, every=4)\n")
    warnings = [w for w in lint(program) if "decode's blocks" in w.message]
    assert [(w.span.line, w.span.column) for w in warnings] == [(4, 19)]
    assert "follows decode's blocks (block_length 48)" in warnings[0].message


@pytest.mark.parametrize("kind", ["prefix", "dual"])
def test_block_kv_caches_refuse_per_particle_schedules(kind):
    program = compile_text(HETERO % "0.0", GEN)
    with pytest.raises(S3DSLError, match="one block schedule for every particle"):
        plan(program, 2, enable=(f"{kind}-cache",))


def test_search_steps_with_schedules_match_the_reference_at_opt_3(arith_model):
    """A step of capturable stages (expand, denoise, score, resample) is not captured when the
    particles have their own schedules: opt 3 still equals the reference."""
    program = compile_text("decode: {temperature: 1.0}\nverifiers: {v: confidence}\n"
                           "program:\n  init: expand(2, schedules=[4, 12])\n"
                           "  step: expand(2) | denoise | score(v) | resample(2)\n"
                           "  final: select(by=vote)\n", GEN)
    problems = ARITH.problems("test", 2)
    _, ref = run(program, arith_model, problems, 0)
    the_plan, got = run(program, arith_model, problems, 3)
    assert not the_plan.lowered.has("captured-step")
    assert [[p.completion for p in r.particles] for r in got] == \
        [[p.completion for p in r.particles] for r in ref]
