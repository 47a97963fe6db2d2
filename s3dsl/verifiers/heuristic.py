"""The S3 paper's verifier shape: a weighted sum of four signals in [0, 1] (structure,
arithmetic consistency, model confidence, non-degeneracy). Each task's heuristic says how its
text gives the signals; the weights, their checks and the sum are written once, here."""

from __future__ import annotations

import math

from s3dsl.verifiers.base import Candidate


def check_weight(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"weight '{name}' must be a finite number >= 0, got {value}")
    return value


class FourPartHeuristic:
    """structure * s + arithmetic * a + confidence * c + nondegenerate * n; range
    [0, sum of weights]. Subclasses give `name` and `signals`."""

    name = "four-part-heuristic"
    needs_gold = False
    gil_bound = True  # pure-Python text work: the overlap pass runs it in a process pool

    def __init__(self, structure: float, arithmetic: float, confidence: float,
                 nondegenerate: float):
        self.weights = (
            check_weight("structure", structure),
            check_weight("arithmetic", arithmetic),
            check_weight("confidence", confidence),
            check_weight("nondegenerate", nondegenerate),
        )

    @property
    def max_score(self) -> float:
        return sum(self.weights)

    def signals(self, candidate: Candidate) -> tuple[float, float, float, float]:
        """(structure, arithmetic, confidence, nondegenerate) of one candidate."""
        raise NotImplementedError

    def score(self, candidates: list[Candidate], gold: list[str] | None = None) -> list[float]:
        ws, wa, wc, wn = self.weights
        out = []
        for cand in candidates:
            s, a, c, n = self.signals(cand)
            out.append(ws * s + wa * a + wc * c + wn * n)
        return out
