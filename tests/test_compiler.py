"""The compiler: every user error names file:line:col and hints; shapes and costs are right."""

from __future__ import annotations

import pytest

from s3dsl.catalog import builtin_strategies
from s3dsl.compiler.build import build
from s3dsl.compiler.cost import predict
from s3dsl.compiler.passes import plan
from s3dsl.dsl.errors import S3DSLError
from s3dsl.dsl.loader import parse_strategy
from s3dsl.session import compile_file


def compile_text(text: str, **overrides: str):
    return build(parse_strategy(text, "s.yaml"), overrides, 16, "arith-heuristic")


def error_of(text: str, **overrides: str) -> S3DSLError:
    with pytest.raises(S3DSLError) as info:
        compile_text(text, **overrides)
    return info.value


S3_LIKE = """\
params:
  particles: 4
program:
  init: expand(${particles})
  step: expand(2) | denoise | score(v) | resample(${particles}, method=ssp)
  final: select(by=vote)
verifiers:
  v: arith-heuristic
"""


def test_builtin_strategies_compile():
    for path in builtin_strategies().values():
        program = compile_file(path, None, 64, "arith-heuristic")
        assert program.step


def test_unknown_primitive_points_at_it_with_a_hint():
    err = error_of("program:\n  step: denoise | resampel(4)\n")
    assert "unknown primitive 'resampel'" in err.message
    assert (err.span.line, err.span.column) == (2, 19)
    assert err.hint == "did you mean 'resample'?"


def test_unknown_argument_hint():
    err = error_of(
        "program:\n  init: expand(4)\n"
        "  step: denoise | score(confidence) | resample(4, metod=ssp)\n"
    )
    assert "no argument 'metod'" in err.message and err.hint == "did you mean 'method'?"
    assert err.span.line == 3


def test_wrong_type_and_range():
    err = error_of("program:\n  init: expand(two)\n  step: denoise\n")
    assert "must be an integer" in err.message and err.span.line == 2
    err = error_of("program:\n  init: expand(0)\n  step: denoise\n")
    assert ">= 1" in err.message
    err = error_of("program:\n  step: denoise | score(confidence) | resample(2, method=sps)\n")
    assert err.hint == "did you mean 'ssp'?"


def test_unresolved_param_reference():
    err = error_of(
        "params: {particles: 4}\nprogram:\n  init: expand(${particle})\n  step: denoise\n"
    )
    assert err.span.line == 3 and "particle" in err.message
    assert "particles" in (err.hint or "")


def test_resample_before_any_score_is_out_of_order():
    err = error_of("program:\n  init: expand(4)\n  step: denoise | resample(4)\n")
    assert "resample needs" in err.message and "score(v)" in err.hint
    assert (err.span.line, err.span.column) == (3, 19)


def test_mh_accept_needs_proposal_groups():
    err = error_of("program:\n  step: denoise | mh-accept(target=power(2.0))\n")
    assert "needs groups" in err.message and "expand" in err.hint


def test_target_must_be_power_or_tilted():
    err = error_of("program:\n  init: expand(2)\n  step: denoise\n  final: mh-accept(target=4)\n")
    assert "power(alpha)" in err.message


def test_runaway_population_is_rejected():
    err = error_of("program:\n  step: expand(4) | denoise\n")
    assert "grows the population" in err.message


def test_a_conditional_stage_may_change_the_count_on_its_path():
    """Once an error; now the compiler follows both paths (tests/test_branches.py)."""
    program = compile_text(
        "program:\n  init: expand(4)\n"
        '  step: denoise | weight(logprob) | resample(2, when="ess < 0.5")\n'
    )
    resample = program.step[-1]
    assert (resample.n_in, resample.n_out) == (4, 2)


def test_unknown_condition_name():
    with pytest.raises(S3DSLError) as info:
        compile_text(
            "program:\n  init: expand(4)\n  step: denoise | weight(logprob) | "
            'resample(4, when="esss < 0.5")\n'
        )
    assert "ess" in (info.value.hint or "")


def test_block_length_must_divide_gen_length():
    err = error_of("decode:\n  block_length: 5\nprogram:\n  step: denoise\n")
    assert "not a multiple" in err.message and err.span.line == 2


def test_step_pipeline_needs_denoise():
    err = error_of("program:\n  init: expand(2)\n")
    assert "never runs denoise" in err.message


def test_denoise_only_in_step():
    err = error_of("program:\n  init: denoise\n  step: denoise\n")
    assert "cannot run in init" in err.message


