"""The primitive registry: look a primitive up by name or alias.

Each primitive is one module of `s3dsl.compiler.ops` (signature, facts, lowering, batched
semantics); this module collects them and re-exports the shared types and constants.
"""

from __future__ import annotations

from s3dsl.compiler.ops import PRIMITIVES
from s3dsl.compiler.ops.base import (
    AT_CHOICES,
    CONDITION_NAMES,
    REQUIRED,
    SCHEDULE_KEYS,
    Param,
    Primitive,
)
from s3dsl.compiler.ops.denoise import COMMIT_RULES
from s3dsl.compiler.ops.resample import RESAMPLE_METHODS
from s3dsl.compiler.ops.stop import STOPPED_ROWS

__all__ = ["AT_CHOICES", "COMMIT_RULES", "CONDITION_NAMES", "PRIMITIVES", "REQUIRED",
           "RESAMPLE_METHODS", "SCHEDULE_KEYS", "STOPPED_ROWS", "Param", "Primitive",
           "all_names", "canonical", "lookup", "needs"]

_BY_NAME: dict[str, Primitive] = {}
for _p in PRIMITIVES:
    for _name in (_p.name, *_p.aliases):
        _BY_NAME[_name] = _p


def canonical(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def lookup(name: str) -> Primitive | None:
    return _BY_NAME.get(canonical(name))


def all_names() -> list[str]:
    return sorted(_BY_NAME)


def needs(prim: Primitive, args: dict) -> tuple[frozenset[str], ...]:
    """What a stage needs, given its arguments (each primitive says what its arguments add)."""
    return prim.needs_for(args)
