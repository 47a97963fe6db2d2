"""The one value-validation layer: every value a strategy file or `--set` gives is checked here,
where it enters the compiler (type, range, finiteness, size), so that nothing that compiles can
fail at run time for a reason the file could have told. Errors name the value, where it was
written and the limit it broke.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

from s3dsl.compiler import primitives as prims
from s3dsl.dsl import ast
from s3dsl.dsl.limits import (
    MAX_GEN_LENGTH,
    MAX_INT,
    MAX_MAGNITUDE,
    MAX_NUMBER_CHARS,
    MAX_STAGE_RUNS,
    MAX_STAGES,
    MAX_STEPS,
    check_int_range,
)
from s3dsl.dsl.printer import describe_value
from s3dsl.errors import S3DSLError
from s3dsl.spans import Span


def shown(value: Any) -> str:
    """A value as the user would write it (never an internal repr such as `Call(name=...)`)."""
    return describe_value(value)


def number(
    value: Any,
    what: str,
    span: Span | None,
    *,
    integer: bool = False,
    low: float | None = None,
    high: float | None = None,
    above: float | None = None,
) -> int | float:
    """A finite number (an integer when `integer`; 2.0 counts as 2) within [low, high] and over
    `above`. A real number's magnitude is at most MAX_MAGNITUDE: scales, weights and temperatures
    beyond it overflow log-weights to inf and nan at run time."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        kind = "an integer" if integer else "a number"
        raise S3DSLError(f"{what} must be {kind}, got {shown(value)}", span)
    if isinstance(value, float) and not math.isfinite(value):
        raise S3DSLError(f"{what} must be a finite number, got {value}", span)
    if integer and isinstance(value, float):
        if not value.is_integer():
            raise S3DSLError(f"{what} must be an integer, got {shown(value)}", span)
        if abs(value) > MAX_INT:
            raise S3DSLError(f"{what} is too large ({value:g}; the limit is 2**63-1)", span)
        value = int(value)
    if not integer and abs(value) > MAX_MAGNITUDE:
        raise S3DSLError(f"{what} must be between -{MAX_MAGNITUDE:g} and {MAX_MAGNITUDE:g}, got "
                         f"{_num(value)}", span, "larger numbers overflow the run's arithmetic")
    if above is not None and value <= above:
        raise S3DSLError(f"{what} must be > {above:g}, got {_num(value)}", span)
    if low is not None and value < low:
        raise S3DSLError(f"{what} must be >= {low:g}, got {_num(value)}", span)
    if high is not None and value > high:
        raise S3DSLError(f"{what} must be <= {high:g}, got {_num(value)}", span)
    return value


def _num(value: int | float) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:g}"


def override_number(text: str, kind: type, key: str, default: Any) -> int | float:
    """A `--set key=value` number: parsed, finite and within 64 bits."""
    hint = f"the default is {default!r}"
    if len(text) > MAX_NUMBER_CHARS:
        raise S3DSLError(f"--set {key}: the value is too long ({len(text):,} characters)", None,
                         hint)
    try:
        value = kind(text)
    except ValueError:
        raise S3DSLError(f"--set {key}={text}: expected {kind.__name__}", None, hint) from None
    if isinstance(value, int):
        return check_int_range(value, text, None)
    if not math.isfinite(value):
        raise S3DSLError(f"--set {key}={text}: expected a finite number", None, hint)
    return value


# -- primitive arguments ------------------------------------------------------------------------


POSITIVE = {("denoise", "threshold")}  # log(threshold) at run time: 0 is not a threshold


def check_arg(prim: prims.Primitive, p: prims.Param, value: Any, span: Span) -> Any:
    """One argument of a stage against its parameter's kind, choices and range."""
    where = f"{prim.name}({p.name}=...)"
    if p.kind in ("int", "float"):
        above = 0.0 if (prim.name, p.name) in POSITIVE else None
        return number(value, where, span, integer=p.kind == "int", low=p.low, high=p.high,
                      above=above)
    if p.kind == "bool":
        if not isinstance(value, bool):
            raise S3DSLError(f"{where} must be true or false, got {shown(value)}", span)
    elif p.kind == "choice":
        if not isinstance(value, str) or value not in p.choices:
            from s3dsl.errors import did_you_mean

            hint = did_you_mean(value, p.choices) if isinstance(value, str) else (
                "expected one of: " + ", ".join(p.choices))
            raise S3DSLError(f"{where}: unknown value {shown(value)}", span, hint)
    elif p.kind == "str" and not isinstance(value, str):
        raise S3DSLError(f"{where} must be a string, got {shown(value)}", span)
    return value


