"""The forward count of a plan whose particles follow different schedules (`expand(schedules=)`).

The same reading of the plan's nodes as `cost.count`, kept per schedule class: the rows of one
problem that share a schedule share their block boundaries, so "does this row need a forward" is
known per class from that schedule's step context. Which classes hold provably identical states
is tracked too (all rows are identical before the first commit; classes whose commits differ in
block end, budget or rule split apart), so dedup is counted exactly while states are provably
equal. The count is exact at temperature 0 without dedup; with dedup it is an upper bound once
classes have split (their states may still coincide), and after a resample that mixes classes
(the mix is data-dependent) every class is counted as if it held every row.

`when=` stages open paths as in `cost.count` (s3dsl.compiler.branches): every way the conditions
can fall is followed, equal states merge, and the count is the costliest path's. (Assuming that
every condition holds is no bound: a score that runs lets the next denoise reuse its forward.)
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace

from s3dsl.compiler import particle_schedules
from s3dsl.compiler import primitives as prims
from s3dsl.compiler.cost import (
    EARLY_RULES,
    Cost,
    _deterministic,
    committed_after,
    follow_paths,
)
from s3dsl.compiler.ir import DecodeConfig, Program
from s3dsl.compiler.lowered import FINISH, Stage, StepPlan
from s3dsl.compiler.schedule import StepContext


@dataclass
class _Class:
    schedule: int
    n: int  # rows per problem
    group: int  # classes of one group hold identical states (while commits are deterministic)
    committed: int = 0  # generated positions committed (cost.committed_after)
    cached: bool = False


@dataclass
class _Walk:
    """One path's population (s3dsl.compiler.branches) and what it has paid so far."""

    classes: list[_Class] = field(default_factory=lambda: [_Class(0, 1, 0)])
    next_group: int = 1
    real: int = 1  # particles per problem (the classes' counts are a bound after mixing)
    window: int = 0  # how far the forward cache's log-probs reach (0: no cache)
    forwards: int = 0
    positions: int = 0
    by_stage: dict[str, int] = field(default_factory=dict)

    def copy(self) -> _Walk:
        return replace(self, classes=[replace(c) for c in self.classes],
                       by_stage=dict(self.by_stage))

    def state(self) -> tuple:
        """What later stages' costs depend on (paths with equal states merge)."""
        return (self.next_group, self.real, self.window,
                tuple((c.schedule, c.n, c.group, c.committed, c.cached) for c in self.classes))


