"""The strategy AST: what the user wrote, untyped, with a source span on every node.

Both surface forms (the YAML file and the compact text grammar) produce exactly these nodes; the
compiler checks names, types and order against the primitive signatures.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from s3dsl.spans import Span


@dataclass(frozen=True)
class Expr:
    """An expression text containing ${name} references, e.g. '${particles} * 2'.

    `text` is the whole scalar as written (with the ${...}); the compiler evaluates it with the safe
    evaluator in `s3dsl.dsl.expr` once params are known.
    """

    text: str


@dataclass(frozen=True)
class Arg:
    value: Literal | Expr
    span: Span


@dataclass(frozen=True)
class Call:
    """One pipeline stage: `name(arg, ..., key=value, ...)`. Names keep the user's spelling."""

    name: str
    args: tuple[Arg, ...]
    kwargs: tuple[tuple[str, Arg], ...]
    span: Span

    def kwarg(self, key: str) -> Arg | None:
        return dict(self.kwargs).get(key)


# A literal argument value: int, float, bool, str (identifiers like `ssp` arrive as str), None
# (`null`), a list of values (raw, without spans), or a nested call written as a value, e.g.
# `target=power(4.0)` or `tilted(v, 0.5)`, which arrives as a `Call` node. An argument that mentions
# ${param} is an `Expr` instead.
Literal = int | float | bool | str | list | Call | None


@dataclass(frozen=True)
class Pipeline:
    stages: tuple[Call, ...]
    span: Span


@dataclass(frozen=True)
class Setting:
    """A `key: value` from `params`, `decode` or a verifier entry."""

    name: str
    value: Arg
    span: Span


@dataclass(frozen=True)
class VerifierTerm:
    """`weight * builtin`, with options for that built-in (e.g. arith-heuristic's weights)."""

    builtin: str
    weight: Arg
    options: tuple[Setting, ...]
    span: Span


@dataclass(frozen=True)
class VerifierDef:
    """A named verifier: a weighted sum of built-in verifiers (often a single one, weight 1)."""

    name: str
    terms: tuple[VerifierTerm, ...]
    span: Span


@dataclass(frozen=True)
class Strategy:
    name: str
    description: str
    params: tuple[Setting, ...]
    decode: tuple[Setting, ...]
    verifiers: tuple[VerifierDef, ...]
    init: Pipeline
    step: Pipeline
    final: Pipeline
    span: Span
    source: str = field(default="", compare=False)  # the file's text, for content hashing
