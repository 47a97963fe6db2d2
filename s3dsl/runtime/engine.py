"""The loop every strategy shares: init, then the step pipeline at each denoising step, a finishing
commit if masks remain, then final. A backend (the reference interpreter or the batched executor)
only says what one stage does to its population; the engine owns the schedule."""

from __future__ import annotations

from typing import Protocol

from s3dsl.compiler.ir import Op, Program
from s3dsl.compiler.schedule import StepContext, edge_context, step_contexts

__all__ = ["Backend", "StepContext", "drive", "edge_context", "step_contexts"]


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
