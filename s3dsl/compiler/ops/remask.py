"""remask(by, count, fraction): re-mask committed tokens, least confident first (or at random)."""

from __future__ import annotations

import math

import torch

from s3dsl.compiler.nodes import Node
from s3dsl.compiler.ops.base import Batch, Param, Primitive


def remask_positions(committed: torch.Tensor, logp: torch.Tensor, keys: torch.Tensor, op, ctx,
                     rng) -> torch.Tensor:
    """Rows x positions to re-mask: the `count` (or `fraction` of committed) least confident
    committed tokens, or random ones (uniforms from `rng`, the runtime's s3dsl.runtime.rng); a
    rank threshold per row, as in the commit rule."""
    n_committed = committed.sum(dim=1)
    if op.args["count"]:
        k = torch.clamp(n_committed, max=op.args["count"])
    else:
        k = torch.floor(n_committed.double() * op.args["fraction"] + 0.5).long()
    if op.args["by"] == "random":
        priority = -rng.uniform(rng.mix(keys, op.uid, ctx.step), 0, (committed.shape[1],))
    else:
        priority = logp.double()
    priority = priority.masked_fill(~committed, math.inf)
    order = priority.argsort(dim=1, stable=True)
    ranks = torch.empty_like(order).scatter_(
        1, order, torch.arange(order.shape[1]).expand_as(order)
    )
    return committed & (ranks < k.unsqueeze(1))


def batched(ex: Batch, op, ctx, active) -> None:
    """Stopped problems stay finished; re-masked rows lose their cached forward."""
    pop = ex.pop
    gen = ex.gen_tokens()
    stopped = torch.tensor(ex.stopped, device=ex.device).repeat_interleave(ex.n)
    live = ex.active_rows(active) & ~stopped
    committed = (gen != ex.mask_id) & live.unsqueeze(1)
    chosen = remask_positions(committed, pop.commit_logp, pop.key, op, ctx, ex.kernels.rng)
    for b in ex.active_problems(active):
        ex.remasks[b] += not ex.stopped[b]
    pop.tokens[:, -ex.gen :] = torch.where(chosen, ex.mask_id, gen)
    pop.commit_logp = torch.where(chosen, torch.zeros_like(pop.commit_logp), pop.commit_logp)
    pop.slot[chosen.any(dim=1)] = -1


PRIMITIVE = Primitive(
    "remask",
    "Re-mask committed tokens, least confident first (or at random).",
    (
        Param("by", "choice", "confidence", ("confidence", "random")),
        Param("count", "int", 0, low=0, doc="tokens per particle (0: use fraction)"),
        Param("fraction", "float", 0.0, low=0.0, high=1.0, doc="share of committed tokens"),
    ),
    aliases=("remask-by-confidence",),
    lower=lambda args: (
        Node.of("update", field="tokens", by=args.get("by"), count=args.get("count"),
                fraction=args.get("fraction")),
    ),
    changes_tokens=True,
    phases=("step",),
    batched=batched,
    masks_problems=True,
)
