"""Tensors that depend on shapes only (index patterns, scaled counters), made once per process.

Every step of a run asks for the same few (a child's row and number, survivor numbers, the
hash's scaled positions); making them costs a few tensor ops each time, which on a small model
is a measurable part of a step. A constant is shared by every caller: never write into one.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import TypeVar

import torch

T = TypeVar("T")

_MADE: dict[Hashable, object] = {}
LIMIT = 4096  # a bound, not a policy: a long-lived process stays small


def shape_constant(key: Hashable, make: Callable[[], T]) -> T:
    """`make()`, made once per `key` (which says what and for which shapes and device). Inside a
    compiled graph it is made in the graph (a constant from outside would be a graph input)."""
    if torch.compiler.is_compiling():
        return make()
    found = _MADE.get(key)
    if found is None:
        with torch.inference_mode(False), torch.no_grad():  # usable in and out of inference mode
            found = make()
        if len(_MADE) >= LIMIT:
            _MADE.clear()
        _MADE[key] = found
    return found  # type: ignore[return-value]
