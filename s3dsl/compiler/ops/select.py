"""select(by): the final answer per problem: best score, majority vote, or log-prob."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from s3dsl.compiler.nodes import Node
from s3dsl.compiler.ops.base import Batch, Param, Primitive


def choose(outcomes: Sequence[Any], by: str) -> int:
    """Index of the particle whose answer is final (outcomes: `ParticleOutcome`s). `vote`: the
    most frequent extracted answer, ties (between answers) broken by the lowest negative
    log-likelihood of a particle holding it."""
    if by == "score":
        return min(
            range(len(outcomes)), key=lambda i: (-_finite(outcomes[i].score), outcomes[i].nll, i)
        )
    if by == "logprob":
        return min(range(len(outcomes)), key=lambda i: (outcomes[i].nll, i))
    counts: dict[str | None, int] = {}
    for o in outcomes:
        counts[o.answer] = counts.get(o.answer, 0) + 1
    if any(a is not None for a in counts):
        counts.pop(None, None)
    top = max(counts.values())
    return min(
        (i for i, o in enumerate(outcomes) if o.answer in counts and counts[o.answer] == top),
        key=lambda i: (outcomes[i].nll, i),
    )


def _finite(x: float) -> float:
    return x if x == x else float("-inf")


def batched(ex: Batch, op, ctx, active) -> None:
    outcomes = ex.outcomes()
    for b in ex.active_problems(active):
        ex.chosen[b] = choose(outcomes[b], op.args["by"])


PRIMITIVE = Primitive(
    "select",
    "The final answer per problem: best score, majority vote (NLL breaks ties), or log-prob.",
    (Param("by", "choice", "vote", ("score", "vote", "logprob")),),
    lower=lambda args: (Node.of("select", by=args.get("by")),),
    phases=("final",),
    batched=batched,
    masks_problems=True,
)
