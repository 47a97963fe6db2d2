"""When things run: the step contexts of a decode (which block, which step in it, how far a
commit may reach). The compiler walks them to infer shapes and count forwards; the engine walks
the same ones to run a plan, so the two cannot disagree."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from s3dsl.compiler.ir import DecodeConfig


@dataclass(frozen=True)
class StepContext:
    step: int  # -1 in init, `steps` in final
    block: int
    step_in_block: int
    steps_per_block: int
    steps: int
    block_end: int  # generated positions [0, block_end) may be committed now
    next_block_end: int  # the same for the next step: how far a forward's window must reach

    @property
    def steps_left(self) -> int:
        return self.steps_per_block - self.step_in_block


def step_contexts(decode: DecodeConfig) -> Iterator[StepContext]:
    spb = decode.steps_per_block
    for step in range(decode.steps):
        block, inner = divmod(step, spb)
        nxt = min(step + 1, decode.steps - 1) // spb
        yield StepContext(
            step,
            block,
            inner,
            spb,
            decode.steps,
            (block + 1) * decode.block_length,
            (nxt + 1) * decode.block_length,
        )


def edge_context(decode: DecodeConfig, final: bool) -> StepContext:
    """The context of init (before step 0) and final (after the last step)."""
    first_end = decode.block_length
    if final:
        return StepContext(
            decode.steps,
            decode.num_blocks - 1,
            decode.steps_per_block - 1,
            1,
            decode.steps,
            decode.gen_length,
            decode.gen_length,
        )
    return StepContext(-1, 0, 0, decode.steps_per_block, decode.steps, first_end, first_end)
