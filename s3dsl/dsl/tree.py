"""Parse trees of the text form -> strategy AST nodes, with spans from the source map."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from lark import Token, Transformer, v_args

from s3dsl.dsl.ast import (
    Arg,
    Call,
    Expr,
    Pipeline,
    Setting,
    Strategy,
    VerifierDef,
    VerifierTerm,
)
from s3dsl.dsl.grammar import IDENTIFIER
from s3dsl.dsl.limits import number_literal
from s3dsl.dsl.source import Locator, SourceMap
from s3dsl.errors import S3DSLError
from s3dsl.spans import Span


@dataclass(frozen=True)
class _Val:
    """A value and where it was written (offsets into the parsed text)."""

    value: object
    start: int
    end: int


@dataclass(frozen=True)
class _Arith:
    """Summary of an arithmetic subtree: a plain number, something with ${...}, or constants."""

    kind: str  # "num" | "expr" | "const"
    number: int | float = 0


@dataclass(frozen=True)
class _Args:
    args: tuple[Arg, ...]
    kwargs: tuple[tuple[str, Arg], ...]


@dataclass(frozen=True)
class _Term:
    name: str
    weight: Arg | None
    options: _Args | None
    span: Span


_DOLLAR_IN_QUOTES = re.compile(r"(?<!\\)\$\{")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "$": "$"}


def unescape(body: str) -> str:
    """Undo the string escapes of the text form (\\n \\t \\r \\\\ \\" \\' \\$); others stay."""
    out: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            out.append(_ESCAPES.get(nxt, c + nxt))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def negate_weight(weight: Arg, span: Span) -> Arg:
    """`- w * name`: negate a verifier weight (a number, or an Expr as text)."""
    value = weight.value
    if isinstance(value, bool) or not isinstance(value, (int, float, Expr)):
        raise S3DSLError("a verifier weight must be a number or a ${...} expression", span)
    if isinstance(value, Expr):
        text = value.text
        if text.startswith("-") and re.fullmatch(r"-\$\{[^}]*\}", text):
            return Arg(Expr(text[1:]), weight.span)
        negated = f"-{text}" if re.fullmatch(r"\$\{[^}]*\}", text) else f"-({text})"
        return Arg(Expr(negated), weight.span)
    return Arg(-value, weight.span)


@v_args(meta=True)
class Builder(Transformer):
    """Parse tree -> AST nodes; spans come from the locator, Expr texts from the source slice."""

    def __init__(self, text: str, loc: Locator):
        super().__init__()
        self._text = text
        self._loc = loc

    def _span(self, meta) -> Span:
        return self._loc.span(meta.start_pos, meta.end_pos)

    def _vspan(self, val: _Val) -> Span:
        return self._loc.span(val.start, val.end)

    def _tspan(self, tok: Token) -> Span:
        return self._loc.span(tok.start_pos, tok.end_pos)

    # -- arithmetic values
    def number(self, meta, children):
        return _Arith("num", number_literal(str(children[0]), self._span(meta)))

    def dollar(self, meta, children):
        return _Arith("expr")

    def neg(self, meta, children):
        inner = children[1]
        return _Arith("num", -inner.number) if inner.kind == "num" else inner

    def binop(self, meta, children):
        left, _, right = children
        return _Arith("expr" if "expr" in (left.kind, right.kind) else "const")

    def arith_value(self, meta, children):
        summary = children[0]
        if summary.kind == "num":
            return _Val(summary.number, meta.start_pos, meta.end_pos)
        if summary.kind == "expr":
            text = self._text[meta.start_pos : meta.end_pos]
            return _Val(Expr(text), meta.start_pos, meta.end_pos)
        raise S3DSLError(
            "arithmetic on plain numbers is not a value",
            self._span(meta),
            "write the result, or compute from params with ${...}, e.g. ${particles * 2}",
        )

    # -- other values
    def string(self, meta, children):
        raw = str(children[0])[1:-1]
        value = unescape(raw)
        result = Expr(value) if _DOLLAR_IN_QUOTES.search(raw) else value
        return _Val(result, meta.start_pos, meta.end_pos)

    def ident(self, meta, children):
        return _Val(str(children[0]), meta.start_pos, meta.end_pos)

    def true(self, meta, children):
        return _Val(True, meta.start_pos, meta.end_pos)

    def false(self, meta, children):
        return _Val(False, meta.start_pos, meta.end_pos)

    def null(self, meta, children):
        return _Val(None, meta.start_pos, meta.end_pos)

    def list(self, meta, children):
        items = [c.value for c in children if c is not None]
        return _Val(items, meta.start_pos, meta.end_pos)

    def call_value(self, meta, children):
        call = self.stage(meta, children)
        return _Val(call, meta.start_pos, meta.end_pos)

    # -- arguments and stages
    def positional(self, meta, children):
        val = children[0]
        return ("pos", Arg(val.value, self._vspan(val)), self._vspan(val))

    def keyword(self, meta, children):
        name, val = children
        return ("kw", str(name), Arg(val.value, self._span(meta)), self._tspan(name))

    def args(self, meta, children):
        return _collect_args(children)

    def stage(self, meta, children):
        name = children[0]
        args = children[1] if len(children) > 1 and children[1] is not None else _Args((), ())
        return Call(str(name), args.args, args.kwargs, self._span(meta))

    def pipeline(self, meta, children):
        stages = tuple(c for c in children if isinstance(c, Call))
        return Pipeline(stages, self._span(meta))

    def inline_pipeline(self, meta, children):
        return next(c for c in children if isinstance(c, Pipeline))

    def inline_value(self, meta, children):
        return next(c for c in children if isinstance(c, _Val))

    # -- verifier expressions
    def weight(self, meta, children):
        tok = children[0]
        if tok.type == "DOLLAR":
            return _Val(Expr(str(tok)), meta.start_pos, meta.end_pos)
        value = number_literal(str(tok), self._span(meta))
        return _Val(value, meta.start_pos, meta.end_pos)

    def vterm(self, meta, children):
        weight: Arg | None = None
        name = ""
        options: _Args | None = None
        for child in children:
            if isinstance(child, _Val):
                weight = Arg(child.value, self._vspan(child))
            elif isinstance(child, Token) and child.type == "NAME":
                name = str(child)
            elif isinstance(child, _Args):
                options = child
        return _Term(name, weight, options, self._span(meta))

    def first_term(self, meta, children):
        term = children[-1]
        return ("-", term) if len(children) > 1 else ("+", term)

    def sign(self, meta, children):
        return str(children[0])

    def verifier_expr(self, meta, children):
        signed = [children[0]]
        signed += [(children[i], children[i + 1]) for i in range(1, len(children), 2)]
        return tuple(_verifier_term(sign, term) for sign, term in signed)

    def inline_verifier(self, meta, children):
        return next(c for c in children if isinstance(c, tuple))

    # -- statements of a whole file
    def header(self, meta, children):
        desc = unescape(str(children[1])[1:-1]) if len(children) > 1 else None
        return ("header", str(children[0]), desc, self._span(meta))

    def param(self, meta, children):
        name, val = children
        if not IDENTIFIER.match(str(name)):
            raise S3DSLError(
                f"param name '{name}' is not an identifier",
                self._tspan(name),
                "use letters, digits and '_' (params are referenced as ${name})",
            )
        return ("param", _setting(str(name), val, self._vspan(val), self._span(meta)))

    def decode(self, meta, children):
        name, val = children
        return ("decode", _setting(str(name), val, self._vspan(val), self._span(meta)))

    def verifier(self, meta, children):
        name, terms = children
        return ("verifier", VerifierDef(str(name), terms, self._span(meta)))

    def section(self, meta, children):
        keyword, pipe = children
        return ("section", str(keyword), pipe, self._span(meta))

    def strategy(self, meta, children):
        return [c for c in children if isinstance(c, tuple)]


def _setting(name: str, val: _Val, value_span: Span, span: Span) -> Setting:
    return Setting(name, Arg(val.value, value_span), span)


def _collect_args(items) -> _Args:
    """Positionals first, then unique keywords; anything else is a structure error."""
    args: list[Arg] = []
    kwargs: list[tuple[str, Arg]] = []
    seen: dict[str, Span] = {}
    for item in items:
        if item[0] == "pos":
            if kwargs:
                raise S3DSLError(
                    "positional argument after a keyword argument",
                    item[2],
                    "put positional arguments before key=value ones",
                )
            args.append(item[1])
        else:
            _, key, arg, key_span = item
            if key in seen:
                raise S3DSLError(
                    f"duplicate keyword argument '{key}'",
                    key_span,
                    f"it is already given at {seen[key]}",
                )
            seen[key] = key_span
            kwargs.append((key, arg))
    return _Args(tuple(args), tuple(kwargs))


def _verifier_term(sign: str, term: _Term) -> VerifierTerm:
    options = term.options or _Args((), ())
    if options.args:
        raise S3DSLError(
            f"verifier '{term.name}' options must be key=value",
            options.args[0].span,
            f"e.g. {term.name}(weight=1.0)",
        )
    weight = term.weight
    settings: list[Setting] = []
    for key, arg in options.kwargs:
        if key == "weight":
            if weight is not None:
                raise S3DSLError(
                    f"verifier '{term.name}' has two weights",
                    arg.span,
                    "write either `w * name` or `name(weight=w)`, not both",
                )
            weight = Arg(arg.value, arg.span)
        else:
            settings.append(Setting(key, arg, arg.span))
    if weight is None:
        weight = Arg(1.0, term.span)
    if sign == "-":
        weight = negate_weight(weight, term.span)
    return VerifierTerm(term.name, weight, tuple(settings), term.span)


def assemble(statements, text: str, source: SourceMap) -> Strategy:
    """Statements -> Strategy; each param/decode/verifier/section may appear once."""
    file = source.file
    name = Path(file).stem
    description = ""
    params: list[Setting] = []
    decode: list[Setting] = []
    verifiers: list[VerifierDef] = []
    sections: dict[str, Pipeline] = {}
    seen: dict[tuple[str, str], Span] = {}

    def once(kind: str, key: str, span: Span) -> None:
        if (kind, key) in seen:
            what = f"{kind} '{key}'" if key else f"'{kind}' line"
            raise S3DSLError(f"duplicate {what}", span, f"first given at {seen[(kind, key)]}")
        seen[(kind, key)] = span

    for stmt in statements:
        kind = stmt[0]
        if kind == "header":
            once("strategy", "", stmt[3])
            name, description = stmt[1], stmt[2] or ""
        elif kind in ("param", "decode"):
            setting = stmt[1]
            once(kind, setting.name, setting.span)
            (params if kind == "param" else decode).append(setting)
        elif kind == "verifier":
            vdef = stmt[1]
            once("verifier", vdef.name, vdef.span)
            verifiers.append(vdef)
        else:
            _, section, pipe, span = stmt
            once(f"{section}:", "", span)
            sections[section] = pipe
    start = Span(file, 1, 1)
    return Strategy(
        name=name,
        description=description,
        params=tuple(params),
        decode=tuple(decode),
        verifiers=tuple(verifiers),
        init=sections.get("init", Pipeline((), start)),
        step=sections.get("step", Pipeline((), start)),
        final=sections.get("final", Pipeline((), start)),
        span=source.whole(),
        source=text,
    )
