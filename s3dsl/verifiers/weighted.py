"""`WeightedSum`: weighted verifiers as one, e.g. `arith-heuristic + 0.5 * confidence`."""

from __future__ import annotations

import math

from s3dsl.verifiers.base import Candidate, Verifier


def _term_name(weight: float, verifier: Verifier) -> str:
    return verifier.name if weight == 1.0 else f"{weight:g} * {verifier.name}"


class WeightedSum:
    """sum_i w_i * v_i(candidate). Needs the gold answer if any term does (and passes it only to
    those terms). The range is the weighted sum of the terms' ranges."""

    def __init__(self, terms: list[tuple[float, Verifier]]):
        if not terms:
            raise ValueError("a weighted sum needs at least one term")
        for w, _ in terms:
            if not math.isfinite(float(w)):
                raise ValueError(f"weights must be finite, got {w}")
        self.terms = [(float(w), v) for w, v in terms]
        self.name = " + ".join(_term_name(w, v) for w, v in self.terms)
        self.needs_gold = any(v.needs_gold for _, v in self.terms)

    def score(self, candidates: list[Candidate], gold: list[str] | None = None) -> list[float]:
        total = [0.0] * len(candidates)
        for w, v in self.terms:
            scores = v.score(candidates, gold if v.needs_gold else None)
            for i, s in enumerate(scores):
                total[i] += w * s
        return total
