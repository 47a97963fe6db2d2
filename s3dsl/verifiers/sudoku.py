"""`sudoku-constraints`: how close a 9x9 grid is to a valid solution that keeps the givens."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from s3dsl.verifiers.base import Candidate

DIGITS = frozenset("123456789")


def _units() -> tuple[tuple[int, ...], ...]:
    rows = [tuple(r * 9 + c for c in range(9)) for r in range(9)]
    cols = [tuple(r * 9 + c for r in range(9)) for c in range(9)]
    boxes = [
        tuple((br * 3 + r) * 9 + bc * 3 + c for r in range(3) for c in range(3))
        for br in range(3)
        for bc in range(3)
    ]
    return tuple(rows + cols + boxes)


UNITS = _units()  # the 27 rows, columns and boxes, as cell indices


@lru_cache(maxsize=4096)
def parse_givens(prompt: str) -> tuple[tuple[int, str], ...]:
    """(cell, digit) for each given of the prompt's 81-character puzzle (before the `=`)."""
    puzzle = prompt.strip()
    if puzzle.endswith("="):
        puzzle = puzzle[:-1].rstrip()
    puzzle = puzzle[-81:]
    return tuple((i, ch) for i, ch in enumerate(puzzle) if ch in DIGITS)


@dataclass(frozen=True)
class GridSignals:
    constraints: float  # mean over the 27 units of (distinct digits / 9)
    givens: float  # share of givens kept (1.0 when the prompt has none)


@lru_cache(maxsize=65536)
def grid_signals(prompt: str, completion: str) -> GridSignals:
    """Both signals of one grid; malformed cells (not 1-9, missing) count as blanks."""
    text = "".join(completion.split())  # subword tokenizers may decode `5 3 4 ...`
    cells = [ch if ch in DIGITS else "" for ch in text[:81]]
    cells += [""] * (81 - len(cells))
    distinct = 0
    for unit in UNITS:
        distinct += len({cells[i] for i in unit} - {""})
    constraints = distinct / (9 * len(UNITS))
    if len(text) > 81:  # extra characters: a malformed grid, scaled down
        constraints *= 81 / len(text)
    givens = parse_givens(prompt)
    kept = sum(1 for i, d in givens if cells[i] == d) / len(givens) if givens else 1.0
    return GridSignals(constraints, kept)


class SudokuConstraints:
    """Smooth share of satisfied row/column/box constraints times the share of givens kept.

    Range [0, 1]; 1.0 exactly for a valid solution that keeps every given. Never raises on a
    malformed grid (wrong length, non-digits): those cells simply satisfy nothing.
    """

    name = "sudoku-constraints"
    needs_gold = False
    gil_bound = True  # pure-Python grid checks: the overlap pass runs it in a process pool

    def score(self, candidates: list[Candidate], gold: list[str] | None = None) -> list[float]:
        out = []
        for c in candidates:
            s = grid_signals(c.prompt, c.completion)
            out.append(s.constraints * s.givens)
        return out
