"""What both interpreters share beyond the primitives: per-problem uniforms, the finishing step,
`when` conditions and trace snapshots.

Each primitive's own math lives in its module (`s3dsl.compiler.ops`); the names re-exported
below keep their old import path.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import torch

from s3dsl.compiler.ir import Op
from s3dsl.compiler.ops.base import (
    arg,
    committed_logprob,
    sequence_logprob,
    window_committed_logprob,
)
from s3dsl.compiler.ops.expand import children
from s3dsl.compiler.ops.mh_accept import imh_chain
from s3dsl.compiler.ops.prune import prune_survivors
from s3dsl.compiler.ops.resample import (
    resample_logweights,
    resample_logweights_rows,
    survivor_keys,
)
from s3dsl.compiler.ops.stratify import score_strata
from s3dsl.compiler.ops.weight import weight_update
from s3dsl.runtime import resampling, rng
from s3dsl.runtime.engine import StepContext

__all__ = ["NAN", "arg", "children", "committed_logprob", "condition_env", "finishing_context",
           "imh_chain", "problem_uniforms", "prune_survivors", "resample_logweights",
           "resample_logweights_rows", "score_strata", "search_snapshot", "sequence_logprob",
           "survivor_keys", "weight_update", "window_committed_logprob"]

NAN = float("nan")


def problem_uniforms(key: int, op: Op, ctx: StepContext, count: int) -> torch.Tensor:
    """The uniforms a population-level stage (resample, mh-accept) draws for one problem."""
    return rng.uniform(torch.tensor([rng.mix_int(key, op.uid, ctx.step)]), 0, (count,))[0]


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