def verifier_ref(prim: prims.Primitive, p: prims.Param, value: Any, span: Span) -> str:
    """A verifier argument is a name; a call such as `oracle(extract=1)` belongs in `verifiers:`."""
    if isinstance(value, str):
        return value
    raise S3DSLError(
        f"{prim.name}({p.name}=...) must be a verifier name, got {shown(value)}",
        span,
        "declare it under verifiers: (e.g. v: oracle) and write score(v)",
    )


# -- verifiers ----------------------------------------------------------------------------------


def weight(value: Any, builtin: str, span: Span) -> float:
    return float(number(value, f"the weight of verifier '{builtin}'", span))


def verifier_options(
    builtin: str, options: tuple[tuple[str, Any], ...], span: Span
) -> tuple[tuple[str, Any], ...]:
    """Options must match the type of the verifier's default; options whose default is not a
    plain number, string or boolean (functions, such as oracle's `extract`) cannot be written."""
    import inspect

    from s3dsl.verifiers.registry import VERIFIERS, normalize

    entry = VERIFIERS.get(normalize(builtin))
    if entry is None:
        return options  # the registry reports unknown names with its own hint
    params = inspect.signature(entry[0]).parameters
    out = []
    for key, value in options:
        param = params.get(key.replace("-", "_"))
        if param is None:
            out.append((key, value))  # the registry reports unknown options
            continue
        default = param.default
        what = f"option '{key}' of verifier '{builtin}'"
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise S3DSLError(f"{what} must be true or false, got {shown(value)}", span)
        elif isinstance(default, (int, float)):
            value = float(number(value, what, span))
        elif isinstance(default, str):
            if not isinstance(value, str):
                raise S3DSLError(f"{what} must be a string, got {shown(value)}", span)
        else:
            raise S3DSLError(f"{what} cannot be set in a strategy file", span,
                             f"leave it out: verifier '{builtin}' uses its own default")
        out.append((key, value))
    return tuple(out)


# -- decode settings ----------------------------------------------------------------------------


def decode_settings(
    values: dict[str, Any],
    spans: dict[str, Span],
    where: Span,
    task_gen_length: int,
    from_flags: Collection[str] = (),
) -> tuple[int, int, int, float, float]:
    """(steps, gen_length, block_length, temperature, threshold), checked: a given 0 is
    an error, never "the default"; lengths and steps are capped so a plan stays small.
    Keys in `from_flags` came from `--set` and have no place in the file."""

    def at(key: str) -> Span | None:
        return None if key in from_flags else spans.get(key, where)

    def length(key: str, default: int, cap: int) -> int:
        value = values[key]
        if value is None:
            return default
        what = f"--set {key}" if key in from_flags else f"decode.{key}"
        return int(number(value, what, at(key), integer=True, low=1, high=cap))

    gen = length("gen_length", task_gen_length, MAX_GEN_LENGTH)
    block = length("block_length", gen, MAX_GEN_LENGTH)
    steps = length("steps", gen, MAX_STEPS)
    block_where = at("block_length") or at("gen_length") or where
    if gen % block:
        raise S3DSLError(
            f"gen_length {gen} is not a multiple of block_length {block}",
            block_where,
            f"use a block_length that divides {gen}",
        )
    if steps % (gen // block):
        raise S3DSLError(
            f"steps {steps} cannot be split evenly over {gen // block} blocks",
            at("steps") if "steps" in spans or "steps" in from_flags else block_where,
            f"use a multiple of {gen // block}",
        )
    temperature = float(number(values["temperature"], "decode.temperature", at("temperature"),
                               low=0.0))
    threshold = float(number(values["threshold"], "decode.threshold", at("threshold"),
                             above=0.0, high=1.0))
    return steps, gen, block, temperature, threshold


# -- plan size ----------------------------------------------------------------------------------


def strategy_size(strategy: ast.Strategy) -> None:
    """At most MAX_STAGES stages per pipeline."""
    for phase in ("init", "step", "final"):
        pipeline: ast.Pipeline = getattr(strategy, phase)
        if len(pipeline.stages) > MAX_STAGES:
            raise S3DSLError(
                f"the {phase} pipeline has {len(pipeline.stages):,} stages; the limit is "
                f"{MAX_STAGES}",
                pipeline.stages[MAX_STAGES].span,
                "a strategy needs a few stages; repeat work with decode.steps",
            )


def plan_size(steps: int, step_stages: int, span: Span) -> None:
    """The compiler walks every stage at every step: steps x stages is capped."""
    runs = steps * step_stages
    if runs > MAX_STAGE_RUNS:
        raise S3DSLError(
            f"the plan runs {steps:,} steps x {step_stages} step stages = {runs:,} stages; "
            f"the limit is {MAX_STAGE_RUNS:,}",
            span,
            "use fewer steps or fewer stages in program.step",
        )
