"""score(v): score each particle's clean prediction (masks filled by argmax) with a verifier."""

from __future__ import annotations

import torch

from s3dsl.compiler.nodes import Node, forward
from s3dsl.compiler.ops.base import Batch, Param, Primitive


def batched(ex: Batch, op, ctx, active) -> None:
    values = ex.score_rows(op.args["verifier"], ex.reach(ctx))
    pop = ex.pop
    pop.prev_score, pop.score = pop.score, values
    pop.best_score = torch.maximum(pop.best_score, values)


PRIMITIVE = Primitive(
    "score",
    "Score each particle's clean prediction (masks filled by argmax) with a verifier.",
    (Param("verifier", "verifier", doc="a verifier declared in `verifiers:` or a built-in"),),
    provides=frozenset({"scores", "scored"}),  # scored: not by a skipped score (branches.py)
    lower=lambda args: (
        forward("with masks", "first mask..next block end"),
        Node.of("host", call=f"verifier {args.get('verifier')}", on="clean prediction"),
    ),
    batched=batched,
)
