"""expand(k): every particle becomes k children that differ only in their sampling noise onwards."""

from __future__ import annotations

import copy

import torch

from s3dsl.compiler.nodes import Node
from s3dsl.compiler.ops.base import Batch, Param, Primitive
from s3dsl.shape_constants import shape_constant


def children(rows: int, k: int, n: int, device: torch.device
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The rows of k children of each of `rows` particles (n per problem): each child's parent
    row, its number j among its siblings (its key is mix(parent key, uid, step, j)) and its
    parent's place in its problem (the `group` field). Shared with the captured step; made once
    per shape (read-only)."""
    def make() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        index = torch.arange(rows, device=device).repeat_interleave(k)
        return index, torch.arange(index.shape[0], device=device) % k, index % n

    return shape_constant(("expand.children", rows, k, n, device), make)


def batched(ex: Batch, op, ctx, active) -> None:
    """One gather over every field; child j of a particle gets the key mix(key, uid, step, j).
    With share-parent-forward (`gather cache=keep`) the children keep the parent's forward."""
    k = op.args["k"]
    index, child, group = children(ex.pop.rows, k, ex.n, ex.device)
    # mix folds its words one at a time, so the words every sibling shares (uid, step) are
    # folded into the parents' keys (k times fewer rows) and only the child number after the
    # gather: the same bits as mix(child's copy of the key, uid, step, j)
    parents = copy.copy(ex.pop)  # (the population before the stage is left as it was)
    parents.key = ex.kernels.rng.mix(ex.pop.key, op.uid, ctx.step)
    pop = parents.gather(index)
    pop.key = ex.kernels.rng.mix(pop.key, child)
    pop.group = group
    if op.args.get("schedules"):  # child j follows schedule j mod m
        table = torch.tensor(op.args["schedules"], device=ex.device)
        pop.sched = table[child % len(table)]
    gather = ex.stage.node("gather")
    if gather is None or gather.get("cache") != "keep":
        pop.slot.fill_(-1)
    ex.pop = pop


PRIMITIVE = Primitive(
    "expand",
    "Every particle becomes k children that differ only in their sampling noise onwards.",
    (Param("k", "int", low=1, high=4096, doc="children per particle"),
     Param("schedules", "schedules", None,
           doc="init only: child j decodes with schedule j mod m, a list of "
               "schedule(block_length=, steps=, commit=, temperature=, threshold=) or "
               "block lengths")),
    provides=frozenset({"groups"}),
    clears=frozenset({"strata"}),
    lower=lambda args: (Node.of("gather", index=f"every row x{args.get('k')}", cache="drop"),),
    count=lambda n, args, group: n * int(args["k"]),
    regroup=lambda args: int(args["k"]),
    batched=batched,
)
