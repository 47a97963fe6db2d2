"""A small, safe evaluator for `${...}` expressions (and the parser `when` conditions share).

Strategy files are user input, so nothing here uses Python's `eval`: a tokenizer and a
recursive-descent parser accept only numbers, names, `+ - * / //`, parentheses, `min`/`max`, and
(in conditions) comparisons with `and`/`or`/`not`. Anything else is an S3DSLError with a position.
Conditions are compiled in `s3dsl.dsl.conditions`.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from s3dsl.dsl.limits import MAX_INT, MAX_NESTING, number_literal
from s3dsl.errors import S3DSLError, did_you_mean
from s3dsl.spans import Span

Value = int | float | bool | str
FUNCTIONS = {"min": min, "max": max}
_TOKEN = re.compile(
    r"\s*(?:(?P<number>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>\$\{|//|<=|>=|==|!=|[-+*/(),<>}]))"
)
COMPARE = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
_WORDS = ("and", "or", "not", "true", "false")


@dataclass(frozen=True)
class _Tok:
    kind: str  # "number" | "name" | "op" | "end"
    text: str
    pos: int


@dataclass(frozen=True)
class Node:
    """Expression tree node: kind in num, name, neg, bin, call, cmp, and, or, not."""

    kind: str
    pos: int
    value: object = None  # number, name, operator, function name
    children: tuple[Node, ...] = ()
    in_dollar: bool = False  # a name written inside ${...} (a param, not a runtime signal)
    height: int = 1  # levels below and including this node (bounded by MAX_NESTING)


def quote(text: str) -> str:
    """An expression quoted in a message, cut short: a 40 KB expression still gives one short line.
    """
    return repr(text) if len(text) <= 60 else repr(text[:57] + "...")


def error_span(span: Span | None, text: str, pos: int) -> Span | None:
    """Point inside the expression when the span is known to cover exactly its text."""
    if span is None or span.end_line not in (None, span.line) or span.end_column is None:
        return span
    width = span.end_column - span.column
    shift = 1 if width == len(text) + 2 else 0 if width == len(text) else None
    if shift is None:
        return span
    column = span.column + shift + pos
    return Span(span.file, span.line, column, span.line, column + 1)


def _tokenize(text: str, span: Span | None) -> list[_Tok]:
    tokens: list[_Tok] = []
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            tokens.append(_Tok("end", "", pos))
            return tokens
        match = _TOKEN.match(text, pos)
        if not match:
            char = text[pos]
            raise S3DSLError(
                f"unexpected character {char!r} in expression {quote(text)}",
                error_span(span, text, pos),
                "expressions may use numbers, names, + - * / //, (), min(), max()",
            )
        kind = match.lastgroup or "op"
        tokens.append(_Tok(kind, match.group(kind), match.start(kind)))
        pos = match.end()


class _Parser:
    """Recursive descent over the token list; `condition` enables comparisons and and/or/not."""

    def __init__(self, text: str, span: Span | None, condition: bool):
        self.text = text
        self.span = span
        self.condition = condition
        self.tokens = _tokenize(text, span)
        self.i = 0
        self.dollar = 0  # depth of ${...}: bare names are only allowed inside (values mode)
        self.level = 0  # open parentheses, ${, `not`s and signs: the parser's recursion depth

    # -- helpers
    def peek(self) -> _Tok:
        return self.tokens[self.i]

    def take(self) -> _Tok:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def error(self, message: str, pos: int, hint: str | None = None) -> S3DSLError:
        return S3DSLError(message, error_span(self.span, self.text, pos), hint)

    def expect(self, text: str) -> _Tok:
        tok = self.take()
        if tok.text != text or tok.kind not in ("op", "name"):
            found = "the end" if tok.kind == "end" else repr(tok.text)
            raise self.error(f"expected '{text}' but found {found} in {quote(self.text)}", tok.pos)
        return tok

    def node(self, kind: str, pos: int, value: object = None, children: tuple[Node, ...] = (),
             in_dollar: bool = False) -> Node:
        """A tree node, refused when the tree gets deeper than MAX_NESTING (evaluation recurses
        once per level, so `1+1+...` or `((((1))))` must stop here, with a position)."""
        height = 1 + max((c.height for c in children), default=0)
        if height > MAX_NESTING:
            raise self.error(
                f"expression nested deeper than {MAX_NESTING} levels", pos,
                "parentheses, `not`s and each operator of a chain count one level",
            )
        return Node(kind, pos, value, children, in_dollar, height)

    def enter(self, pos: int) -> None:
        self.level += 1
        if self.level > MAX_NESTING:
            raise self.error(f"expression nested deeper than {MAX_NESTING} levels", pos,
                             "parentheses, `not`s and signs count one level each")

    def at(self, *texts: str) -> bool:
        tok = self.peek()
        return tok.kind in ("op", "name") and tok.text in texts

    # -- grammar
    def parse(self) -> Node:
        node = self.disjunction() if self.condition else self.sum()
        tok = self.peek()
        if tok.kind != "end":
            raise self.error(f"unexpected {tok.text!r} in expression {quote(self.text)}", tok.pos)
        return node

    def disjunction(self) -> Node:
        node = self.conjunction()
        while self.at("or"):
            pos = self.take().pos
            node = self.node("or", pos, children=(node, self.conjunction()))
        return node

    def conjunction(self) -> Node:
        node = self.negation()
        while self.at("and"):
            pos = self.take().pos
            node = self.node("and", pos, children=(node, self.negation()))
        return node

    def negation(self) -> Node:
        if self.at("not"):
            pos = self.take().pos
            self.enter(pos)
            inner = self.negation()
            self.level -= 1
            return self.node("not", pos, children=(inner,))
        return self.comparison()

    def comparison(self) -> Node:
        first = self.sum()
        ops: list[str] = []
        operands = [first]
        while self.at(*COMPARE):
            ops.append(self.take().text)
            operands.append(self.sum())
        if not ops:
            return first
        return self.node("cmp", first.pos, value=tuple(ops), children=tuple(operands))

    def sum(self) -> Node:
        node = self.product()
        while self.at("+", "-"):
            tok = self.take()
            node = self.node("bin", tok.pos, tok.text, (node, self.product()))
        return node

    def product(self) -> Node:
        node = self.unary()
        while self.at("*", "/", "//"):
            tok = self.take()
            node = self.node("bin", tok.pos, tok.text, (node, self.unary()))
        return node

    def unary(self) -> Node:
        if self.at("-", "+"):
            tok = self.take()
            self.enter(tok.pos)
            inner = self.unary()
            self.level -= 1
            return inner if tok.text == "+" else self.node("neg", tok.pos, children=(inner,))
        return self.atom()

    def atom(self) -> Node:
        tok = self.take()
        if tok.kind == "number":
            number = number_literal(tok.text, error_span(self.span, self.text, tok.pos))
            return self.node("num", tok.pos, number)
        if tok.kind == "op" and tok.text == "${":
            self.dollar += 1
            self.enter(tok.pos)
            inner = self.sum()
            self.expect("}")
            self.dollar -= 1
            self.level -= 1
            return inner
        if tok.kind == "op" and tok.text == "(":
            self.enter(tok.pos)
            inner = self.disjunction() if self.condition else self.sum()
            self.expect(")")
            self.level -= 1
            return inner
        if tok.kind == "name":
            return self.name(tok)
        found = "the end" if tok.kind == "end" else repr(tok.text)
        raise self.error(
            f"expected a number, a name or '(' but found {found} in {quote(self.text)}", tok.pos
        )

    def name(self, tok: _Tok) -> Node:
        if self.at("("):
            if tok.text not in FUNCTIONS:
                raise self.error(
                    f"unknown function '{tok.text}'", tok.pos, did_you_mean(tok.text, FUNCTIONS)
                )
            self.take()
            self.enter(tok.pos)
            args = [self.sum()]
            while self.at(","):
                self.take()
                args.append(self.sum())
            self.expect(")")
            self.level -= 1
            if len(args) < 2:
                raise self.error(f"{tok.text}() needs at least two arguments", tok.pos)
            return self.node("call", tok.pos, tok.text, tuple(args))
        if self.condition and tok.text in ("true", "false"):
            return self.node("num", tok.pos, tok.text == "true")
        if tok.text in _WORDS:
            raise self.error(f"'{tok.text}' is only allowed in conditions", tok.pos)
        if not self.condition and not self.dollar:
            raise self.error(
                f"bare name '{tok.text}' outside ${{...}}",
                tok.pos,
                f"write ${{{tok.text}}} to use the param",
            )
        return self.node("name", tok.pos, tok.text, in_dollar=bool(self.dollar))


def parse_expression(text: str, span: Span | None = None, condition: bool = False) -> Node:
    """The expression tree of a `${...}` value (or of a condition when `condition`)."""
    return _Parser(text, span, condition).parse()


def _walk(node: Node) -> Iterable[Node]:
    yield node
    for child in node.children:
        yield from _walk(child)


def references(text: str, span: Span | None = None) -> set[str]:
    """The param names a `${...}` value mentions (what it depends on)."""
    return {n.value for n in _walk(parse_expression(text, span)) if n.kind == "name"}


# ---- compile-time evaluation ----------------------------------------------------------------


def as_number(value: object, what: str, err: Callable[[str], S3DSLError]) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        from s3dsl.dsl.printer import describe_value

        raise err(f"{what} is {describe_value(value)}, not a number")
    return value


def _arith(op: str, a: int | float, b: int | float, err: Callable[[str], S3DSLError]):
    """One operation; results that are not finite or do not fit 64 bits are the user's error
    (Python's big integers would otherwise overflow later, in a float or in SQLite)."""
    if op in ("/", "//") and b == 0:
        raise err("division by zero")
    try:
        result = {"+": operator.add, "-": operator.sub, "*": operator.mul,
                  "/": operator.truediv, "//": operator.floordiv}[op](a, b)
    except OverflowError:
        raise err("the result is too large for a number") from None
    if isinstance(result, float) and not math.isfinite(result):
        raise err(f"the result is {result}, not a finite number")
    if isinstance(result, int) and abs(result) > MAX_INT:
        raise err("the result is too large (the limit is 2**63-1)")
    return result


def evaluate(text: str, env: Mapping[str, Value], span: Span | None = None) -> Value:
    """Evaluate a `${...}` value against params; a lone `${x}` returns x with its own type."""
    root = parse_expression(text, span)

    def err_at(node: Node) -> Callable[[str], S3DSLError]:
        return lambda message: S3DSLError(
            f"{message} in {quote(text)}", error_span(span, text, node.pos)
        )

    def run(node: Node) -> Value:
        if node.kind == "num":
            return node.value  # type: ignore[return-value]
        if node.kind == "name":
            if node.value not in env:
                raise S3DSLError(
                    f"unknown param '{node.value}' in {quote(text)}",
                    error_span(span, text, node.pos),
                    did_you_mean(str(node.value), env),
                )
            return env[node.value]  # type: ignore[index]
        err = err_at(node)
        if node.kind == "neg":
            return -as_number(run(node.children[0]), "the operand of '-'", err)
        if node.kind == "call":
            args = [as_number(run(c), f"an argument of {node.value}()", err) for c in node.children]
            return FUNCTIONS[node.value](args)  # type: ignore[index]
        left, right = (run(c) for c in node.children)
        a = as_number(left, f"the left side of '{node.value}'", err)
        b = as_number(right, f"the right side of '{node.value}'", err)
        return _arith(str(node.value), a, b, err)

    return run(root)


def __getattr__(name: str):
    """`Condition` and `compile_condition` moved to `s3dsl.dsl.conditions` (which imports this
    module); importing them from here still works."""
    if name in ("Condition", "compile_condition"):
        from s3dsl.dsl import conditions

        return getattr(conditions, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
