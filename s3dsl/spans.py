"""Source positions, so every error can say file:line:column."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Span:
    """A region of a source file; lines and columns are 1-based."""

    file: str
    line: int
    column: int
    end_line: int | None = None
    end_column: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"

    def shifted(self, line_offset: int, column_offset: int) -> Span:
        """A span found inside an embedded text (a YAML scalar) mapped back to the file.

        column_offset applies only to positions on the first line of the embedded text.
        """

        def col(line: int, column: int) -> int:
            return column + column_offset if line == 1 else column

        end_line = None if self.end_line is None else self.end_line + line_offset
        end_col = None
        if self.end_line is not None and self.end_column is not None:
            end_col = col(self.end_line, self.end_column)
        return Span(
            self.file, self.line + line_offset, col(self.line, self.column), end_line, end_col
        )


UNKNOWN = Span("<unknown>", 0, 0)
