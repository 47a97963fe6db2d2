"""`confidence`: the model's own belief in its clean prediction, for any task and model."""

from __future__ import annotations

import math
from collections.abc import Sequence

from s3dsl.verifiers.base import Candidate

# A single token can carry log-prob -inf (a Gumbel draw at high temperature); clamping keeps the
# mean finite so that exp(score / beta) in resampling never sees nan.
LOGPROB_FLOOR = -100.0
# Below every clamped non-empty mean, so an empty prediction always ranks last.
EMPTY_SCORE = -1.0e4


def mean_logprob(logprobs: Sequence[float]) -> float | None:
    """Mean of the clamped, finite log-probs; None when there are none."""
    if not logprobs:
        return None
    total = 0.0
    for lp in logprobs:
        total += lp if lp >= LOGPROB_FLOOR else LOGPROB_FLOOR  # also maps nan to the floor
    return total / len(logprobs)


class Confidence:
    """Mean log-probability of the generated tokens. Range [-100, 0]; empty -> -1e4."""

    name = "confidence"
    needs_gold = False

    def score(self, candidates: list[Candidate], gold: list[str] | None = None) -> list[float]:
        out = []
        for c in candidates:
            m = mean_logprob(c.token_logprobs)
            out.append(EMPTY_SCORE if m is None else m)
        return out


def geometric_mean_prob(logprobs: Sequence[float]) -> float:
    """exp(mean log-prob), in [0, 1]; 0 when there are no tokens."""
    m = mean_logprob(logprobs)
    return 0.0 if m is None else math.exp(m)
