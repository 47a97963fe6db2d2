"""Verifiers by name, as strategy files and the CLI refer to them."""

from __future__ import annotations

import inspect
from collections.abc import Callable

from s3dsl.errors import S3DSLError, did_you_mean
from s3dsl.verifiers.arith import ArithHeuristic
from s3dsl.verifiers.base import Verifier
from s3dsl.verifiers.confidence import Confidence
from s3dsl.verifiers.math_heuristic import MathHeuristic
from s3dsl.verifiers.oracle import Oracle
from s3dsl.verifiers.sudoku import SudokuConstraints

VERIFIERS: dict[str, tuple[Callable[..., Verifier], str]] = {
    "arith-heuristic": (
        ArithHeuristic,
        "structure + arithmetic + confidence + non-degeneracy of an equation chain (0..4)",
    ),
    "sudoku-constraints": (
        SudokuConstraints,
        "share of row/column/box constraints met times share of givens kept (0..1)",
    ),
    "math-heuristic": (
        MathHeuristic,
        "free text: answer structure + a op b = c consistency + confidence + non-degeneracy "
        "(0..3)",
    ),
    "confidence": (Confidence, "mean log-probability of the generated tokens (<= 0)"),
    "oracle": (Oracle, "exact match with the gold answer; analysis and upper bounds only"),
}


def normalize(name: str) -> str:
    """`Arith_Heuristic` -> `arith-heuristic`."""
    return name.strip().lower().replace("_", "-")


def option_names(factory: Callable[..., Verifier]) -> list[str]:
    params = inspect.signature(factory).parameters.values()
    return [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def get_verifier(name: str, **options: object) -> Verifier:
    """Build the named verifier; unknown names and options are user errors with a hint."""
    key = normalize(name)
    if key not in VERIFIERS:
        raise S3DSLError(f"unknown verifier '{name}'", hint=did_you_mean(key, VERIFIERS))
    factory, _ = VERIFIERS[key]
    valid = option_names(factory)
    kwargs = {k.replace("-", "_"): v for k, v in options.items()}
    for k in kwargs:
        if k not in valid:
            hint = did_you_mean(k, valid) if valid else "it takes no options"
            if valid and hint and hint.startswith("did you mean"):
                hint += " (valid options: " + ", ".join(valid) + ")"
            raise S3DSLError(f"verifier '{key}' has no option '{k}'", hint=hint)
    try:
        return factory(**kwargs)
    except (TypeError, ValueError) as e:
        raise S3DSLError(f"bad option for verifier '{key}': {e}") from e
