"""Verifiers computable from tensors: the same scores as their `score(candidates)`, without
decoding text, so a captured step (`s3dsl.runtime.captured`) can score on the device.

A tensor scorer takes the clean prediction of every row, (tokens [R, G] long, log-probs [R, G]
float32, filled [R, G] bool), and the end-of-sequence id, and returns float64 scores [R]. It must
equal the text verifier bit for bit on CPU: `confidence` sums the clamped log-probs left to right
(a cumulative sum is sequential there), as `mean_logprob` does in Python floats.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from s3dsl.verifiers.confidence import EMPTY_SCORE, LOGPROB_FLOOR
from s3dsl.verifiers.registry import normalize

TensorScorer = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, "int | None"], torch.Tensor]


def completion_lengths(tokens: torch.Tensor, eos_id: int | None) -> torch.Tensor:
    """Tokens before the first end-of-sequence token, per row (the cut of `completion_text`)."""
    width = tokens.shape[1]
    if eos_id is None:
        return torch.full((tokens.shape[0],), width, dtype=torch.long, device=tokens.device)
    is_eos = tokens == eos_id
    first = is_eos.long().argmax(dim=1)
    return torch.where(is_eos.any(dim=1), first, width)


def confidence_scores(
    tokens: torch.Tensor, logps: torch.Tensor, filled: torch.Tensor, eos_id: int | None
) -> torch.Tensor:
    """`Confidence.score` of every row: the mean of the log-probs before the cut, each clamped
    at LOGPROB_FLOOR (nan too), EMPTY_SCORE for an empty completion."""
    cut = completion_lengths(tokens, eos_id)
    lp = logps.double()
    lp = torch.where(lp >= LOGPROB_FLOOR, lp, LOGPROB_FLOOR)
    before = torch.arange(tokens.shape[1], device=tokens.device).view(1, -1) < cut.view(-1, 1)
    total = torch.where(before, lp, 0.0).cumsum(dim=1)[:, -1]
    mean = total / cut.clamp(min=1).double()
    return torch.where(cut > 0, mean, EMPTY_SCORE)


TENSOR_SCORERS: dict[str, TensorScorer] = {"confidence": confidence_scores}


def tensor_scorer(terms: Sequence[tuple[float, str, tuple[tuple[str, Any], ...]]]
                  ) -> TensorScorer | None:
    """The tensor form of a verifier spec's weighted sum, or None where some term needs text
    (or takes options). One term of weight 1 is the bare verifier; otherwise the sum starts at
    0.0 and adds w * score term by term, as `WeightedSum` does."""
    scorers = []
    for weight, builtin, options in terms:
        scorer = TENSOR_SCORERS.get(normalize(builtin))
        if scorer is None or options:
            return None
        scorers.append((float(weight), scorer))
    if len(scorers) == 1 and scorers[0][0] == 1.0:
        return scorers[0][1]

    def weighted(tokens, logps, filled, eos_id):
        total = torch.zeros(tokens.shape[0], dtype=torch.float64, device=tokens.device)
        for weight, scorer in scorers:
            total = total + weight * scorer(tokens, logps, filled, eos_id)
        return total

    return weighted
