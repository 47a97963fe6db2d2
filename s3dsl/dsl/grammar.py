"""The text form's grammar (`grammar.lark`): the parser, built once, and the name rules."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from lark import Lark

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
