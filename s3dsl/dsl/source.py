"""Character offsets -> file spans, for whole files and for text embedded in a YAML scalar.

The text parser works in character offsets of the string it parses; a `SourceMap` (a whole file)
or an `EmbeddedMap` (a YAML scalar's value inside its file) turns them into `Span`s, so an error in
`step: expand(4) | denoise(` points at the right line and column of the YAML file.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Protocol

from s3dsl.spans import Span


class Locator(Protocol):
    """Anything that maps [start, end) offsets of a parsed string to a file span."""

    def span(self, start: int, end: int) -> Span: ...


class SourceMap:
    """Offsets of a whole file's text -> 1-based line/column (end exclusive)."""

    def __init__(self, text: str, file: str):
        self.text = text
        self.file = file
        self._starts = [0] + [i + 1 for i, c in enumerate(text) if c == "\n"]

    def position(self, offset: int) -> tuple[int, int]:
        offset = max(0, min(offset, len(self.text)))
        line = bisect_right(self._starts, offset) - 1
        return line + 1, offset - self._starts[line] + 1

    def span(self, start: int, end: int) -> Span:
        line, column = self.position(start)
        end_line, end_column = self.position(max(start, end))
        return Span(self.file, line, column, end_line, end_column)

    def whole(self) -> Span:
        return self.span(0, len(self.text))


_LOOKAHEAD = 128  # longer than any escape (`\U0001F600`) or usual indentation of a folded line


class EmbeddedMap:
    """Offsets of a YAML scalar's *value* -> spans in the file that holds it.

    YAML may fold line breaks, strip indentation, drop quotes and undo escapes, so value offsets do
    not map to file offsets by a constant shift. We align the value with its source text greedily
    (each value character is matched with the next equal source character). This is exact for plain
    and quoted scalars on one or several lines and for literal block scalars (`|`); for folded
    block scalars (`>`) and escape sequences it is a close best effort. Each character is looked
    for at most _LOOKAHEAD source characters ahead, so the mapping is linear in the text's length.
    """

    def __init__(self, value: str, source: SourceMap, start: int, end: int):
        self.value = value
        self.source = source
        text = source.text
        index: list[int] = []
        p = start
        for c in value:
            q = p
            if not (c.isspace() and q < end and text[q].isspace()):  # folded breaks match as-is
                found = text.find(c, q, min(end, q + _LOOKAHEAD))
                q = found if found >= 0 else end
            if q >= end:  # not found (an escape): keep the current position
                q = min(p, max(start, end - 1))
            index.append(q)
            p = q + 1
        index.append(index[-1] + 1 if index else start)
        self._index = index

    def offset(self, value_offset: int) -> int:
        value_offset = max(0, min(value_offset, len(self.value)))
        return self._index[value_offset]

    def span(self, start: int, end: int) -> Span:
        begin = self.offset(start)
        finish = self.offset(end - 1) + 1 if end > start else begin
        return self.source.span(begin, finish)
