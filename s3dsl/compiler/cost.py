"""Predicted cost of a lowered plan: forward passes per problem and peak memory, read off the plan.

The count walks the same schedule the engine runs and interprets the plan's nodes: a `forward`
pays for the rows that need one (rows with masks, known statically from the LLaDA schedule),
nothing where its `cache=reuse` finds the state cached, and one row per distinct state when it
dedups. Which rows have masks is known from how many positions the commits so far have filled:
each commit fills the schedule's count (`committed_after`), so a second `denoise` in one step
finds fewer masks, and the masks may run out before a block's last step. States are provably
identical (one per problem) while every commit is deterministic (temperature 0, a rule other than
random, no random remask). The count is exact unless `exact` is False: threshold and origin
commits can finish blocks early, remasks reopen a data-dependent count, and dedup merges particles
that coincide by chance; then it is an upper bound.

`when=` stages open paths (s3dsl.compiler.branches): a `stop` that fires ends its problem's
forwards, an `expand` that fires grows its population, and each problem follows one path. The
count follows all of them and reports the costliest (exact only when every path pays the same).
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol, TypeVar

from s3dsl.compiler import branches
from s3dsl.compiler import primitives as prims
from s3dsl.compiler.ir import DecodeConfig, Program
from s3dsl.compiler.kv_rewrite import forward_positions, window_end
from s3dsl.compiler.lowered import Stage, StepPlan
from s3dsl.compiler.schedule import StepContext, edge_context


@dataclass
class Cost:
    forwards: int  # per problem
    by_stage: dict[str, int] = field(default_factory=dict)
    peak_particles: int = 1
    exact: bool = True  # False: an upper bound (see the module docstring)
    paths: int = 1  # the most schedule paths (ways `when=` conditions fall) followed at once
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
    """What the count knows about one problem's population between nodes, on one path of the
    schedule (s3dsl.compiler.branches), and what that path has paid so far."""

    n: int = 1
    distinct: int = 1  # an upper bound on distinct states
    cached: bool = False  # every row's current state has a forward in the cache
    window: int = 0  # ...whose log-probs reach this far (a wider request recomputes)
    committed: int = 0  # generated positions committed (a lower bound; all before block_end)
    kv_block: int = -1  # the block the block KV cache was last refreshed for
    forwards: int = 0
    positions: int = 0  # answer positions those forwards computed
    by_stage: dict[str, int] = field(default_factory=dict)

    def state(self) -> tuple[int, int, bool, int, int, int]:
        """What later stages' costs depend on (paths with equal states merge)."""
        return (self.n, self.distinct, self.cached, self.window, self.committed, self.kv_block)

    def pay(self, key: str, paid: int) -> None:
        self.forwards += paid
        self.by_stage[key] = self.by_stage.get(key, 0) + paid


def _step_nodes(program: Program):
    """The unoptimized nodes of the step pipeline: what the facts below are read off."""
    for op in program.step:
        prim = prims.lookup(op.name)
        assert prim is not None
        yield from prim.lower(op.args)


def _commit_rule(node, program: Program) -> tuple[float, str]:
    temperature, rule = node.get("temperature"), node.get("rule")
    temperature = program.decode.temperature if temperature is None else temperature
    return temperature, program.decode.commit if rule in (None, "decode") else rule


def _reopens(node) -> bool:
    return node.kind == "update" and node.get("field") == "tokens"  # a remask


def _deterministic(program: Program) -> bool:
    """No step draws noise that tells particles apart: commits at temperature 0 by a rule other
    than random, and no random re-masking."""
    for node in _step_nodes(program):
        if node.kind == "commit":
            temperature, rule = _commit_rule(node, program)
            if temperature > 0 or rule == "random":
                return False
        if _reopens(node) and node.get("by") == "random":
            return False
    return True


EARLY_RULES = ("threshold", "origin")  # commit a data-dependent count: a block may fill early


