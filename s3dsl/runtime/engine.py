"""The loop every strategy shares: init, then the step pipeline at each denoising step, a finishing
commit if masks remain, then final. A backend (the reference interpreter or the batched executor)
only says what one stage does to its population; the engine owns the schedule."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from s3dsl.compiler.ir import DecodeConfig, Op, Program


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


class Backend(Protocol):
    def apply(self, op: Op, ctx: StepContext) -> None: ...

    def finish(self, ctx: StepContext) -> None:
        """Commit whatever is still masked (only after a late remask), in one step."""
        ...


def drive(program: Program, backend: Backend, progress=None, observer=None) -> None:
    """`observer(ctx, backend)`, if given (or set as `backend.observer`), is called after init,
    after every step and after final: what s3dsl.trace records a search with."""
    observer = observer if observer is not None else getattr(backend, "observer", None)
    decode = program.decode
    start = edge_context(decode, final=False)
    for op in program.init:
        backend.apply(op, start)
    if observer is not None:
        observer(start, backend)
    for ctx in step_contexts(decode):
        for op in program.step:
            if op.schedule.fires(ctx.step, ctx.step_in_block, ctx.steps_per_block, ctx.steps):
                backend.apply(op, ctx)
        if progress is not None:
            progress(ctx.step + 1, decode.steps)
        if observer is not None:
            observer(ctx, backend)
    end = edge_context(decode, final=True)
    backend.finish(end)
    for op in program.final:
        backend.apply(op, end)
    if observer is not None:
        observer(end, backend)
