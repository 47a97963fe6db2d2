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
        """Its attributes, then its tensor shapes (`shapes` attribute, set at lowering)."""
        shown = " ".join(f"{k}={_show(v)}" for k, v in self.attrs
                         if v is not None and k != "shapes")
        text = f"{self.kind} {shown}".rstrip()
        shapes = tensor_shapes(self)
        return f"{text}   : {shapes}" if shapes else text


def forward(rows: str, window: str) -> Node:
    """A model forward over `rows`, keeping the log-probs of `window` and the clean prediction."""
    return Node.of("forward", rows=rows, window=window, **UNOPTIMIZED_FORWARD)


@dataclass(frozen=True)
class Shapes:
    """What the compiler knows of a stage's tensors: particles per problem in and out, generated
    positions and the block length. B (problems per batch), P (prompt positions) and V (the
    vocabulary) are known only at run time and stay symbols."""

    n_in: int
    n_out: int
    gen: int
    block: int
    reopens: bool = False  # a remask may re-open earlier blocks: windows reach back to 0

    def window(self, text: str) -> int:
        """The longest window of positions a forward keeps: first mask to the (next) block end."""
        if self.reopens or text.endswith("..end"):
            return self.gen
        return min(self.gen, self.block * (2 if "next block" in text else 1))


def tensor_shapes(node: Node) -> str:
    """The node's tensors as [rows, positions(, vocab)]: what goes in -> what comes out. Forwards
    and commits run only on rows that still hold masks (hence <=)."""
    s = node.get("shapes")
    if not isinstance(s, Shapes):
        return ""
    rows, out_rows, g = f"B*{s.n_in}", f"B*{s.n_out}", s.gen
    window = s.window(str(node.get("window", "")))
    if node.kind == "forward":
        cached = str(node.get("positions", "")).startswith("answer")
        tokens = f"[<={rows}, {g}] + prompt cache" if cached else f"[<={rows}, P+{g}]"
        return f"tokens {tokens} -> log-probs [<={rows}, <={window}, V], clean [<={rows}, {g}]"
    if node.kind == "static-step":
        cached = str(node.get("positions", "")).startswith("answer")
        tokens = f"[{rows}, {g}] + prompt cache" if cached else f"[{rows}, P+{g}]"
        return f"tokens {tokens} -> log-probs [{rows}, {s.block}, V] -> tokens [{rows}, {g}]"
    if node.kind == "commit":
        return f"log-probs [<={rows}, <={window}, V] -> tokens [{rows}, {g}]"
    if node.kind == "host":
        return f"[{rows}] clean predictions -> [{rows}]"
    if node.kind == "gather":
        return f"rows [{rows}] -> [{out_rows}]"
    if node.kind == "resample":
        return f"weights [B, {s.n_in}] -> ancestors [B, {s.n_out}]"
    if node.kind == "reduce":
        return f"[{rows}, {g}] -> [{rows}]"
    if node.kind == "update":
        return f"[{rows}, {g}]" if node.get("field") == "tokens" else f"[{rows}]"
    if node.kind == "select":
        return f"[B, {s.n_in}] -> [B]"
    return ""


def _show(value: Any) -> str:
    text = str(value)
    return f"'{text}'" if " " in text else text
