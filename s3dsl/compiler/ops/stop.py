"""stop: finish the problem now (every mask committed in one step); no more forwards for it."""

from __future__ import annotations

from s3dsl.compiler.nodes import Node, forward
from s3dsl.compiler.ops.base import Batch, Primitive

STOPPED_ROWS = "masked, of problems it stops"  # `stop`'s forward: only where its condition holds


def batched(ex: Batch, op, ctx, active) -> None:
    """Finish the problems whose condition holds, as `finish` does, with a forward of their
    masked rows only that leaves every other row's cached forward in place."""
    for b in ex.active_problems(active):
        ex.stopped[b] = True
    live = ex.active_rows(active)
    ex.pop.step_logp[live] = 0.0
    rows = (live & (ex.gen_tokens() == ex.mask_id).any(dim=1)).nonzero().squeeze(1)
    if len(rows):
        ex.finish_rows(ctx, rows)


PRIMITIVE = Primitive(
    "stop",
    "Finish the problem now: every mask committed in one step; no more forwards for it.",
    (),
    # The finishing forward runs only where the condition holds; the cost model counts it
    # at every point it may fire (a bound), the run reports what it spent.
    lower=lambda args: (
        forward(STOPPED_ROWS, "first mask..end"),
        Node.of("commit", rows=STOPPED_ROWS, rule="confidence", temperature=0.0,
                steps="1 (all masks)"),
    ),
    changes_tokens=True,
    phases=("step",),
    batched=batched,
    masks_problems=True,
)