def committed_after(committed: int, ctx: StepContext, rule: str, decode: DecodeConfig) -> int:
    """Generated positions committed after one commit at `ctx`, from those committed before (all
    of them left of ctx.block_end, so the masks it may fill number block_end - committed). The
    runtime's budget (runtime/transition.py): LLaDA's even split commits ceil(m / steps_left) of
    the m masks; Dream's linear schedule floor(m * (1 - s/t)) < m before the block's last step
    (so masks remain until it); every rule commits all m at the last step. Exact for fixed-count
    rules; for EARLY_RULES (which commit at least this many, or by chance) a lower bound, which
    keeps the forward count an upper bound: c + ceil((B - c) / s) grows with c."""
    if committed >= ctx.block_end:
        return committed
    if ctx.steps_left <= 1:
        return ctx.block_end
    if decode.schedule == "linear" or rule == "origin":
        return committed
    masked = ctx.block_end - committed
    return committed + -(-masked // ctx.steps_left)


def _exact(program: Program) -> bool:
    """The count is exact unless a step may end early or reopen positions: threshold and origin
    commits, and remasks."""
    for node in _step_nodes(program):
        if _reopens(node):
            return False
        if node.kind == "commit" and _commit_rule(node, program)[1] in EARLY_RULES:
            return False
    return True


_COUNTS: OrderedDict[tuple, tuple[Program, Cost]] = OrderedDict()  # the last few counts
COUNTS_KEPT = 32


def count(lowered: StepPlan, program: Program) -> Cost:
    """Forward passes per problem of `lowered`, stage by stage: the most any path of the
    schedule pays (paths: the ways its `when=` conditions can fall, per problem).

    Remembered for the last few plans: planning with one pass left out (`compile --explain`
    does it per pass) meets the same plans again, and a long step's walk costs ~1 ms a stage.
    A stage's op is named by its uid: within one program that fixes its name, args, schedule."""
    key = (id(program), tuple((stage.op.uid, stage.nodes) for stage in lowered.stages()))
    known = _COUNTS.get(key)
    if known is not None and known[0] is program:  # (the program is held: its id stays its)
        _COUNTS.move_to_end(key)
        return copy.deepcopy(known[1])
    cost = _count(lowered, program)
    _COUNTS[key] = (program, copy.deepcopy(cost))
    if len(_COUNTS) > COUNTS_KEPT:
        _COUNTS.popitem(last=False)
    return cost


def _count(lowered: StepPlan, program: Program) -> Cost:
    if program.schedules:  # particles follow different schedules: counted per schedule class
        from s3dsl.compiler.schedule_cost import count_schedules

        return count_schedules(lowered, program)
    gen = program.decode.gen_length
    deterministic = _deterministic(program)
    cost = Cost(0, exact=_exact(program))

    def visit(stage: Stage, ctx: StepContext, walk: _Walk) -> _Walk:
        walk = copy.copy(walk)  # (a new path: `replace` would re-run the dataclass's __init__)
        walk.by_stage = dict(walk.by_stage)
        op = stage.op
        key = f"{op.name}@{op.span.line}" if op.span else op.name
        for node in stage.nodes:
            kind = node.kind
            if kind == "forward" and node.get("rows") == prims.STOPPED_ROWS:
                # `stop` finishes every particle here: nothing is masked after it on this path
                paid = walk.n if walk.committed < gen else 0
                walk.pay(key, paid)
                walk.positions += paid * gen
                continue
            if kind == "commit" and node.get("rows") == prims.STOPPED_ROWS:
                walk.cached, walk.committed = False, gen
                continue
            if kind in ("forward", "static-step"):
                rows = node.get("rows", "")
                needed = walk.committed < (ctx.block_end if rows != "with masks" else gen)
                if kind == "static-step":
                    needed = True
                if needed:
                    dedup = node.get("dedup") == "yes"
                    if dedup and not deterministic:
                        cost.exact = False
                    # the window the executor asks for: score's reaches the next step's block
                    reach = ctx.next_block_end if rows == "with masks" else ctx.block_end
                    free = node.get("cache") == "reuse" and walk.cached and walk.window >= reach
                    paid = 0 if free else (walk.distinct if dedup else walk.n)
                    walk.pay(key, paid)
                    if paid:
                        w1 = window_end(node, ctx.block_end, ctx.next_block_end, gen)
                        width, walk.kv_block = forward_positions(node, w1, walk.kv_block,
                                                                 program.decode)
                        walk.positions += paid * width
                    if not free:
                        walk.window = reach
                    walk.cached = True
            if kind == "commit" and walk.committed >= ctx.block_end:
                continue  # nothing masked in the block: the commit changes no row, the cache holds
            if kind in ("commit", "static-step"):
                walk.cached = False
                if not deterministic:
                    walk.distinct = walk.n
                walk.committed = committed_after(walk.committed, ctx,
                                                 _commit_rule(node, program)[1], program.decode)
            elif _reopens(node):
                walk.cached, walk.committed = False, 0
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
        return walk

    return follow_paths(lowered, program, _Walk(), visit, lambda w: w.committed < gen,
                        lambda w: w.n, cost)


W = TypeVar("W", bound="_Paid")


class _Paid(Protocol):
    """A path of a count: its state (what later costs depend on) and what it paid so far."""

    forwards: int
    positions: int
    by_stage: dict[str, int]

    def state(self) -> tuple: ...


def follow_paths(lowered: StepPlan, program: Program, start: W,
                 visit: Callable[[Stage, StepContext, W], W], unfinished: Callable[[W], bool],
                 n_of: Callable[[W], int], cost: Cost) -> Cost:
    """Walk the engine's schedule from `start`, `visit` (which returns a new path) at every stage
    on every path its `when=` opens, the finishing commit on the paths `unfinished`, equal states
    merged: the costliest path's count."""
    gen = program.decode.gen_length
    stages = {stage.op.uid: stage for stage in (*lowered.init, *lowered.step, *lowered.final)}
    end = edge_context(program.decode, True)
    last = StepContext(end.step, end.block, 0, 1, end.steps, gen, gen)
    walks = [start]
    for op, ctx in branches.schedule(program):
        if op is None:  # the finishing commit, where masks remain
            walks = merge_paths([visit(lowered.finish, last, w) if unfinished(w) else w
                                 for w in walks], cost)
            continue
        stage = stages[op.uid]
        walks = merge_paths(branches.branch(op, ctx, walks, n_of,
                                            lambda w, s=stage, c=ctx: visit(s, c, w)), cost)
        cost.paths = max(cost.paths, len(walks))
    return costliest(walks, cost)


def merge_paths(walks: list[W], cost: Cost) -> list[W]:
    """Paths in equal states become one that paid the most (per stage, too): an upper bound.
    Paths that paid differently make the count inexact."""
    out: dict[tuple, W] = {}
    for w in walks:
        known = out.setdefault(w.state(), w)
        if known is w:
            continue
        if known.forwards != w.forwards:
            cost.exact = False
        stages = {k: max(known.by_stage.get(k, 0), w.by_stage.get(k, 0))
                  for k in (*known.by_stage, *w.by_stage)}
        out[w.state()] = replace(known, forwards=max(known.forwards, w.forwards),
                                 positions=max(known.positions, w.positions), by_stage=stages)
    return list(out.values())


def costliest(walks: list[W], cost: Cost) -> Cost:
    """`cost` with the forwards and positions of the path that paid the most (exact only when
    every path paid the same) and, per stage, the most any path paid there."""
    if len({w.forwards for w in walks}) > 1:
        cost.exact = False
    worst = max(walks, key=lambda w: w.forwards)
    cost.forwards, cost.positions = worst.forwards, worst.positions
    cost.by_stage = {k: max(w.by_stage.get(k, 0) for w in walks)
                     for w0 in walks for k in w0.by_stage}
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
