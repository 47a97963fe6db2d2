"""Task names -> task instances (with their default difficulty)."""

from __future__ import annotations

from collections.abc import Callable

from s3dsl.errors import S3DSLError, did_you_mean
from s3dsl.tasks.arith import ArithTask
from s3dsl.tasks.base import Task
from s3dsl.tasks.sudoku import SudokuTask

_FACTORIES: dict[str, Callable[[], Task]] = {"arith": ArithTask, "sudoku": SudokuTask}
TASKS: tuple[str, ...] = tuple(sorted(_FACTORIES))
_CACHE: dict[str, Task] = {}
# Task packs read the user's files (`--data`); see `s3dsl.tasks.packs`.
PACKS: tuple[str, ...] = ("arc_challenge", "gsm8k", "math500")


def get_task(name: str) -> Task:
    """The named task; instances are shared so the fixed test split is generated once."""
    if name not in _FACTORIES:
        if name.replace("-", "_").lower() in PACKS:  # a pack: its problems come from --data
            from s3dsl.tasks.packs import empty_pack_task

            return empty_pack_task(name)
        raise S3DSLError(f"unknown task '{name}'", hint=did_you_mean(name, TASKS + PACKS))
    if name not in _CACHE:
        _CACHE[name] = _FACTORIES[name]()
    return _CACHE[name]