def test_unknown_verifier_hint():
    err = error_of("program:\n  step: denoise | score(arith-heuristc)\n")
    assert err.hint == "did you mean 'arith-heuristic'?"


def test_set_overrides_params_and_decode():
    program = compile_text(S3_LIKE, particles="8", temperature="0.5")
    assert program.params["particles"] == 8 and program.decode.temperature == 0.5
    assert program.init[0].args["k"] == 8
    err = error_of(S3_LIKE, particels="8")
    assert err.hint == "did you mean 'particles'?"
    err = error_of(S3_LIKE, particles="many")
    assert "expected int" in err.message


def test_shapes_are_inferred():
    program = compile_text(S3_LIKE)
    expand, denoise, score, resample = program.step
    assert (expand.n_in, expand.n_out) == (4, 8)
    assert (resample.n_in, resample.n_out) == (8, 4)


def test_cost_of_s3_halves_with_forward_reuse():
    program = compile_text(S3_LIKE)
    steps = program.decode.steps
    # 8 rows denoise and 8 score at every step, but the last score finds nothing masked
    assert predict(program, reuse=False, share_parent=False).forwards == 2 * 8 * steps - 8
    sampled = compile_text(S3_LIKE, temperature="1.0")
    # the first denoise pays once per problem (its 8 rows are one state, deduplicated), then
    # every score's forward feeds the next denoise
    assert plan(sampled, 2).cost.forwards == 1 + 8 * (steps - 1)
    assert plan(sampled, 2, ("dedup",)).cost.forwards == 8 + 8 * (steps - 1)
    assert plan(program, 2).cost.forwards == steps  # temperature 0: one state per problem


def test_disable_pass_and_unknown_pass():
    program = compile_text(S3_LIKE)
    no_sharing = plan(program, 2, ("forward-reuse", "dedup"))
    assert no_sharing.cost.forwards == plan(program, 1).cost.forwards
    with pytest.raises(S3DSLError) as info:
        plan(program, 2, ("forward-resue",))
    assert info.value.hint == "did you mean 'forward-reuse'?"


def test_default_plan_is_level_2_and_level_3_adds_only_static_steps():
    program = compile_text(S3_LIKE)
    default, top = plan(program), plan(program, 3)
    assert default.opt_level == 2 and "static-steps" not in default.enabled
    assert top.enabled - default.enabled == {"static-steps", "overlap"}
    assert not top.flags.static_steps  # S3 scores and resamples inside its steps


def test_every_and_at_schedules():
    program = compile_text(
        "program:\n  init: expand(2)\n  step:\n    - expand(3, at=block_start)\n"
        "    - denoise\n    - mh-accept(target=power(3.0), at=block_end)\n",
        block_length="4",
        steps="8",
    )
    mh = program.step[2]
    assert mh.group == 3 and (mh.n_in, mh.n_out) == (6, 2)


def test_explain_prints_the_lowered_plan_before_and_after_every_pass_with_schedules():
    from s3dsl.compiler.explain import explain_lines

    program = compile_file(builtin_strategies()["imh"], None, 16, "arith-heuristic")
    text = "\n".join(explain_lines(plan(program, 2)))
    assert "lowered plan before any pass" in text and "lowered plan after the passes" in text
    assert "expand(k=4) [at=block_start]" in text and "[at=block_end]" in text
    for p in ("batch", "share-parent-forward", "forward-reuse", "dedup", "prompt-cache"):
        assert f"pass {p} (on)" in text
    assert "+ gather index='every row x4' cache=keep" in text  # share-parent as a rewrite
    assert "drop-cache" in text.split("lowered plan after")[0]
    assert "drop-cache" not in text.split("lowered plan after")[1]  # forward-reuse removed them


def test_passes_rewrite_the_plan_the_executor_reads():
    program = compile_text(S3_LIKE)
    top = plan(program, 2, ("dedup",))
    forwards = top.lowered.nodes("forward")
    assert forwards and all(n.get("dedup") == "no" and n.get("cache") == "reuse" for n in forwards)
    assert all(n.get("cache") == "keep" for n in top.lowered.nodes("gather"))
    assert not top.lowered.has("drop-cache") and plan(program, 1).lowered.has("drop-cache")
    static = plan(compile_text("program:\n  step: denoise\n"), 3).lowered
    assert static.has("static-step") and not any(s.has("forward") for s in static.step)
