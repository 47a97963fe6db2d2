"""prune(n, by=score): keep the n best-scoring particles per problem; no copies."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from s3dsl.compiler.nodes import Node
from s3dsl.compiler.ops.base import Batch, Param, Primitive


def prune_survivors(scores: Sequence[float], n: int) -> list[int]:
    """The indices of the n best scores (nan ranks last, ties go to the earlier particle), in
    ascending order so the population layout stays canonical."""
    key = [(-x if not math.isnan(x) else math.inf, i) for i, x in enumerate(scores)]
    return sorted(i for _, i in sorted(key)[:n])


def batched(ex: Batch, op, ctx, active) -> None:
    n, scores = ex.n, ex.pop.score.tolist()
    keep = [b * n + i for b in range(len(ex.batch))
            for i in prune_survivors(scores[b * n : (b + 1) * n], op.args["n"])]
    ex.pop = ex.pop.gather(torch.tensor(keep, device=ex.device))


PRIMITIVE = Primitive(
    "prune",
    "Keep the n best-scoring particles per problem (ties: the earlier); no copies.",
    (
        Param("n", "int", low=1, high=4096, doc="survivors per problem (all, if fewer)"),
        Param("by", "choice", "score", ("score",), doc="what ranks the particles"),
    ),
    needs=(frozenset({"scores"}),),
    clears=frozenset({"groups", "strata"}),
    lower=lambda args: (
        Node.of("resample", n=args.get("n"), method="best n by score", cache="carry"),
    ),
    count=lambda n, args, group: min(n, int(args["n"])),
    batched=batched,
)
