"""weight(by, scale): update SMC log-weights by this step's log-probs or by score potentials."""

from __future__ import annotations

import torch

from s3dsl.compiler.nodes import Node
from s3dsl.compiler.ops.base import Batch, Param, Primitive


def weight_update(
    logw: torch.Tensor,
    step_logp: torch.Tensor,
    score: torch.Tensor,
    prev: torch.Tensor,
    best: torch.Tensor,
    args: dict,
) -> torch.Tensor:
    """New float64 log-weights (elementwise): += log-probs of this step's commits (`logprob`),
    += the score (`score`), += its change since the last scoring (`diff`), or = the best score
    so far (`max`), each times `scale` (the lambda of Feynman-Kac potentials)."""
    by, scale = args["by"], args["scale"]
    if by == "logprob":
        return logw + scale * step_logp.double()
    if by == "score":
        return logw + scale * score
    if by == "diff":
        return logw + scale * (score - torch.nan_to_num(prev, nan=0.0))
    return scale * best


def batched(ex: Batch, op, ctx, active) -> None:
    pop = ex.pop
    new = weight_update(
        pop.logw, pop.step_logp, pop.score, pop.prev_score, pop.best_score, op.args
    )
    pop.logw = torch.where(ex.active_rows(active), new, pop.logw)


PRIMITIVE = Primitive(
    "weight",
    "Update SMC log-weights: log-probs of this step's commits, or potentials of scores.",
    (
        Param("by", "choice", "logprob", ("logprob", "score", "diff", "max")),
        Param("scale", "float", 1.0, doc="multiplies the increment (lambda of FK potentials)"),
    ),
    provides=frozenset({"logw"}),
    lower=lambda args: (
        Node.of("update", field="logw", by=args.get("by"), scale=args.get("scale")),
    ),
    needs_of_args=lambda args: (  # max reads best_score, -inf while unscored: defined
        [frozenset({"scored"})] if args.get("by") in ("score", "diff")
        else [frozenset({"scores"})] if args.get("by") == "max" else []
    ),
    batched=batched,
    masks_problems=True,
)
