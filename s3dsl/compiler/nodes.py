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


WINDOW_ONLY = "window only"  # a forward's `keeps`: no clean prediction (nothing reads it)


def forward(rows: str, window: str, clean: bool = True) -> Node:
    """A model forward over `rows`, keeping the log-probs of `window` and, unless `clean` is
    False, the clean prediction of the whole answer. A denoise's own forward keeps the window
    only: its commit changes the tokens, so no later stage can read that forward's prediction;
    the output layer and log-softmax then run on the window's positions alone."""
    keeps = {} if clean else {"keeps": WINDOW_ONLY}
    return Node.of("forward", rows=rows, window=window, **UNOPTIMIZED_FORWARD, **keeps)


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
    kind = "update-tokens" if node.get("field") == "tokens" else node.kind
    if kind not in _SHAPES:
        return ""
    some = "<=" if kind == "forward" else ""  # a static step runs every row
    cached = str(node.get("positions", "")).startswith("answer")
    rows = f"B*{s.n_in}"
    tokens = f"[{some}{rows}, {s.gen}]" + (" + prompt cache" if cached else "")
    kv = node.get("kv")
    if kv in ("prefix", "dual"):  # block KV caches: between refreshes a row computes only part
        span = f"{s.block} ({s.gen} at refresh)" if kv == "dual" else f"<={s.gen}"
        tokens, cached = f"[{some}{rows}, {span}] + KV cache", True
    if kind == "forward" and node.get("keeps") == WINDOW_ONLY:
        kind = "forward-window"
    return _SHAPES[kind].format(
        rows=rows, out=f"B*{s.n_out}", g=s.gen, n_in=s.n_in, n_out=s.n_out, block=s.block,
        window=s.window(str(node.get("window", ""))),
        tokens=tokens if cached else tokens.replace(", ", ", P+"),
    )


# Each node kind's tensors (in -> out), as `tensor_shapes` fills them in.
_SHAPES = {
    "forward": "tokens {tokens} -> log-probs [<={rows}, <={window}, V], clean [<={rows}, {g}]",
    "forward-window": "tokens {tokens} -> log-probs [<={rows}, <={window}, V]",
    "static-step": "tokens {tokens} -> log-probs [{rows}, {block}, V] -> tokens [{rows}, {g}]",
    "commit": "log-probs [<={rows}, <={window}, V] -> tokens [{rows}, {g}]",
    "host": "[{rows}] clean predictions -> [{rows}]",
    "gather": "rows [{rows}] -> [{out}]",
    "resample": "weights [B, {n_in}] -> ancestors [B, {n_out}]",
    "reduce": "[{rows}, {g}] -> [{rows}]",
    "update": "[{rows}]",
    "update-tokens": "[{rows}, {g}]",
    "select": "[B, {n_in}] -> [B]",
}


def _show(value: Any) -> str:
    text = str(value)
    return f"'{text}'" if " " in text else text
