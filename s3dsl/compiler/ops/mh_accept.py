"""mh-accept(target): independent Metropolis-Hastings over each group of proposals."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from s3dsl.compiler.nodes import Node, forward
from s3dsl.compiler.ops.base import Batch, Param, Primitive, sequence_logprob


def imh_chain(values: Sequence[float], kind: str, targs: dict, u: torch.Tensor) -> tuple[int, int]:
    """Independent MH over proposals in order; the chain starts at the first. Returns the final
    state's index and how many proposals were accepted. power(alpha): log-ratio (alpha - 1) *
    (log q(x') - log q(x)); tilted(v, beta): (r(x') - r(x)) / beta."""
    scale = targs["alpha"] - 1.0 if kind == "power" else 1.0 / targs["beta"]
    state, accepted = 0, 0
    for j in range(1, len(values)):
        log_ratio = scale * (values[j] - values[state])
        if math.log(float(u[j])) < log_ratio:
            state, accepted = j, accepted + 1
    return state, accepted


def batched(ex: Batch, op, ctx, active) -> None:
    """Per problem and group: the chain's survivor; tilted targets score the clean predictions,
    power targets read log q off the committed log-probs."""
    kind, targs = op.args["target"]
    if kind == "tilted":
        values = ex.score_rows(targs["verifier"], ex.reach(ctx)).tolist()
    else:
        values = sequence_logprob(ex.pop.commit_logp).tolist()
    n, k = ex.n, op.group
    keep = []
    for b in range(len(ex.batch)):
        u = ex.problem_uniforms(b, op, ctx, n)
        for g in range(n // k):
            lo = b * n + g * k
            idx, accepted = imh_chain(values[lo : lo + k], kind, targs, u[g * k : (g + 1) * k])
            keep.append(lo + idx)
            ex.accepted[b] += accepted
            ex.proposed[b] += k - 1
    ex.pop = ex.pop.gather(torch.tensor(keep, device=ex.device))


def _nodes(args: dict) -> tuple[Node, ...]:
    target = args.get("target")
    chain = Node.of("resample", method="imh chain per group", keep="1 per group", cache="carry")
    if isinstance(target, tuple) and target[0] == "tilted":
        verifier = target[1]["verifier"]
        return (
            forward("with masks", "first mask..next block end"),
            Node.of("host", call=f"verifier {verifier}", on="clean prediction"),
            chain,
        )
    return (Node.of("reduce", value="log q = sum of committed log-probs"), chain)


PRIMITIVE = Primitive(
    "mh-accept",
    "Independent Metropolis-Hastings over each group of proposals; one survivor per group.",
    (Param("target", "target", doc="power(alpha) or tilted(verifier, beta)"),),
    aliases=("mh", "imh"),
    needs=(frozenset({"groups"}),),
    clears=frozenset({"groups", "strata"}),
    lower=_nodes,
    count=lambda n, args, group: n // max(group, 1),
    uses_group=True,
    batched=batched,
)
