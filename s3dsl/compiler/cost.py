"""Predicted cost of a lowered plan: forward passes per problem and peak memory, read off the plan.

The count walks the same schedule the engine runs and interprets the plan's nodes: a `forward`
pays for the rows that need one (rows with masks, known statically from the LLaDA schedule),
nothing where its `cache=reuse` finds the state cached, and one row per distinct state when it
dedups. States are provably identical (one per problem) while every commit is deterministic
(temperature 0, a rule other than random, no random remask). The count is exact unless `exact`
is False: threshold commits can finish blocks early, remasks reopen a data-dependent count, and
dedup merges particles that coincide by chance, and a `stop` that fires saves the forwards after
it; then it is an upper bound.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from s3dsl.compiler import primitives as prims
from s3dsl.compiler.ir import Program
from s3dsl.compiler.kv_rewrite import forward_positions, window_end
from s3dsl.compiler.lowered import Stage, StepPlan
from s3dsl.compiler.schedule import StepContext, edge_context, step_contexts


@dataclass
class Cost:
    forwards: int  # per problem
    by_stage: dict[str, int] = field(default_factory=dict)
    peak_particles: int = 1
    exact: bool = True  # False: an upper bound (see the module docstring)
    positions: int = 0  # answer positions the forwards compute, per problem (block KV caches)

    @property
    def positions_per_forward(self) -> float:
        """Answer positions one row's forward computes, on average (gen_length without a block
        KV cache; the prompt, when not cached, comes on top)."""
        return self.positions / self.forwards if self.forwards else 0.0

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


@dataclass
class _Walk:
    """What the count knows about one problem's population between nodes."""

    n: int = 1
    distinct: int = 1  # an upper bound on distinct states
    cached: bool = False  # every row's current state has a forward in the cache
    filled_end: int = 0  # every generated position before this one is committed
    kv_block: int = -1  # the block the block KV cache was last refreshed for


def _deterministic(program: Program) -> bool:
    for op in program.step:
        if op.name == "denoise":
            temperature = op.args.get("temperature")
            temperature = program.decode.temperature if temperature is None else temperature
            if temperature > 0 or (op.args.get("rule") or program.decode.commit) == "random":
                return False
        if op.name == "remask" and op.args.get("by") == "random":
            return False
    return True


def count(lowered: StepPlan, program: Program) -> Cost:
    """Forward passes per problem of `lowered`, stage by stage."""
    gen = program.decode.gen_length
    deterministic = _deterministic(program)
    walk, cost = _Walk(), Cost(0)
    # A `stop` that fires finishes its problem, so every later forward of it is saved.
    if any(op.name in ("remask", "stop") for op in program.step) or "threshold" in {
        op.args.get("rule") or program.decode.commit for op in program.step if op.name == "denoise"
    }:
        cost.exact = False

    def visit(stage: Stage, ctx: StepContext) -> None:
        op = stage.op
        for node in stage.nodes:
            kind = node.kind
            if kind == "forward" and node.get("rows") == prims.STOPPED_ROWS:
                # `stop` may finish every particle here; what it saves later is not subtracted
                paid = walk.n if walk.filled_end < gen else 0
                cost.forwards += paid
                cost.positions += paid * gen
                key = f"{op.name}@{op.span.line}" if op.span else op.name
                cost.by_stage[key] = cost.by_stage.get(key, 0) + paid
                continue
            if kind == "commit" and op.name == "stop":
                continue
            if kind in ("forward", "static-step"):
                rows = node.get("rows", "")
                needed = walk.filled_end < (ctx.block_end if rows != "with masks" else gen)
                if kind == "static-step":
                    needed = True
                if needed:
                    dedup = node.get("dedup") == "yes"
                    if dedup and not deterministic:
                        cost.exact = False
                    free = node.get("cache") == "reuse" and walk.cached
                    paid = 0 if free else (walk.distinct if dedup else walk.n)
                    cost.forwards += paid
                    if paid:
                        w1 = window_end(node, ctx.block_end, ctx.next_block_end, gen)
                        width, walk.kv_block = forward_positions(node, w1, walk.kv_block,
                                                                 program.decode)
                        cost.positions += paid * width
                    key = f"{op.name}@{op.span.line}" if op.span else op.name
                    cost.by_stage[key] = cost.by_stage.get(key, 0) + paid
                    walk.cached = True
            if kind in ("commit", "static-step"):
                walk.cached = False
                if not deterministic:
                    walk.distinct = walk.n
                if ctx.steps_left == 1:
                    walk.filled_end = max(walk.filled_end, ctx.block_end)
            elif kind == "update" and node.get("field") == "tokens":
                walk.cached, walk.filled_end = False, 0
                if node.get("by") == "random":
                    walk.distinct = walk.n
            elif kind == "gather" and node.get("cache") != "keep":
                walk.cached = False
            elif kind == "drop-cache":
                walk.cached = False
        prim = prims.lookup(op.name)
        assert prim is not None
        walk.n = prim.count(walk.n, op.args, op.group)
        walk.distinct = min(walk.distinct, walk.n)
        cost.peak_particles = max(cost.peak_particles, walk.n)

    for stage in lowered.init:
        visit(stage, edge_context(program.decode, False))
    for ctx in step_contexts(program.decode):
        for stage in lowered.step:
            if stage.op.schedule.fires(ctx.step, ctx.step_in_block, ctx.steps_per_block, ctx.steps):
                visit(stage, ctx)
    end = edge_context(program.decode, True)
    if walk.filled_end < gen:
        last = StepContext(end.step, end.block, 0, 1, end.steps, gen, gen)
        visit(lowered.finish, last)
    for stage in lowered.final:
        visit(stage, end)
    return cost


def predict(program: Program, reuse: bool, share_parent: bool) -> Cost:
    """The batched plan's forwards with only the named sharing on (no dedup): the count that
    `--explain` compares plans against."""
    from s3dsl.compiler import rewrites
    from s3dsl.compiler.lowered import lower

    lowered = rewrites.set_forward(calls="batched")(lower(program), program)
    if share_parent:
        lowered = rewrites.keep_parent_forward(lowered, program)
    if reuse:
        lowered = rewrites.forward_reuse(lowered, program)
    return count(lowered, program)
