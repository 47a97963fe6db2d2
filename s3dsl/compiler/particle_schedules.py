"""Per-particle schedules: `expand(k, schedules=[...])` gives each child its own decode schedule.

A schedule overrides the program's decode settings for one particle: `block_length`, `steps`,
`commit`, `temperature`, `threshold` (the other decode settings are shared). Child j of an expand
gets schedule j mod m; it keeps it for the whole decode (so `schedules=` is an init argument).
What a schedule changes is the particle's denoise transition: its block boundaries, its commit
budget and rule. The step counter is shared: at global step t a particle of schedule d is at
step t of d (a schedule with fewer steps than `decode.steps` is done after its last step and
runs no more forwards). Stage schedules (`at=block_end`, `every=`) follow `decode`.

Schedule 0 is the program's decode; schedules 1.. are the program's `schedules` table. An
element is `schedule(block_length=..., steps=..., commit=..., temperature=..., threshold=...)`
or a bare block length (`[4, 8]` = `[schedule(block_length=4), schedule(block_length=8)]`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from s3dsl.compiler import values as checks
from s3dsl.compiler.ir import DecodeConfig
from s3dsl.compiler.schedule import StepContext
from s3dsl.dsl import ast
from s3dsl.errors import S3DSLError, did_you_mean
from s3dsl.spans import Span

KEYS = ("block_length", "steps", "commit", "temperature", "threshold")


@dataclass(frozen=True)
class Unresolved:
    """A `schedules=` value as written, until the decode settings are known."""

    value: Any
    span: Span


class ScheduleList(tuple):
    """The schedule ids (into `Program.schedules`, 1-based) an expand hands to its children,
    with their settings for `--explain`."""

    shown: str = ""

    def __str__(self) -> str:
        return self.shown


def describe(decode: DecodeConfig, base: DecodeConfig | None = None) -> str:
    """`schedule(...)` with every setting, or (given `base`) those that differ from it."""
    shown = [f"{key}={getattr(decode, key)}" for key in KEYS
             if base is None or key == "block_length" or getattr(decode, key) != getattr(base, key)]
    return f"schedule({', '.join(shown)})"


def explain_lines(schedules: tuple[DecodeConfig, ...]) -> list[str]:
    """`--explain`'s table of per-particle schedules (schedule 0 is decode)."""
    out = []
    for i, d in enumerate(schedules, 1):
        out.append(f"  schedule {i}: block_length={d.block_length} ({d.num_blocks} blocks x "
                   f"{d.steps_per_block} steps), steps={d.steps}, commit={d.commit}, "
                   f"temperature={d.temperature:g}, threshold={d.threshold:g}")
    return ["per-particle schedules (expand(schedules=...); stage schedules such as "
            "at=block_end follow decode):", *out] if out else []


def resolve(raw: Any, span: Span, decode: DecodeConfig, env: dict,
            table: list[DecodeConfig]) -> ScheduleList:
    """Check one `schedules=` value against the decode (each schedule valid for gen_length) and
    add its schedules to `table`; returns their ids."""
    from s3dsl.compiler.decode import COMMIT_ALIASES
    from s3dsl.compiler.primitives import COMMIT_RULES
    from s3dsl.dsl.expr import evaluate

    env = {**env, "gen_length": decode.gen_length}
    if isinstance(raw, ast.Expr):
        raw = evaluate(raw.text, env, span)
    if not isinstance(raw, list) or not raw:
        raise S3DSLError("schedules= must be a non-empty list of schedules", span,
                         "e.g. schedules=[schedule(block_length=4), schedule(block_length=8)]")
    ids = []
    for item in raw:
        where, given = span, {}
        if isinstance(item, ast.Expr):
            item = evaluate(item.text, env, span)
        if isinstance(item, ast.Call):
            where = item.span or span
            if item.name != "schedule":
                raise S3DSLError(f"'{item.name}' is not a schedule", where,
                                 "write schedule(block_length=..., steps=..., commit=...)")
            if item.args:
                raise S3DSLError("schedule takes keyword arguments only", item.args[0].span,
                                 f"keys: {', '.join(KEYS)}")
            for key, value in item.kwargs:
                if key not in KEYS:
                    raise S3DSLError(f"schedule has no setting '{key}'", value.span,
                                     did_you_mean(key, KEYS) or f"keys: {', '.join(KEYS)}")
                raw_value = value.value
                if isinstance(raw_value, ast.Expr):
                    raw_value = evaluate(raw_value.text, env, value.span)
                given[key] = (raw_value, value.span)
        elif isinstance(item, int) and not isinstance(item, bool):
            given["block_length"] = (item, span)
        else:
            raise S3DSLError(f"a schedule must be schedule(...) or a block length, got "
                             f"{checks.shown(item)}", span, "e.g. schedule(block_length=4)")
        ids.append(_add(_checked(given, where, decode, COMMIT_RULES, COMMIT_ALIASES), table))
    out = ScheduleList(ids)
    out.shown = "[" + ", ".join(describe(table[i - 1], decode) for i in ids) + "]"
    return out


