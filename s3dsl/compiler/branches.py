"""Per-problem branching: the paths a program's `when=` stages open through the schedule.

A stage under `when=` runs only for the problems whose condition holds; the others pass through
unchanged. When such a stage changes the particle count (`expand`, `resample(n)`, `prune`,
`mh-accept`), problems of one batch end up with different counts, so the compiler cannot follow
one population: it follows every *path*, one per way the conditions can fall. A condition that the
static signals settle (`n`, `step`, `block`, `steps`; see `Condition.decide`) opens no path, and
equal path states are merged, so the number of paths stays small.

`infer_shapes` checks every path (a stage's needs must hold on each) and records each stage's
largest particle counts; `s3dsl.compiler.cost` walks the same paths for its bound.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from s3dsl.compiler import primitives as prims
from s3dsl.compiler.ir import Op, Program
from s3dsl.compiler.schedule import StepContext, edge_context, step_contexts
from s3dsl.errors import S3DSLError

MAX_PARTICLES = 4096
MAX_PATHS = 64  # distinct path states at one point of the schedule
STATIC_SIGNALS = ("n", "step", "block", "steps")
S = TypeVar("S")


def fires(op: Op, ctx: StepContext, n: int) -> bool | None:
    """Whether `op` runs at `ctx` for a problem holding `n` particles: True, False, or None when
    only the run knows (its condition reads a runtime signal)."""
    if op.phase == "step" and not op.schedule.fires(
        ctx.step, ctx.step_in_block, ctx.steps_per_block, ctx.steps
    ):
        return False
    cond = op.schedule.when
    if cond is None:
        return True
    return cond.decide({"n": n, "step": ctx.step, "block": ctx.block, "steps": ctx.steps})


def branch(op: Op, ctx: StepContext, paths: Iterable[S], n_of: Callable[[S], int],
           run: Callable[[S], S], skip: Callable[[S], S] = lambda s: s) -> list[S]:
    """Every path after `op`: `run` where it fires, `skip` where it does not, both where only
    the run knows."""
    out: list[S] = []
    for path in paths:
        decided = fires(op, ctx, n_of(path))
        if decided is not False:
            out.append(run(path))
        if decided is not True:
            out.append(skip(path))
    return out


def schedule(program: Program) -> Iterable[tuple[Op | None, StepContext]]:
    """(op, context) in the order the engine visits them, static schedules applied; conditions
    are left to `fires`. `None` marks the point of the engine's finishing commit (after the
    last step, before final)."""
    start = edge_context(program.decode, False)
    for op in program.init:
        yield op, start
    for ctx in step_contexts(program.decode):
        for op in program.step:
            if op.schedule.fires(ctx.step, ctx.step_in_block, ctx.steps_per_block, ctx.steps):
                yield op, ctx
    end = edge_context(program.decode, True)
    yield None, end
    for op in program.final:
        yield op, end


@dataclass(frozen=True)
class Shape:
    """One path's population: particles per problem, proposal-group size, facts that hold."""

    n: int = 1
    group: int = 1
    facts: frozenset[str] = frozenset()


def infer_shapes(program: Program) -> None:
    """Walk every path of the schedule once: particle counts per stage, group sizes, and the
    facts each stage needs (scores before resample, groups before mh-accept), checked on every
    path. Sets op.n_in/n_out (maxima over paths) and op.group."""
    paths = [Shape()]
    seen: set[int] = set()

    def run_on(op: Op) -> Callable[[Shape], Shape]:
        prim = prims.lookup(op.name)
        assert prim is not None

        def run(s: Shape) -> Shape:
            for need in prim.needs_for(op.args):
                if not need & s.facts:
                    raise _unmet(op, need, s.facts, len(paths) > 1)
            if prim.uses_group:
                if op.uid in seen and op.group != s.group:
                    raise S3DSLError(f"{op.name} sees proposal groups of different sizes",
                                     op.span)
                op.group = s.group
                seen.add(op.uid)
            n_out = prim.count(s.n, op.args, s.group)
            if n_out > MAX_PARTICLES:
                raise S3DSLError(
                    f"{op.name} grows the population to {n_out} particles per problem",
                    op.span,
                    "add a resample or mh-accept that brings the count back down",
                )
            op.n_in, op.n_out = max(op.n_in, s.n), max(op.n_out, n_out)
            group = s.group
            if prim.regroup is not None:
                group = prim.regroup(op.args)
            elif "groups" in prim.clears:
                group = 1
            return Shape(n_out, group, (s.facts - prim.clears) | prim.provides)

        return run

    def skip_of(op: Op) -> Callable[[Shape], Shape]:
        # A stage that may not run still counts as providing what it provides (unscored
        # particles have a nan score, which resample(weights=auto), prune and select handle;
        # unweighted ones weight 0), except expand's proposal groups, whose size mh-accept
        # reads, and `scored` (every particle has a score), which score(when=) may leave unmet.
        prim = prims.lookup(op.name)
        assert prim is not None
        return lambda s: Shape(s.n, s.group, s.facts | (prim.provides - {"groups", "scored"}))

    for op, ctx in schedule(program):
        if op is None:
            continue
        paths = merge(branch(op, ctx, paths, lambda s: s.n, run_on(op), skip_of(op)), op)


def merge(paths: list[S], op: Op | None = None) -> list[S]:
    """Equal path states once each (in first-seen order); too many distinct ones is an error."""
    out = list(dict.fromkeys(paths))
    if len(out) > MAX_PATHS:
        raise S3DSLError(
            f"the when= conditions open more than {MAX_PATHS} distinct particle counts",
            op.span if op is not None else None,
            "make the count-changing stages' conditions depend on n (e.g. when=\"n == 1 and ...\")",
        )
    return out


def _unmet(op: Op, need: frozenset[str], facts: frozenset[str], branched: bool) -> S3DSLError:
    """The error for a stage whose need no earlier stage meets on some path."""
    if need == {"scored"} and "scores" in facts:  # a score(when=) that may not have run yet
        what = {"resample": "resample(weights=score)", "weight": f"weight(by={op.args.get('by')})"}
        return S3DSLError(
            f"{what.get(op.name, op.name)} needs every particle scored, but on a path where "
            "an earlier score(when=...) has not run yet they have no score (nan)",
            op.span,
            "score without when= before it (or with a condition that holds before this stage "
            "first runs)" + (", or resample with weights=auto, which uses the log-weights "
                             "while a particle is unscored" if op.name == "resample" else ""),
        )
    wanted = " or ".join(sorted("scores" if f == "scored" else f for f in need))
    where = " (on a path where an earlier when= stage did not run)" if branched else ""
    return S3DSLError(f"{op.name} needs {wanted}, but no earlier stage provides them{where}",
                      op.span, _provider_hint(need))


def _provider_hint(need: frozenset[str]) -> str:
    providers = {
        "scores": "score(v)",
        "scored": "score(v)",
        "logw": "weight(logprob)",
        "groups": "expand(k)",
        "strata": "stratify(...)",
    }
    return "add " + " or ".join(providers[f] for f in sorted(need)) + " before it"
