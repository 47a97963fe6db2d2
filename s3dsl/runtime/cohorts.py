"""A batch as cohorts: problems that hold the same number of particles, run together.

The batched executor lays a population out problem-major with `n` particles per problem. A stage
under `when=` that changes the count (or whose work cannot be masked by problem: `expand`,
`denoise`, `score`, `mh-accept`, `prune`, a count-changing `resample`) would break that layout
when its condition holds for some problems only. The batch then splits: the problems where it
holds become one cohort and run the stage, the others another that passes it by unchanged
(s3dsl.compiler.branches is the compiler's view of the same split). Each cohort is an executor
over its problems, sharing the model, the forward cache it started from, the prompt cache and
the counters; a problem's randomness depends on its own keys only, so a split changes no token.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import torch

from s3dsl.compiler.ir import Op
from s3dsl.compiler.primitives import lookup
from s3dsl.compiler.schedule import StepContext
from s3dsl.runtime.population import COUNTERS
from s3dsl.runtime.results import ProblemResult

if TYPE_CHECKING:
    from s3dsl.runtime.executor import BatchedExecutor

PER_PROBLEM = tuple(name for name, _, _ in COUNTERS)


def splits(op: Op, n: int) -> bool:
    """Whether a conditional `op` splits a cohort rather than masking problems: unless its
    batched semantics take a per-problem mask (`Primitive.masks_problems`) and it keeps the
    count."""
    prim = lookup(op.name)
    assert prim is not None
    return not (prim.masks_problems and prim.count(n, op.args, op.group) == n)


def subset(ex: BatchedExecutor, keep: torch.Tensor) -> BatchedExecutor:
    """An executor over the problems `keep` marks, with their particles, state and counters."""
    part = copy.copy(ex)
    problems = keep.nonzero().squeeze(1).tolist()
    n = ex.n
    rows = torch.tensor([b * n + i for b in problems for i in range(n)], dtype=torch.long)
    part.batch = [ex.batch[b] for b in problems]
    part.root = ex.root[problems]
    part.owner = ex.owner[torch.tensor(problems, device=ex.owner.device)]
    part.pop = ex.pop.gather(rows.to(ex.device))
    for name in PER_PROBLEM:
        values = getattr(ex, name)
        setattr(part, name, [values[b] for b in problems])
    part.known_outcomes = None  # they were the whole batch's
    part.captured = None  # captured steps hold their executor: a cohort runs its steps plainly
    if ex.block_kv is not None:  # rows are refreshed in place: each cohort gets its own copy
        part.block_kv = _own_copy(ex.block_kv)
    return part


def _own_copy(kv):
    """A block KV cache whose rows a cohort may overwrite without touching another's."""
    out = copy.copy(kv)
    out.k, out.v = [t.clone() for t in kv.k], [t.clone() for t in kv.v]
    for name in ("block", "clean_tok", "clean_logp", "src", "last_rows"):
        setattr(out, name, getattr(kv, name).clone())
    out._scratch = None
    return out


class Cohorts:
    """The engine's backend for one batch: applies each stage to every cohort, splitting one
    where a count-changing stage's condition divides its problems."""

    def __init__(self, first: BatchedExecutor):
        self.parts = [first]
        self.observer = getattr(first, "observer", None)

    def apply(self, op: Op, ctx: StepContext) -> None:
        parts: list[BatchedExecutor] = []
        for part in self.parts:
            parts += self._apply(part, op, ctx)
        self.parts = parts

    @staticmethod
    def _apply(part: BatchedExecutor, op: Op, ctx: StepContext) -> list[BatchedExecutor]:
        if part.captured_apply(op, ctx):
            return [part]
        active = part.condition(op, ctx)
        if active is None:
            part.run_op(op, ctx, None)
            return [part]
        if not active.any():
            return [part]
        if not splits(op, part.n):
            part.run_op(op, ctx, active)
            return [part]
        if active.all():
            part.run_op(op, ctx, None)
            return [part]
        ran, passed = subset(part, active), subset(part, ~active)
        ran.run_op(op, ctx, None)
        return [ran, passed]

    def __getattr__(self, name: str):
        """Observers written for one executor (search traces, tests) read its fields: those of
        the batch's one cohort, while it has not split."""
        parts = self.__dict__.get("parts")
        if parts is not None and len(parts) == 1:
            return getattr(parts[0], name)
        raise AttributeError(f"{name} (the batch has split into {len(parts or [])} cohorts)")

    def finish(self, ctx: StepContext) -> None:
        for part in self.parts:
            part.finish(ctx)

    def _in_order(self, per_part) -> list:
        indexed = [(int(i), item) for part in self.parts
                   for i, item in zip(part.owner.tolist(), per_part(part))]
        return [item for _, item in sorted(indexed, key=lambda pair: pair[0])]

    def results(self) -> list[ProblemResult]:
        return self._in_order(lambda part: part.results())

    def snapshot(self) -> list[dict]:
        return self._in_order(lambda part: part.snapshot())
