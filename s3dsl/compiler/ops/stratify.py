"""stratify(strata, by): strata for resample(within=strata): score bins or equal answers."""

from __future__ import annotations

import torch

from s3dsl.compiler.nodes import Node
from s3dsl.compiler.ops.base import Batch, Param, Primitive


def score_strata(scores: torch.Tensor, strata: int) -> torch.Tensor:
    """Quantile bins of the scores: rank * strata // n (ties by index)."""
    order = torch.sort(-scores, stable=True).indices
    ranks = torch.empty_like(order)
    ranks[order] = torch.arange(len(scores))
    return ranks * strata // len(scores)


def batched(ex: Batch, op, ctx, active) -> None:
    n = ex.n
    for b in ex.active_problems(active):
        sl = slice(b * n, (b + 1) * n)
        if op.args["by"] == "answer":
            seen: dict = {}
            labels = [seen.setdefault(a, len(seen)) for a in ex.pop.answers[sl]]
            ex.pop.stratum[sl] = torch.tensor(labels, device=ex.device)
        else:
            ex.pop.stratum[sl] = score_strata(ex.pop.score[sl].cpu(), op.args["strata"]).to(
                ex.device
            )


PRIMITIVE = Primitive(
    "stratify",
    "Assign strata (score quantile bins, or equal answers) for resample(within=strata).",
    (
        Param("strata", "int", 4, low=1, high=4096, doc="number of score bins"),
        Param("by", "choice", "score", ("score", "answer")),
    ),
    needs=(frozenset({"scores"}),),
    provides=frozenset({"strata"}),
    lower=lambda args: (Node.of("host", call=f"strata by={args.get('by')}"),),
    batched=batched,
    masks_problems=True,
)
