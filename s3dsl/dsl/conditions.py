"""Runtime `when` conditions: checked once at compile time, then evaluated per problem at each
stage the condition guards (`Condition.evaluate`). Arithmetic is in floats and never raises."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable, Mapping

from s3dsl.dsl.expr import (
    COMPARE,
    FUNCTIONS,
    Node,
    Value,
    as_number,
    error_span,
    parse_expression,
    quote,
)
from s3dsl.errors import S3DSLError, did_you_mean
from s3dsl.spans import Span

Fn = Callable[[Mapping[str, float]], object]


def _safe_div(op: str) -> Callable[[float, float], float]:
    """Runtime division never raises: x/0 is +-inf (nan for 0/0), so a condition stays total."""

    def div(a: float, b: float) -> float:
        if b == 0:
            return math.nan if a == 0 else math.copysign(math.inf, a)
        return a / b if op == "/" else a // b

    return div


_RUNTIME_OPS: dict[str, Callable[[float, float], float]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": _safe_div("/"),
    "//": _safe_div("//"),
}


class _UnknownName(Exception):
    """A condition read a name whose value only the run knows."""


class _Known(dict):
    def __missing__(self, key: str) -> float:
        raise _UnknownName(key)


class Condition:
    """A compiled `when` condition, e.g. `step >= 4 and ess < 0.3`; call `.evaluate(env)`."""

    def __init__(self, text: str, names: frozenset[str], fn: Fn):
        self.text = text
        self.names = names  # runtime names it reads
        self._fn = fn

    def evaluate(self, env: Mapping[str, float]) -> bool:
        try:
            return bool(self._fn(env))
        except KeyError as exc:
            raise S3DSLError(
                f"condition {quote(self.text)} needs a value for {exc.args[0]!r}"
            ) from None

    def decide(self, known: Mapping[str, float]) -> bool | None:
        """The condition's value when the names in `known` settle it, else None (the compiler's
        view: the static signals `n`, `step`, `block`, `steps` are known per schedule path, the
        rest only at run time). Sound, not complete: `and`/`or` are read left to right, so
        `n == 1 and max_score < 2` is False where n is 4, but `max_score < 2 and n == 1` is None.
        """
        try:
            return bool(self._fn(_Known(known)))
        except _UnknownName:
            return None

    def __repr__(self) -> str:
        return f"Condition({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Condition) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)


def compile_condition(
    text: str,
    allowed_names: Iterable[str],
    span: Span | None = None,
    params: Mapping[str, Value] | None = None,
) -> Condition:
    """Check a condition once at compile time; `${p}` parts are folded to the param's value."""
    allowed = set(allowed_names)
    root = parse_expression(text, span, condition=True)
    used: set[str] = set()

    def build(node: Node) -> Fn:
        kind = node.kind
        if kind == "num":  # runtime arithmetic is in floats: it gives inf, never OverflowError
            constant = node.value if isinstance(node.value, bool) else float(node.value)
            return lambda env: constant
        if kind == "name" and node.in_dollar:
            where = error_span(span, text, node.pos)
            if params is None or node.value not in params:
                raise S3DSLError(
                    f"unknown param '{node.value}' in condition {quote(text)}",
                    where,
                    did_you_mean(str(node.value), params or {}),
                )
            value = params[str(node.value)]
            number = as_number(value, f"param '{node.value}'", lambda m: S3DSLError(m, where))
            constant = float(number)
            return lambda env: constant
        if kind == "name":
            name = str(node.value)
            if name not in allowed:
                raise S3DSLError(
                    f"unknown name '{name}' in condition {quote(text)}",
                    error_span(span, text, node.pos),
                    did_you_mean(name, allowed),
                )
            used.add(name)
            return lambda env: float(env[name])
        parts = [build(child) for child in node.children]
        if kind == "neg":
            (inner,) = parts
            return lambda env: -inner(env)
        if kind == "not":
            (inner,) = parts
            return lambda env: not inner(env)
        if kind == "and":
            left, right = parts
            return lambda env: left(env) and right(env)
        if kind == "or":
            left, right = parts
            return lambda env: left(env) or right(env)
        if kind == "call":
            fn = FUNCTIONS[str(node.value)]
            return lambda env: fn(p(env) for p in parts)
        if kind == "bin":
            op = _RUNTIME_OPS[str(node.value)]
            left, right = parts
            return lambda env: op(left(env), right(env))
        return _chain(tuple(COMPARE[o] for o in node.value), parts)  # type: ignore[union-attr]

    fn = build(root)  # fills `used`
    return Condition(text, frozenset(used), fn)


def _chain(ops: tuple[Callable[[object, object], bool], ...], parts: list[Fn]) -> Fn:
    """`a < b <= c` means `a < b and b <= c`, as in Python."""

    def compare(env: Mapping[str, float]) -> bool:
        values = [p(env) for p in parts]
        return all(op(values[i], values[i + 1]) for i, op in enumerate(ops))

    return compare
