"""Predicted cost of a program under a plan: forward passes per problem and peak memory.

Forward passes are counted by walking the same schedule the engine runs, with the forward cache's
rules: a stage that needs a forward pays one per particle whose state has none cached. Counts are
upper bounds where decoding is data-dependent (threshold commits finish blocks early; dedup
merges identical states) — the runtime counts the real number.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from s3dsl.compiler import primitives as prims
from s3dsl.compiler.ir import Program


@dataclass
class Cost:
    forwards: int  # per problem
    by_stage: dict[str, int] = field(default_factory=dict)
    peak_particles: int = 1

    def memory_bytes(
        self,
        *,
        params: int,
        param_bytes: int,
        vocab: int,
        length: int,
        hidden: int,
        chunk_rows: int,
        window: int,
    ) -> int:
        """A rough peak: weights, one chunk's logits (float32, x3 for log-softmax and noise),
        one chunk's activations, and the cached windows of log-probs for every particle."""
        logits = chunk_rows * length * vocab * 4 * 3
        activations = chunk_rows * length * hidden * 4 * 24
        cache = self.peak_particles * window * vocab * 4
        state = self.peak_particles * length * 8 * 4
        return params * param_bytes + logits + activations + cache + state


def predict(program: Program, reuse: bool, share_parent: bool) -> Cost:
    from s3dsl.runtime.engine import edge_context, step_contexts

    n, cached = 1, False
    cost = Cost(0)

    def visit(op, ctx) -> None:
        nonlocal n, cached
        prim = prims.lookup(op.name)
        assert prim is not None
        if op.needs_forward:
            paid = 0 if (reuse and cached) else n
            cost.forwards += paid
            key = f"{op.name}@{op.span.line}" if op.span else op.name
            cost.by_stage[key] = cost.by_stage.get(key, 0) + paid
            cached = reuse and not prim.changes_tokens
        elif prim.changes_tokens:
            cached = False
        if op.name == "expand" and not share_parent:
            cached = False
        n = prim.count(n, op.args, op.group)
        cost.peak_particles = max(cost.peak_particles, n)

    for op in program.init:
        visit(op, edge_context(program.decode, False))
    for ctx in step_contexts(program.decode):
        for op in program.step:
            if op.schedule.fires(ctx.step, ctx.step_in_block, ctx.steps_per_block, ctx.steps):
                visit(op, ctx)
    for op in program.final:
        visit(op, edge_context(program.decode, True))
    return cost
