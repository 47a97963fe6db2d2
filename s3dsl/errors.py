"""User errors: what is wrong, where, and a hint. The CLI prints them as one line, exit code 2.

The bottom layer: every package may import it; it imports nothing of s3dsl but `s3dsl.spans`."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from s3dsl.spans import Span


class S3DSLError(Exception):
    """An error in user input (a strategy file, a CLI option, a data file), not a bug."""

    def __init__(self, message: str, span: Span | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.span = span
        self.hint = hint

    def render(self) -> str:
        """`file:line:col: error: message (hint: ...)` on one line, printable in any encoding."""
        where = f"{self.span}: " if self.span is not None else ""
        hint = f" (hint: {self.hint})" if self.hint else ""
        return printable(f"{where}error: {self.message}{hint}")

    def __str__(self) -> str:
        return self.render()


def printable(text: str) -> str:
    """Control characters and lone surrogates (from YAML escapes such as "\\ud800") written as
    escapes: user text then keeps an error on one line and cannot break the terminal or encoder."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape(c) for c in text)


def first_line(err: BaseException, limit: int = 200) -> str:
    """The first line of a third-party exception's message, cut to `limit` characters: what an
    error about a model's files quotes of what transformers, tokenizers or safetensors raised."""
    return (str(err).splitlines() or [""])[0][:limit]


def _escape(char: str) -> str:
    return char.encode("unicode_escape").decode("ascii")


def did_you_mean(name: str, choices: Iterable[str]) -> str | None:
    """A hint naming the closest valid choice, or listing the choices when none is close."""
    options = sorted(set(choices))
    cutoff = 0.5 if len(name) <= 4 else 0.6  # one wrong character in `s4` is half the name
    close = difflib.get_close_matches(name, options, n=1, cutoff=cutoff)
    if close:
        return f"did you mean '{close[0]}'?"
    if options and len(options) <= 12:
        return "expected one of: " + ", ".join(options)
    return None
