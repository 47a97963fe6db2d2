"""The nodes of a lowered step plan: what one stage does, as data a pass can rewrite.

A stage (one primitive call in the strategy) lowers to a short sequence of nodes: `forward` (which
rows and positions go through the model, with which cache), `commit`, `host` (a verifier or other
Python call), `gather` (expand), `resample`, `reduce`, `update`, `select`, `drop-cache`, or a fused
`static-step`. The executor reads these nodes; the cost model counts them; `--explain` prints them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# What a forward node says before any pass rewrites it: the reference interpreter's way.
UNOPTIMIZED_FORWARD: dict[str, Any] = {
    "cache": "fresh",  # fresh: compute every row; reuse: rows whose state is cached are free
    "calls": "per particle",  # per particle | batched
    "dedup": "no",
    "positions": "prompt+answer",  # or answer (prompt cached)
    "chunk": "all rows",  # or memory budget
}


@dataclass(frozen=True)
class Node:
    kind: str
    attrs: tuple[tuple[str, Any], ...] = ()

    @staticmethod
    def of(kind: str, **attrs: Any) -> Node:
        return Node(kind, tuple(attrs.items()))

    def get(self, key: str, default: Any = None) -> Any:
        return dict(self.attrs).get(key, default)

    def replace(self, **changes: Any) -> Node:
        merged = dict(self.attrs)
        merged.update(changes)
        return Node(self.kind, tuple(merged.items()))

    def describe(self) -> str:
        shown = " ".join(f"{k}={_show(v)}" for k, v in self.attrs if v is not None)
        return f"{self.kind} {shown}".rstrip()


def forward(rows: str, window: str) -> Node:
    """A model forward over `rows`, keeping the log-probs of `window` and the clean prediction."""
    return Node.of("forward", rows=rows, window=window, **UNOPTIMIZED_FORWARD)


def _show(value: Any) -> str:
    text = str(value)
    return f"'{text}'" if " " in text else text
