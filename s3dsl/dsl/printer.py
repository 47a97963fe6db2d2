"""AST -> compact text form, for `--explain` output and round-trip tests.

Printing then re-parsing gives the same AST (spans aside) for every value the text form can hold.
"""

from __future__ import annotations

import math
import re

from s3dsl.dsl.ast import Arg, Call, Expr, Pipeline, Strategy, VerifierDef, VerifierTerm
from s3dsl.dsl.grammar import NAME, VALUE_KEYWORDS
from s3dsl.dsl.text import parse_value
from s3dsl.errors import S3DSLError

_LONE_DOLLAR = re.compile(r"\$\{[^}\n\r]*\}\Z")


def format_string(text: str) -> str:
    """A double-quoted string literal; `${` is escaped so it stays a string, not an Expr."""
    out = text.replace("\\", "\\\\").replace('"', '\\"')
    out = out.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return '"' + out.replace("${", "\\${") + '"'


def _format_expr(expr: Expr) -> str:
    """An Expr is written as-is when it re-parses as the same arithmetic value, else quoted."""
    text = expr.text
    if "\n" not in text and "\r" not in text:
        try:
            if parse_value(text) == expr:
                return text
        except S3DSLError:
            pass
    body = text.replace("\\", "\\\\").replace('"', '\\"')
    body = body.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return '"' + body + '"'


def format_value(value: object) -> str:
    """One argument value in text-form syntax."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value} has no text-form spelling")
        return repr(value)
    if isinstance(value, Expr):
        return _format_expr(value)
    if isinstance(value, Call):
        return format_call(value, empty_parens=True)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if isinstance(value, str):
        if NAME.match(value) and value not in VALUE_KEYWORDS:
            return value
        return format_string(value)
    raise TypeError(f"cannot print {type(value).__name__} as a strategy value")


def _format_args(args: tuple[Arg, ...], kwargs: tuple[tuple[str, Arg], ...]) -> str:
    parts = [format_value(a.value) for a in args]
    parts += [f"{key}={format_value(a.value)}" for key, a in kwargs]
    return ", ".join(parts)


def format_call(call: Call, empty_parens: bool = False) -> str:
    """`name(args)`; a stage without arguments is just `name` unless empty_parens."""
    if not call.args and not call.kwargs:
        return f"{call.name}()" if empty_parens else call.name
    return f"{call.name}({_format_args(call.args, call.kwargs)})"


def format_pipeline(pipeline: Pipeline) -> str:
    """`expand(4) | denoise | score(v)`."""
    return " | ".join(format_call(stage) for stage in pipeline.stages)


def _format_term(term: VerifierTerm, first: bool) -> str:
    weight = term.weight.value
    sign = "+"
    options = [(s.name, s.value) for s in term.options]
    prefix = ""
    if (
        isinstance(weight, Expr)
        and weight.text.startswith("-")
        and _LONE_DOLLAR.match(weight.text[1:])
    ):
        sign, prefix = "-", weight.text[1:] + " * "
    elif isinstance(weight, Expr) and _LONE_DOLLAR.match(weight.text):
        prefix = weight.text + " * "
    elif isinstance(weight, (int, float)) and not isinstance(weight, bool):
        if weight < 0 or (weight == 0 and math.copysign(1.0, weight) < 0):
            sign, weight = "-", -weight
        if weight != 1:
            prefix = format_value(weight) + " * "
    else:
        options.insert(0, ("weight", term.weight))
    body = prefix + term.builtin
    if options:
        body += "(" + ", ".join(f"{k}={format_value(a.value)}" for k, a in options) + ")"
    if first:
        return f"-{body}" if sign == "-" else body
    return f" {sign} {body}"


def format_verifier(verifier: VerifierDef) -> str:
    """`arith-heuristic + 0.5 * confidence(...)`: the right-hand side of a verifier line."""
    return "".join(_format_term(t, i == 0) for i, t in enumerate(verifier.terms))


def format_strategy(strategy: Strategy) -> str:
    """The whole strategy as a `.s3` file (comments are not kept)."""
    header = f"strategy {strategy.name}"
    if strategy.description:
        header += " " + format_string(strategy.description)
    lines = [header]
    lines += [f"param {s.name} = {format_value(s.value.value)}" for s in strategy.params]
    lines += [f"decode {s.name} = {format_value(s.value.value)}" for s in strategy.decode]
    lines += [f"verifier {v.name} = {format_verifier(v)}" for v in strategy.verifiers]
    for section in ("init", "step", "final"):
        pipe: Pipeline = getattr(strategy, section)
        if pipe.stages:
            lines.append(f"{section}: {format_pipeline(pipe)}")
    return "\n".join(lines) + "\n"


def describe_value(value: object) -> str:
    """A value for an error message, as the user would write it (never an internal repr such as
    `Call(name=...)`), cut short when long."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:40] + "...")
    try:
        text = format_value(value)
    except (ValueError, TypeError):
        text = type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."
