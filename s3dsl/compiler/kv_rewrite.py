"""The block KV cache passes (`prefix-cache`, `dual-cache`): opt-in, approximate plan rewrites.

Fast-dLLM's caches for full-attention diffusion LMs, as plan data. A forward node gets
- `kv`: `prefix` (keys/values of everything before the current block are computed at block
  start and reused by the block's steps; a step recomputes the block and everything after it) or
  `dual` (the suffix after the block is cached too; a step recomputes only the block);
- `refresh`: when a row's cache is rebuilt by a full forward: `block start` (the first forward
  whose window reaches a new block); a test may rewrite it to `every forward` (then exact);
- `computes`: the answer positions one row's forward runs through the model;
- `clean` (stages that score a clean prediction of the whole answer, `score` and `mh-accept`):
  what fills the positions the step did not compute. The choice made here: the cached logits of
  the row's last full forward (its block-start refresh), not a fresh full forward, so scoring
  costs no extra forward. With `prefix` every still-masked position is recomputed, so only
  `dual` reads cached (stale) suffix logits.
The cost model reads the positions per forward off these attributes (`forward_positions`). The
executor's cache lives in `s3dsl.runtime.kv_cache`.
"""

from __future__ import annotations

from s3dsl.compiler import primitives as prims
from s3dsl.compiler.ir import DecodeConfig, Program
from s3dsl.compiler.lowered import Stage, StepPlan
from s3dsl.compiler.nodes import Node
from s3dsl.errors import S3DSLError

KINDS = ("prefix", "dual")
COMPUTES = {
    "prefix": "block..answer end (prefix cached; whole answer at refresh)",
    "dual": "current block (prefix and suffix cached; whole answer at refresh)",
}
CLEAN = {
    "prefix": "fresh logits (every masked position is recomputed)",
    "dual": "cached suffix logits (from the block-start forward)",
}


def block_kv_cache(kind: str):
    """The rewrite of the `<kind>-cache` pass."""
    assert kind in KINDS

    def rewrite(p: StepPlan, program: Program) -> StepPlan:
        if p.has("static-step") or p.has("captured-step"):
            raise S3DSLError(
                f"--enable-pass {kind}-cache needs the general denoise step, not static steps",
                None, "use --opt-level 2, or add --disable-pass static-steps",
            )
        if program.schedules:  # a block cache follows decode's blocks, not each particle's
            raise S3DSLError(
                f"--enable-pass {kind}-cache needs one block schedule for every particle, but "
                "expand(schedules=...) gives particles their own", None,
                "run per-particle schedules without a block KV cache")
        other = {str(n.get("kv")) for n in p.nodes("forward") if n.get("kv")}
        if other:
            raise S3DSLError(
                f"--enable-pass {kind}-cache: the {', '.join(sorted(other))} cache is already on",
                None, "enable one of prefix-cache and dual-cache",
            )

        def mark(stage: Stage, node: Node) -> Node:
            if node.get("rows") == prims.STOPPED_ROWS:
                return node  # `stop` finishes rows with one full forward
            attrs = {"kv": kind, "refresh": "block start", "computes": COMPUTES[kind]}
            if stage.op.name in ("score", "mh-accept"):
                attrs["clean"] = CLEAN[kind]
            return node.replace(**attrs)

        return p.map_nodes("forward", mark)

    return rewrite


def window_end(node: Node, block_end: int, next_block_end: int, gen: int) -> int:
    """Where a forward node's window ends, from its `window` text."""
    window = str(node.get("window", ""))
    if window.endswith("next block end"):
        return next_block_end
    if window.endswith("block end"):
        return block_end
    return gen


def forward_positions(node: Node, w1: int, cached_block: int, decode: DecodeConfig
                      ) -> tuple[int, int]:
    """(answer positions one row of this forward computes, the block its cache holds after it).

    A forward refreshes (computes the whole answer) when its window reaches a block the cache
    was not built for; otherwise `dual` computes the block, `prefix` the block and the suffix.
    """
    gen, length = decode.gen_length, decode.block_length
    kind = node.get("kv")
    if kind not in KINDS:
        return gen, cached_block
    block = (w1 - 1) // length
    if node.get("refresh") == "every forward" or block != cached_block:
        return gen, block
    start = block * length
    return (w1 - start if kind == "dual" else gen - start), block
