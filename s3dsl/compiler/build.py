"""AST -> IR: resolve params and decode settings, bind and type-check every stage, check stage
order and infer particle counts on every path (`decode`, `stages`, `branches` do the work).

Every error points at the span of what the user wrote and, where it can, says what was meant.
"""

from __future__ import annotations

import hashlib

from s3dsl.compiler import values as checks
from s3dsl.compiler.branches import MAX_PARTICLES, infer_shapes
from s3dsl.compiler.decode import DECODE_DEFAULTS, resolve_decode, resolve_params
from s3dsl.compiler.ir import DecodeConfig, Op, Program
from s3dsl.compiler.stages import TASK_VERIFIER, OpBuilder, signature, verifier_spec
from s3dsl.dsl import ast
from s3dsl.errors import S3DSLError

__all__ = ["DECODE_DEFAULTS", "MAX_PARTICLES", "TASK_VERIFIER", "build", "infer_shapes",
           "signature"]

def build(
    strategy: ast.Strategy,
    overrides: dict[str, str] | None = None,
    gen_length: int = 32,
    task_verifier: str = "confidence",
) -> Program:
    """Check a parsed strategy and lower it to the IR.

    overrides: `--set key=value` texts (params, or decode settings). gen_length and task_verifier
    come from the task: decode expressions may use `${gen_length}`, and a verifier named
    `task-default` is the task's default verifier.
    """
    checks.strategy_size(strategy)
    params = resolve_params(strategy, dict(overrides or {}))
    env = dict(params)
    decode = resolve_decode(strategy, params, overrides or {}, gen_length)
    checks.plan_size(decode.steps, len(strategy.step.stages), strategy.step.span)
    verifiers = {v.name: verifier_spec(v, env, task_verifier) for v in strategy.verifiers}
    builder = OpBuilder(env, verifiers, task_verifier)
    init = [builder.op(c, "init") for c in strategy.init.stages]
    step = [builder.op(c, "step") for c in strategy.step.stages]
    final = [builder.op(c, "final") for c in strategy.final.stages]
    if not any(op.name == "denoise" for op in step):
        raise S3DSLError(
            "the step pipeline never runs denoise, so nothing is ever decoded",
            strategy.step.span,
            "add `denoise` to `program.step`",
        )
    schedules = _particle_schedules(init, step, final, decode, env)
    digest = hashlib.sha256(strategy.source.encode()).hexdigest()[:16]
    program = Program(
        strategy.name,
        strategy.description,
        params,
        decode,
        builder.verifiers,
        init,
        step,
        final,
        digest,
        strategy.span.file,
        schedules=schedules,
    )
    infer_shapes(program)
    return program


def _particle_schedules(init: list[Op], step: list[Op], final: list[Op], decode: DecodeConfig,
                        env: dict) -> tuple[DecodeConfig, ...]:
    """`expand(k, schedules=[...])`: checked, numbered (compiler/particle_schedules.py)."""
    from s3dsl.compiler import particle_schedules

    table: list[DecodeConfig] = []
    for op in (*init, *step, *final):
        raw = op.args.get("schedules")
        if raw is None:
            continue
        if op.phase != "init":
            raise S3DSLError("schedules= only applies in init: a particle keeps its schedule "
                             "for the whole decode", op.span, "move this expand to program.init")
        ids = particle_schedules.resolve(raw.value, raw.span, decode, env, table)
        if op.args["k"] < len(ids):
            raise S3DSLError(f"expand({op.args['k']}) gives {op.args['k']} children but "
                             f"{len(ids)} schedules: some would never run", op.span,
                             f"use expand({len(ids)}, schedules=...) or a multiple of it")
        op.args["schedules"] = ids
    return tuple(table)