def count_schedules(lowered: StepPlan, program: Program) -> Cost:
    gen = program.decode.gen_length
    deterministic = _deterministic(program) and all(
        d.temperature == 0 and d.commit != "random" for d in program.schedules)
    cost = Cost(0)
    rules = {d.commit for d in (program.decode, *program.schedules)}
    if any(op.name in ("remask", "stop") for op in program.step) or set(EARLY_RULES) & rules or any(
            op.args.get("rule") in EARLY_RULES for op in program.step):
        cost.exact = False

    def context(op, decode: DecodeConfig, ctx: StepContext) -> StepContext | None:
        if op is FINISH or op.name != "denoise" or ctx.step < 0 or ctx.step >= program.decode.steps:
            return ctx
        return particle_schedules.particle_context(decode, ctx)

    def pay(walk: _Walk, stage: Stage, paid: int) -> None:
        op = stage.op
        walk.forwards += paid
        walk.positions += paid * gen  # no block KV cache (kv_rewrite refuses schedules)
        key = f"{op.name}@{op.span.line}" if op.span else op.name
        walk.by_stage[key] = walk.by_stage.get(key, 0) + paid

    def visit(stage: Stage, ctx: StepContext, walk: _Walk) -> _Walk:
        walk = walk.copy()
        op = stage.op
        contexts = [context(op, program.decode_of(c.schedule), ctx) for c in walk.classes]
        for node in stage.nodes:
            kind = node.kind
            if kind == "forward" and node.get("rows") == prims.STOPPED_ROWS:
                pay(walk, stage, sum(c.n for c in walk.classes if c.committed < gen))
                continue
            if kind == "commit" and op.name == "stop":
                continue
            if kind == "forward":
                rows = node.get("rows", "")
                dedup = node.get("dedup") == "yes"
                reuse = node.get("cache") == "reuse"
                needs = [(c, at) for c, at in zip(walk.classes, contexts) if at is not None and
                         c.committed < (at.block_end if rows != "with masks" else gen)]
                needing = [c for c, _ in needs]
                if not needing:
                    continue
                # the window the executor asks for (runtime/forwards.py `ensure_forward`): one
                # cache for every row, recomputed for all when its window falls short
                if rows == "with masks":
                    w1 = particle_schedules.reach(program.schedules, ctx, program.decode)
                else:
                    w1 = max(at.block_end for _, at in needs)
                if not reuse or walk.window < w1:
                    for c in walk.classes:
                        c.cached = False
                    walk.window = w1
                fresh = [c for c in needing if not c.cached]
                if dedup:
                    groups = {c.group for c in fresh}
                    if not deterministic or len({c.group for c in walk.classes}) > 1:
                        cost.exact = False  # states of other classes may coincide by chance
                    paid = len(groups) if deterministic else sum(c.n for c in fresh)
                else:
                    paid = sum(c.n for c in fresh)
                pay(walk, stage, paid)
                for c in needing:
                    c.cached = True
            elif kind == "commit":
                _commit(walk, contexts, op, program, gen)
            elif kind == "update" and node.get("field") == "tokens":
                for c in walk.classes:
                    c.cached, c.committed = False, 0
            elif (kind == "gather" and node.get("cache") != "keep") or kind == "drop-cache":
                for c in walk.classes:
                    c.cached = False
                if kind == "drop-cache":  # the cache itself goes (its window with it)
                    walk.window = 0
        _count(walk, stage, cost)
        return walk

    return follow_paths(lowered, program, _Walk(), visit,
                        lambda w: any(c.committed < gen for c in w.classes), lambda w: w.real, cost)


def _commit(walk: _Walk, contexts: list, op, program: Program, gen: int) -> None:
    """A commit: classes that had masks in their block change (and lose their cached forward);
    a group whose classes commit differently splits."""
    signatures: dict[tuple, int] = {}
    for c, at in zip(walk.classes, contexts):
        if at is None or c.committed >= at.block_end:
            signature = (c.group, None)
        else:
            decode = program.decode_of(c.schedule)
            rule = op.args.get("rule") or decode.commit
            temperature = op.args.get("temperature")
            temperature = decode.temperature if temperature is None else temperature
            signature = (c.group, at.block_end, at.steps_left, rule, temperature,
                         decode.threshold)
            c.cached = False
            c.committed = committed_after(c.committed, at, rule, decode)
        if signature not in signatures:
            first = not any(key[0] == c.group for key in signatures)
            signatures[signature] = c.group if first else walk.next_group
            walk.next_group += 0 if first else 1
        c.group = signatures[signature]


def _count(walk: _Walk, stage: Stage, cost: Cost) -> None:
    """The stage's change of the particle count, per class."""
    op = stage.op
    prim = prims.lookup(op.name)
    assert prim is not None
    total = walk.real
    if op.name == "expand":
        walk.real = total * op.args["k"]
        ids = op.args.get("schedules")
        out = []
        for c in walk.classes:
            if not ids:
                out.append(_Class(c.schedule, c.n * op.args["k"], c.group, c.committed,
                                  c.cached))
                continue
            per = Counter(ids[j % len(ids)] for j in range(op.args["k"]))
            out += [_Class(s, c.n * m, c.group, c.committed, c.cached) for s, m in per.items()]
        walk.classes = out
    else:
        new_total = walk.real = prim.count(total, op.args, op.group)
        if len(walk.classes) == 1:
            walk.classes[0].n = new_total
        elif new_total != total or op.name in ("resample", "mh-accept", "prune"):
            cost.exact = False  # which schedules survive is data-dependent: count every class
            for c in walk.classes:  # as if it held all rows (an upper bound)
                c.n = new_total
    cost.peak_particles = max(cost.peak_particles, walk.real)
