"""9x9 sudoku: the prompt is the puzzle (81 chars, `.` for holes) then `=`; the answer the grid.

Scoring is by validity, not by match with the gold grid: generated puzzles need not have a unique
solution (uniqueness checks are slow and not what a search strategy needs), so `is_correct` accepts
any valid full grid consistent with the puzzle's givens. The gold answer is one such solution.
`is_correct(prediction, answer)` only receives the gold grid, so the task remembers the puzzle of
every problem it generated (and always knows the fixed test split); for a grid it has not seen it
falls back to exact match.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from functools import cached_property

from s3dsl.tasks.base import Problem, split_problems

DIGITS = "123456789"


def _units() -> list[list[int]]:
    rows = [[r * 9 + c for c in range(9)] for r in range(9)]
    cols = [[r * 9 + c for r in range(9)] for c in range(9)]
    boxes = [
        [(br + r) * 9 + bc + c for r in range(3) for c in range(3)]
        for br in (0, 3, 6)
        for bc in (0, 3, 6)
    ]
    return rows + cols + boxes


UNITS = _units()
PEERS = [sorted({j for u in UNITS if i in u for j in u} - {i}) for i in range(81)]


def is_valid_grid(grid: str) -> bool:
    """81 digits 1-9 with every row, column and box a permutation of 1..9."""
    if len(grid) != 81 or any(ch not in DIGITS for ch in grid):
        return False
    return all(len({grid[i] for i in unit}) == 9 for unit in UNITS)


def consistent(puzzle: str, grid: str) -> bool:
    """True when `grid` keeps every given of `puzzle` (`.` = hole)."""
    return len(puzzle) == len(grid) == 81 and all(
        p in (".", g) for p, g in zip(puzzle, grid, strict=False)
    )


def random_solved_grid(rng: random.Random) -> str:
    """A uniformly-seeded random full grid by randomized backtracking (candidate order shuffled)."""
    cells = [0] * 81

    def fill(i: int) -> bool:
        if i == 81:
            return True
        used = {cells[j] for j in PEERS[i]}
        options = [d for d in range(1, 10) if d not in used]
        rng.shuffle(options)
        for d in options:
            cells[i] = d
            if fill(i + 1):
                return True
        cells[i] = 0
        return False

    fill(0)
    return "".join(map(str, cells))


@dataclass(frozen=True)
class SudokuTask:
    """Sudoku with `holes` empty cells (train puzzles draw holes from `train_holes`)."""

    holes: int = 40
    train_holes: tuple[int, int] = (10, 50)
    test_size: int = 200
    test_seed: int = 20260102
    name: str = "sudoku"
    gen_length: int = 84
    default_model: str = "sudoku"
    default_verifier: str = "sudoku-constraints"
    _puzzles: dict = field(default_factory=dict, compare=False, hash=False, repr=False)

    def make_problem(self, rng: random.Random, holes: int, pid: str) -> Problem:
        grid = random_solved_grid(rng)
        blanks = set(rng.sample(range(81), holes))
        puzzle = "".join("." if i in blanks else ch for i, ch in enumerate(grid))
        self._puzzles.setdefault(grid, puzzle)
        return Problem(id=pid, prompt=puzzle + "=", answer=grid, target=grid, meta={"holes": holes})

    @cached_property
    def _test(self) -> list[Problem]:
        rng = random.Random(self.test_seed)
        return [
            self.make_problem(rng, self.holes, f"sudoku-test-{i}") for i in range(self.test_size)
        ]

    @cached_property
    def _test_keys(self) -> frozenset[str]:
        return frozenset(p.answer for p in self._test) | frozenset(p.prompt for p in self._test)

    def train_stream(self, seed: int = 0):
        """An endless stream of train problems; never a test grid or test prompt."""
        rng = random.Random(f"sudoku-train-{seed}")
        i = 0
        while True:
            p = self.make_problem(rng, rng.randint(*self.train_holes), f"sudoku-train-{seed}-{i}")
            if p.prompt in self._test_keys or p.answer in self._test_keys:
                continue
            i += 1
            yield p

    def problems(self, split: str = "test", limit: int | None = None) -> list[Problem]:
        """'test': the fixed held-out split; 'train': the first `limit` (default 1000) of seed 0."""
        return split_problems(self._test, self.train_stream(0), split, limit)

    def extract_answer(self, completion: str) -> str | None:
        """The 81-digit grid the completion consists of, or None."""
        text = "".join(completion.split())
        return text if len(text) == 81 and all(ch in DIGITS for ch in text) else None

    def puzzle_for(self, answer: str) -> str | None:
        """The puzzle whose gold grid is `answer`, if this task generated it."""
        if answer not in self._puzzles:
            _ = self._test
        return self._puzzles.get(answer)

    def is_correct(self, prediction: str | None, answer: str) -> bool:
        """Any valid grid consistent with the givens counts (exact match for unknown puzzles)."""
        if prediction is None:
            return False
        if prediction == answer:
            return True
        puzzle = self.puzzle_for(answer)
        return puzzle is not None and is_valid_grid(prediction) and consistent(puzzle, prediction)