def _checked(given: dict, where: Span, decode: DecodeConfig, rules, aliases) -> DecodeConfig:
    values: dict[str, Any] = {
        "gen_length": decode.gen_length, "block_length": decode.block_length,
        "steps": decode.steps, "temperature": decode.temperature, "threshold": decode.threshold,
    }
    spans = {key: s for key, (_, s) in given.items()}
    values.update({key: v for key, (v, _) in given.items() if key != "commit"})
    steps, _, block, temperature, threshold = checks.decode_settings(
        values, spans, where, decode.gen_length)
    if steps > decode.steps:
        raise S3DSLError(f"schedule steps {steps} exceed decode.steps {decode.steps}",
                         spans.get("steps", where),
                         "particles share the step counter: raise decode.steps")
    commit = decode.commit
    if "commit" in given:
        raw, at = given["commit"]
        commit = aliases.get(raw, raw) if isinstance(raw, str) else raw
        if not isinstance(commit, str) or commit not in rules:
            raise S3DSLError(f"unknown commit rule {checks.shown(raw)}", at,
                             did_you_mean(str(raw), (*rules, *aliases)))
    if decode.schedule != "even" or commit == "origin":
        raise S3DSLError("per-particle schedules need decode.schedule: even", where)
    return replace(decode, steps=steps, block_length=block, temperature=temperature,
                   threshold=threshold, commit=commit)


def _add(decode: DecodeConfig, table: list[DecodeConfig]) -> int:
    if decode in table:
        return table.index(decode) + 1
    table.append(decode)
    return len(table)


def particle_context(decode: DecodeConfig, ctx: StepContext) -> StepContext | None:
    """Where a particle of schedule `decode` stands at the program's step `ctx` (None: its
    schedule is done, or this is init/final)."""
    if ctx.step < 0 or ctx.step >= decode.steps:
        return None
    spb = decode.steps_per_block
    block, inner = divmod(ctx.step, spb)
    nxt = min(ctx.step + 1, decode.steps - 1) // spb
    return StepContext(ctx.step, block, inner, spb, decode.steps,
                       (block + 1) * decode.block_length, (nxt + 1) * decode.block_length)


def reach(schedules: tuple[DecodeConfig, ...], ctx: StepContext, base: DecodeConfig) -> int:
    """How far a forward's window must reach so that the next denoise of any particle finds its
    log-probs cached: the largest next block end over every schedule."""
    ends = [ctx.next_block_end]
    for decode in (base, *schedules):
        nxt = particle_context(decode, replace(ctx, step=ctx.step + 1))
        now = particle_context(decode, ctx)
        ends += [c.block_end for c in (nxt, now) if c is not None]
    return min(max(ends), base.gen_length)


def lint_block_points(program) -> list[tuple[str, Span | None, str]]:
    """(message, span, hint) for each stage scheduled at a block point of a program whose
    particles have their own block lengths: the point is decode's, not each particle's."""
    if not any(d.block_length != program.decode.block_length for d in program.schedules):
        return []
    return [(f"at={op.schedule.at} follows decode's blocks (block_length "
             f"{program.decode.block_length}), not the particles' own schedules", op.span,
             "use every= for a fixed rhythm, or give the particles one block length")
            for op in program.step if op.schedule.at in ("block_start", "block_end")]
