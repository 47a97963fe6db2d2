"""The forward count of a plan whose particles follow different schedules (`expand(schedules=)`).

The same reading of the plan's nodes as `cost.count`, kept per schedule class: the rows of one
problem that share a schedule share their block boundaries, so "does this row need a forward" is
known per class from that schedule's step context. Which classes hold provably identical states
is tracked too (all rows are identical before the first commit; classes whose commits differ in
block end, budget or rule split apart), so dedup is counted exactly while states are provably
equal. The count is exact at temperature 0 without dedup; with dedup it is an upper bound once
classes have split (their states may still coincide), and after a resample that mixes classes
(the mix is data-dependent) every class is counted as if it held every row.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from s3dsl.compiler import primitives as prims
from s3dsl.compiler.cost import EARLY_RULES, Cost, _deterministic, committed_after
from s3dsl.compiler.ir import DecodeConfig, Program
from s3dsl.compiler.lowered import FINISH, Stage, StepPlan
from s3dsl.compiler.particle_schedules import particle_context
from s3dsl.compiler.schedule import StepContext, edge_context, step_contexts


@dataclass
class _Class:
    schedule: int
    n: int  # rows per problem
    group: int  # classes of one group hold identical states (while commits are deterministic)
    committed: int = 0  # generated positions committed (cost.committed_after)
    cached: bool = False


@dataclass
class _Walk:
    classes: list[_Class] = field(default_factory=lambda: [_Class(0, 1, 0)])
    next_group: int = 1
    real: int = 1  # particles per problem (the classes' counts are a bound after mixing)

    @property
    def n(self) -> int:
        return sum(c.n for c in self.classes)


def count_schedules(lowered: StepPlan, program: Program) -> Cost:
    gen = program.decode.gen_length
    deterministic = _deterministic(program) and all(
        d.temperature == 0 and d.commit != "random" for d in program.schedules)
    walk, cost = _Walk(), Cost(0)
    rules = {d.commit for d in (program.decode, *program.schedules)}
    if any(op.schedule.when is not None for op in program.ops()):
        cost.exact = False  # counted as if every condition held (a shrink: as if it did not)
    if any(op.name in ("remask", "stop") for op in program.step) or set(EARLY_RULES) & rules or any(
            op.args.get("rule") in EARLY_RULES for op in program.step):
        cost.exact = False

    def context(op, decode: DecodeConfig, ctx: StepContext) -> StepContext | None:
        if op is FINISH or op.name != "denoise" or ctx.step < 0 or ctx.step >= program.decode.steps:
            return ctx
        return particle_context(decode, ctx)

    def pay(stage: Stage, paid: int) -> None:
        op = stage.op
        cost.forwards += paid
        cost.positions += paid * gen  # no block KV cache (kv_rewrite refuses schedules)
        key = f"{op.name}@{op.span.line}" if op.span else op.name
        cost.by_stage[key] = cost.by_stage.get(key, 0) + paid

    def visit(stage: Stage, ctx: StepContext) -> None:
        op = stage.op
        contexts = [context(op, program.decode_of(c.schedule), ctx) for c in walk.classes]
        for node in stage.nodes:
            kind = node.kind
            if kind == "forward" and node.get("rows") == prims.STOPPED_ROWS:
                pay(stage, sum(c.n for c in walk.classes if c.committed < gen))
                continue
            if kind == "commit" and op.name == "stop":
                continue
            if kind == "forward":
                rows = node.get("rows", "")
                dedup = node.get("dedup") == "yes"
                reuse = node.get("cache") == "reuse"
                needing = [c for c, at in zip(walk.classes, contexts) if at is not None and
                           c.committed < (at.block_end if rows != "with masks" else gen)]
                fresh = [c for c in needing if not (reuse and c.cached)]
                if dedup:
                    groups = {c.group for c in fresh}
                    if not deterministic or len({c.group for c in walk.classes}) > 1:
                        cost.exact = False  # states of other classes may coincide by chance
                    paid = len(groups) if deterministic else sum(c.n for c in fresh)
                else:
                    paid = sum(c.n for c in fresh)
                if needing:
                    pay(stage, paid)
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
        _count(walk, stage, cost)

    for stage in lowered.init:
        visit(stage, edge_context(program.decode, False))
    for ctx in step_contexts(program.decode):
        for stage in lowered.step:
            if stage.op.schedule.fires(ctx.step, ctx.step_in_block, ctx.steps_per_block, ctx.steps):
                visit(stage, ctx)
    end = edge_context(program.decode, True)
    if any(c.committed < gen for c in walk.classes):
        visit(lowered.finish, StepContext(end.step, end.block, 0, 1, end.steps, gen, gen))
    for stage in lowered.final:
        visit(stage, end)
    return cost


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
    elif op.schedule.when is not None and prim.count(total, op.args, op.group) < total:
        cost.exact = False  # a conditional shrink may not happen: count the rows it would drop
    else:
        new_total = walk.real = prim.count(total, op.args, op.group)
        if len(walk.classes) == 1:
            walk.classes[0].n = new_total
        elif new_total != total or op.name in ("resample", "mh-accept", "prune"):
            cost.exact = False  # which schedules survive is data-dependent: count every class
            for c in walk.classes:  # as if it held all rows (an upper bound)
                c.n = new_total
    cost.peak_particles = max(cost.peak_particles, walk.real)
