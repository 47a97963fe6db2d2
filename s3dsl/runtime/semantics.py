"""Per-problem semantics of the population-level stages, shared by both interpreters.

Pure functions of per-problem values (scores, log-weights, uniforms), so the reference
interpreter and the batched executor cannot disagree about what a stage means.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import torch

from s3dsl.compiler.ir import Op
from s3dsl.runtime import resampling, rng
from s3dsl.runtime.engine import StepContext

NAN = float("nan")


def arg(op: Op, name: str, default):
    """An op argument, or the decode default when the strategy left it unset."""
    value = op.args.get(name)
    return default if value is None else value


def sequence_logprob(commit_logp: torch.Tensor) -> torch.Tensor:
    """log q(x) of each row (or of one particle): the float64 sum of its committed tokens'
    log-probs. Both interpreters call this, so nll, `select(by=logprob)` and power targets agree
    bit for bit."""
    return commit_logp.double().sum(dim=-1)


def committed_logprob(x0_logp: torch.Tensor, commit: torch.Tensor) -> torch.Tensor:
    """The float64 log-prob of what one denoise step committed, per row (`weight(by=logprob)`)."""
    return torch.where(commit, x0_logp.double(), 0.0).sum(dim=-1)


def problem_uniforms(key: int, op: Op, ctx: StepContext, count: int) -> torch.Tensor:
    """The uniforms a population-level stage (resample, mh-accept) draws for one problem."""
    return rng.uniform(torch.tensor([rng.mix_int(key, op.uid, ctx.step)]), 0, (count,))[0]


def resample_logweights(scores: Sequence[float], logw: Sequence[float], args: dict) -> torch.Tensor:
    source = args["weights"]
    if source == "auto":
        source = "score" if not any(math.isnan(x) for x in scores) else "logw"
    if source == "score":
        return torch.tensor(scores, dtype=torch.float64) / args["beta"]
    return torch.tensor(logw, dtype=torch.float64)


def resample_logweights_rows(score: torch.Tensor, logw: torch.Tensor, args: dict) -> torch.Tensor:
    """`resample_logweights` of every problem's row of [B, n] scores and log-weights at once."""
    source = args["weights"]
    score, logw = score.double(), logw.double()
    if source == "auto":
        by_score = ~torch.isnan(score).any(dim=1, keepdim=True)
    else:
        by_score = torch.full((score.shape[0], 1), source == "score")
    return torch.where(by_score, score / args["beta"], logw)


def prune_survivors(scores: Sequence[float], n: int) -> list[int]:
    """`prune`: the indices of the n best scores (nan ranks last, ties go to the earlier
    particle), in ascending order so the population layout stays canonical."""
    key = [(-x if not math.isnan(x) else math.inf, i) for i, x in enumerate(scores)]
    return sorted(i for _, i in sorted(key)[:n])


def score_strata(scores: torch.Tensor, strata: int) -> torch.Tensor:
    """Quantile bins of the scores: rank * strata // n (ties by index)."""
    order = torch.sort(-scores, stable=True).indices
    ranks = torch.empty_like(order)
    ranks[order] = torch.arange(len(scores))
    return ranks * strata // len(scores)


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


def remask_positions(
    committed: torch.Tensor, logp: torch.Tensor, keys: torch.Tensor, op: Op, ctx: StepContext
) -> torch.Tensor:
    """Rows x positions to re-mask: the `count` (or `fraction` of committed) least confident
    committed tokens, or random ones; a rank threshold per row, as in the commit rule."""
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


def finishing_context(ctx: StepContext, gen: int) -> StepContext:
    """The step that commits whatever is masked at once (the engine's finish, and `stop`)."""
    return StepContext(ctx.step, ctx.block, 0, 1, ctx.steps, gen, gen)


def condition_env(logw: Sequence[float], scores: Sequence[float], answers: Sequence,
                  ctx: StepContext, beta: float = 1.0) -> dict:
    """The names a `when` condition sees, for one problem. `answers` are the particles' extracted
    answers of their last scored prediction (None: none yet), for `agreement` and `n_answers`;
    `beta` is the stage's own (resample's), for `score_ess`, the ESS of exp(score / beta): nan
    while a particle is unscored."""
    weights = resampling.normalize(torch.tensor(list(logw), dtype=torch.float64))
    all_scores = torch.tensor(list(scores), dtype=torch.float64)
    score_ess = NAN
    if len(all_scores) and not bool(torch.isnan(all_scores).any()):
        score_ess = resampling.ess(resampling.normalize(all_scores / beta))
    scores = [x for x in scores if not math.isnan(x)]
    held = Counter(a for a in answers if a is not None)
    return {
        "agreement": max(held.values()) / len(answers) if held else 0.0,
        "n_answers": len(held),
        "ess": resampling.ess(weights),
        "score_ess": score_ess,
        "step": ctx.step,
        "block": ctx.block,
        "steps": ctx.steps,
        "n": len(logw),
        "max_score": max(scores) if scores else NAN,
        "mean_score": sum(scores) / len(scores) if scores else NAN,
    }


def search_snapshot(problem_id: str, scores: list[float], answers: list, ess: float | None,
                    resamples: int, remasks: int, accepted: int, proposed: int,
                    forwards: int) -> dict:
    """One problem's search state, the same fields from both backends: particle count, scores
    (finite ones), the latest resample's ESS, cumulative event counts, distinct answers."""
    finite = [x for x in scores if x == x and abs(x) != math.inf]
    return {
        "id": problem_id, "particles": len(scores),
        "score_min": min(finite) if finite else None,
        "score_mean": sum(finite) / len(finite) if finite else None,
        "score_max": max(finite) if finite else None,
        "ess": ess, "resamples": resamples, "remasks": remasks, "accepted": accepted,
        "proposed": proposed, "distinct_answers": len({a for a in answers if a is not None}),
        "forwards": forwards,
    }
