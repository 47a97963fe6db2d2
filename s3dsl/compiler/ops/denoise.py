"""denoise: one base transition: a forward pass, a Gumbel-max proposal, commits by rule."""

from __future__ import annotations

from s3dsl.compiler.nodes import Node, forward
from s3dsl.compiler.ops.base import Batch, Param, Primitive

COMMIT_RULES = ("confidence", "margin", "entropy", "random", "threshold")


def batched(ex: Batch, op, ctx, active) -> None:
    """Rows with a mask before the block end get a forward (from the cache where the plan reuses
    one) and commit on the window [first mask, block end)."""
    if ex.stage.has("static-step"):
        ex.static_denoise(op, ctx)
        return
    gen = ex.gen_tokens()
    need = (gen[:, : ctx.block_end] == ex.mask_id).any(dim=1)
    ex.pop.step_logp.zero_()
    if not need.any():
        return
    ex.ensure_forward(need, ctx.block_end)
    rows = need.nonzero().squeeze(1)
    w0, _ = ex.kernels.transition.window_bounds(gen[rows], ex.mask_id, ctx.block_end)
    c = ex.cache
    window = c.window_logp[ex.pop.slot[rows]][:, w0 - c.w0 : ctx.block_end - c.w0]
    ex.commit(op, ctx, rows, window, w0)


PRIMITIVE = Primitive(
    "denoise",
    "One base transition: a forward pass, a Gumbel-max proposal, commit positions by rule.",
    (
        Param("rule", "choice", None, COMMIT_RULES, doc="commit rule; default: decode.commit"),
        Param("temperature", "float", None, low=0.0, doc="default: decode.temperature"),
        Param("threshold", "float", None, low=0.0, high=1.0, doc="for rule=threshold"),
    ),
    aliases=("unmask",),
    provides=frozenset({"logprobs"}),
    lower=lambda args: (
        forward("masked in block", "first mask..block end"),
        Node.of("commit", rule=args.get("rule") or "decode",
                temperature=args.get("temperature"), threshold=args.get("threshold")),
    ),
    changes_tokens=True,
    phases=("step",),
    batched=batched,
)
