"""The compact text form (`grammar.lark`): parse trees -> strategy AST, with human syntax errors.

Used for whole `.s3` files and for the pipeline / verifier strings embedded in the YAML form, so
both forms share one grammar and produce the same AST.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken, VisitError
from lark.lexer import PatternStr

from s3dsl.dsl.ast import (
    Arg,
    Call,
    Expr,
    Literal,
    Pipeline,
    Setting,
    Strategy,
    VerifierDef,
    VerifierTerm,
)
from s3dsl.dsl.limits import MAX_NESTING, number_literal
from s3dsl.dsl.source import Locator, SourceMap
from s3dsl.errors import S3DSLError, did_you_mean
from s3dsl.spans import Span

STATEMENT_KEYWORDS = ("strategy", "param", "decode", "verifier", "init", "step", "final")
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:-[A-Za-z0-9_]+)*\Z")
VALUE_KEYWORDS = ("true", "false", "null")


@lru_cache(maxsize=1)
def parser() -> Lark:
    """The LALR parser, built once (the contextual lexer keeps keywords out of value positions)."""
    grammar = Path(__file__).with_name("grammar.lark").read_text(encoding="utf-8")
    return Lark(
        grammar,
        parser="lalr",
        lexer="contextual",
        start=["strategy", "inline_pipeline", "inline_verifier", "inline_value"],
        propagate_positions=True,
        maybe_placeholders=True,
    )


# ---- public entry points --------------------------------------------------------------------


def parse_pipeline(text: str, file: str = "<pipeline>", locator: Locator | None = None) -> Pipeline:
    """`expand(4) | denoise | score(v)` -> Pipeline; an empty text is an empty pipeline."""
    loc = locator or SourceMap(text, file)
    if not text.strip():
        return Pipeline((), loc.span(0, len(text)))
    return _parse(text, "inline_pipeline", loc)


def parse_verifier(
    text: str, file: str = "<verifier>", locator: Locator | None = None
) -> tuple[VerifierTerm, ...]:
    """`arith-heuristic + 0.5 * confidence` -> weighted terms (weight 1.0 when none is written)."""
    return _parse(text, "inline_verifier", locator or SourceMap(text, file))


def parse_value(text: str, file: str = "<value>", locator: Locator | None = None) -> Literal | Expr:
    """One value as written in an argument list (for `--set key=value` overrides)."""
    return _parse(text, "inline_value", locator or SourceMap(text, file)).value


def parse_text_strategy(text: str, filename: str = "<string>") -> Strategy:
    """A whole strategy in the text form (a `.s3` file)."""
    source = SourceMap(text, filename)
    statements = _parse(text, "strategy", source)
    return _assemble(statements, text, source)


# ---- parse + transform ----------------------------------------------------------------------


def _parse(text: str, start: str, loc: Locator):
    try:
        tree = parser().parse(text, start=start)
    except UnexpectedInput as exc:
        raise _syntax_error(exc, text, loc) from None
    _check_depth(tree, loc)  # the transformer recurses once per level
    try:
        return _Builder(text, loc).transform(tree)
    except VisitError as exc:
        if isinstance(exc.orig_exc, S3DSLError):
            raise exc.orig_exc from None
        raise


def _check_depth(tree: Tree, loc: Locator) -> None:
    """Refuse trees deeper than MAX_NESTING (`[[[...`, `((1))`, `1+1+...`), walking without
    recursion, so a hostile value gets an error at its position instead of a RecursionError."""
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_NESTING:
            meta = node.meta
            start = getattr(meta, "start_pos", 0) or 0
            raise S3DSLError(
                f"value nested deeper than {MAX_NESTING} levels",
                loc.span(start, start + 1),
                "brackets, parentheses and each operator of a sum count one level",
            )
        stack.extend((child, depth + 1) for child in node.children if isinstance(child, Tree))


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
class _Builder(Transformer):
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


def _assemble(statements, text: str, source: SourceMap) -> Strategy:
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


# ---- syntax errors in human words -----------------------------------------------------------

_VALUE_START = {"NUMBER", "STRING", "DOLLAR", "NAME", "LSQB", "LPAR", "MINUS"}
_VALUE_START |= {"TRUE", "FALSE", "NULL"}  # everything a value can start with
_STATEMENT_TERMINALS = {"STRATEGY", "PARAM", "DECODE", "VERIFIER", "INIT", "STEP", "FINAL"}
_WORDS = {
    "NAME": "a name",
    "NUMBER": "a number",
    "STRING": "a quoted string",
    "DOLLAR": "a ${...} expression",
    "PIPE": "'|'",
    "_NL": "a line break",
    "$END": "the end of the text",
}
_OPERATORS = {"STAR", "SLASH", "DSLASH", "PLUS", "MINUS"}
_ORDER = ["RPAR", "RSQB", "COMMA", "PIPE", "EQUAL", "COLON", "STAR", "LPAR", "NAME", "_NL"]


def _word(terminal: str) -> str:
    if terminal in _WORDS:
        return _WORDS[terminal]
    try:
        pattern = parser().get_terminal(terminal).pattern
    except KeyError:
        return terminal.lower()
    return f"'{pattern.value}'" if isinstance(pattern, PatternStr) else terminal.lower()


def expected_words(terminals) -> str:
    """{'RPAR', 'COMMA'} -> "expected ')' or ','".

    Value and statement starts are summarized, and arithmetic operators are left out when
    something else would also fit: they are almost never what the user meant to type.
    """
    names = set(terminals)
    words: list[str] = []
    if {"NUMBER", "STRING", "DOLLAR"} <= names:
        names -= _VALUE_START
        words.append("a value")
    if _STATEMENT_TERMINALS <= names:
        names -= _STATEMENT_TERMINALS | {"_NL"}
        words.append("a statement (strategy, param, decode, verifier, init:, step:, final:)")
    if "_NL" in names:
        names.discard("$END")
    if names - _OPERATORS or words:
        names -= _OPERATORS  # `f(1 2)`: "expected ')' or ','" reads better than listing * / + -
    if names & {"RPAR", "RSQB", "COMMA"}:
        names -= {"EQUAL", "LPAR"}  # `f(v w)`: `v=` / `v(` are possible but rarely meant
    rank = {name: i for i, name in enumerate(_ORDER)}
    words += [_word(n) for n in sorted(names, key=lambda n: (rank.get(n, len(_ORDER)), n))]
    if not words:
        return ""
    if len(words) == 1:
        return f"expected {words[0]}"
    return "expected " + ", ".join(words[:-1]) + " or " + words[-1]


def _describe(tok: Token) -> str:
    kind = tok.type
    if kind == "$END":
        return "end of the text"
    if kind == "_NL":
        return "line break"
    if kind == "NAME":
        return f"name '{tok}'"
    if kind == "NUMBER":
        return f"number {tok}"
    if kind == "STRING":
        return f"string {tok}"
    return f"'{str(tok).strip()}'"


def _syntax_error(exc: UnexpectedInput, text: str, loc: Locator) -> S3DSLError:
    if isinstance(exc, UnexpectedCharacters):
        offset = exc.pos_in_stream
        char = text[offset] if offset < len(text) else ""
        span = loc.span(offset, offset + 1)
        if char in "\"'":
            return S3DSLError("unterminated string", span, f"close it with {char} on the same line")
        if text.startswith("${", offset):
            return S3DSLError("unterminated ${...} expression", span, "close it with '}'")
        if char == "$":
            return S3DSLError("'$' must start a ${...} expression", span, "write ${name}")
        if char in "<>!=":
            hint = 'conditions are strings: quote them, e.g. when="ess < 0.5"'
            return S3DSLError(f"unexpected character '{char}'", span, hint)
        return S3DSLError(f"unexpected character {char!r}", span, expected_words(exc.allowed))
    if isinstance(exc, UnexpectedToken):
        tok = exc.token
        expected = set(exc.accepts or exc.expected)  # accepts: exact, after reductions
        if tok.type == "$END":
            offset = len(text.rstrip())
            return S3DSLError(
                "unexpected end of the text",
                loc.span(offset, offset),
                expected_words(expected) or None,
            )
        offset = tok.start_pos
        raw = str(tok)
        offset += len(raw) - len(raw.lstrip(" \t")) if tok.type == "PIPE" else 0
        span = loc.span(offset, max(offset + 1, tok.end_pos))
        hint = expected_words(expected) or None
        if tok.type == "EQUAL" and re.search(r"\b(?:true|false|null)\s*$", text[:offset]):
            hint = "true, false and null are values; they cannot be argument names"
        if _STATEMENT_TERMINALS <= expected and tok.type == "NAME":
            hint = did_you_mean(str(tok), STATEMENT_KEYWORDS)
        return S3DSLError(f"unexpected {_describe(tok)}", span, hint)
    offset = getattr(exc, "pos_in_stream", None) or 0
    return S3DSLError("syntax error", loc.span(offset, offset + 1))
