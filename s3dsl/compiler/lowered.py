"""The lowered step plan: every stage of a program as plan nodes, the data passes rewrite.

`lower(program)` gives the unoptimized plan, which does what the reference interpreter does:
every forward computed fresh, one call per particle, the whole prompt every time, and the forward
cache dropped after every stage. Each pass in `s3dsl.compiler.passes` is a function from plan to
plan; the batched executor reads the final plan's nodes, and `s3dsl.compiler.cost` counts its
forwards off the same nodes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from functools import cached_property

from s3dsl.compiler import primitives as prims
from s3dsl.compiler.ir import DecodeConfig, Op, Program, Schedule
from s3dsl.compiler.nodes import Node, Shapes

# The commit that finishes whatever a late remask left masked (the engine's `finish`).
FINISH = Op("denoise", {"rule": "confidence", "temperature": 0.0}, Schedule(), None, 0, "final")


@dataclass(frozen=True)
class Stage:
    """One stage of the program (its IR op, schedule included) and the nodes it runs."""

    op: Op
    nodes: tuple[Node, ...]

    def node(self, kind: str) -> Node | None:
        """The stage's first node of `kind` (an executor asks at every stage it runs)."""
        return self._first_of_kind.get(kind)

    @cached_property
    def _first_of_kind(self) -> dict[str, Node]:
        first: dict[str, Node] = {}
        for n in self.nodes:
            first.setdefault(n.kind, n)
        return first

    def has(self, kind: str) -> bool:
        return self.node(kind) is not None

    def lines(self) -> list[str]:
        """The stage (schedule included), its static shape (particles per problem in and out,
        known at compile time) and its nodes with their tensor shapes."""
        known = next((n.get("shapes") for n in self.nodes if n.get("shapes")), self.op)
        shape = f"particles {known.n_in} -> {known.n_out}"
        where = f", line {self.op.span.line}" if self.op.span else ""
        head = f"{self.op.describe()}   # {shape}{where}"
        return [head, *(f"    {n.describe()}" for n in self.nodes)]


@dataclass(frozen=True)
class StepPlan:
    init: tuple[Stage, ...]
    step: tuple[Stage, ...]
    final: tuple[Stage, ...]
    finish: Stage

    def stages(self) -> Iterator[Stage]:
        yield from self.init
        yield from self.step
        yield self.finish
        yield from self.final

    def stage_of(self, op: Op) -> Stage:
        for stage in self.stages():
            if stage.op is op or stage.op.uid == op.uid:
                return stage
        raise KeyError(op.name)

    def has(self, kind: str) -> bool:
        return any(stage.has(kind) for stage in self.stages())

    def nodes(self, kind: str) -> list[Node]:
        return [n for stage in self.stages() for n in stage.nodes if n.kind == kind]

    def map_stages(self, fn: Callable[[Stage], Stage]) -> StepPlan:
        return StepPlan(
            tuple(map(fn, self.init)), tuple(map(fn, self.step)), tuple(map(fn, self.final)),
            fn(self.finish),
        )

    def map_nodes(self, kind: str, fn: Callable[[Stage, Node], Node | None]) -> StepPlan:
        """Rewrite every node of `kind` (None deletes it)."""

        def stage_fn(stage: Stage) -> Stage:
            out = []
            for n in stage.nodes:
                new = fn(stage, n) if n.kind == kind else n
                if new is not None:
                    out.append(new)
            return replace(stage, nodes=tuple(out))

        return self.map_stages(stage_fn)

    def lines(self) -> list[str]:
        out: list[str] = []
        for title, stages in (("init", self.init), ("step (every denoising step)", self.step),
                              ("finish (only if masks remain)", (self.finish,)),
                              ("final", self.final)):
            if stages:
                out.append(f"{title}:")
                out += [f"  {line}" for stage in stages for line in stage.lines()]
        return out


def lower_op(op: Op, decode: DecodeConfig | None = None, reopens: bool = False,
             n: int | None = None, block: int | None = None) -> Stage:
    """A stage's nodes, each with its tensor shapes where `decode` is given (a remask that
    `reopens` earlier blocks lets a window reach back to the first generated position; `block`:
    the longest block of any particle's schedule)."""
    prim = prims.lookup(op.name)
    assert prim is not None, op.name
    nodes = (*prim.lower(op.args), Node.of("drop-cache"))
    if decode is None:
        return Stage(op, nodes)
    n_in, n_out = (op.n_in, op.n_out) if n is None else (n, n)
    shapes = Shapes(n_in, n_out, decode.gen_length, block or decode.block_length, reopens)
    return Stage(op, tuple(node if node.kind == "drop-cache" else node.replace(shapes=shapes)
                           for node in nodes))


def lower(program: Program) -> StepPlan:
    """The unoptimized plan: the reference interpreter's work, stage by stage."""
    d = program.decode
    reopens = any(op.name == "remask" for op in program.ops())
    last = (program.step or program.init or [FINISH])[-1]
    block = max(s.block_length for s in (d, *program.schedules))
    return StepPlan(
        tuple(lower_op(op, d, reopens, block=block) for op in program.init),
        tuple(lower_op(op, d, reopens, block=block) for op in program.step),
        tuple(lower_op(op, d, reopens, block=block) for op in program.final),
        lower_op(FINISH, d, reopens, n=last.n_out, block=block),
    )
