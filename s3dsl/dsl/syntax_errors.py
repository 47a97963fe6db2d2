"""Syntax errors of the text form in human words: what was found, where, and what would fit."""

from __future__ import annotations

import re

from lark import Token
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken
from lark.lexer import PatternStr

from s3dsl.dsl.grammar import STATEMENT_KEYWORDS, parser
from s3dsl.dsl.source import Locator
from s3dsl.errors import S3DSLError, did_you_mean

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


def syntax_error(exc: UnexpectedInput, text: str, loc: Locator) -> S3DSLError:
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
