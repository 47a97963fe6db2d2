"""Verifiers: score a candidate's clean prediction, higher is better (see `base`)."""

from s3dsl.verifiers.arith import ArithHeuristic
from s3dsl.verifiers.base import Candidate, Verifier
from s3dsl.verifiers.confidence import Confidence
from s3dsl.verifiers.math_heuristic import MathHeuristic
from s3dsl.verifiers.oracle import Oracle
from s3dsl.verifiers.registry import VERIFIERS, get_verifier
from s3dsl.verifiers.sudoku import SudokuConstraints
from s3dsl.verifiers.weighted import WeightedSum

__all__ = [
    "VERIFIERS",
    "ArithHeuristic",
    "Candidate",
    "Confidence",
    "MathHeuristic",
    "Oracle",
    "SudokuConstraints",
    "Verifier",
    "WeightedSum",
    "get_verifier",
]
