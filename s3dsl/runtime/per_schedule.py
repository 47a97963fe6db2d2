"""The batched executor's denoise when particles follow different schedules
(`compiler/particle_schedules.py`): one forward over every row that needs one, whatever its
schedule, then the commit math per schedule (its block end, commit budget, rule, temperature).

A mixin of `BatchedExecutor`: it reads the executor's population, cache and `_commit`.
"""

from __future__ import annotations

import torch

from s3dsl.compiler.ir import Op
from s3dsl.compiler.particle_schedules import particle_context, reach
from s3dsl.compiler.schedule import StepContext
from s3dsl.runtime import transition


class PerScheduleDenoise:
    def denoise_per_schedule(self, op: Op, ctx: StepContext) -> None:
        pop, gen = self.pop, self.gen_tokens()
        pop.step_logp.zero_()
        masked = gen == self.mask_id
        groups = []
        need = torch.zeros(pop.rows, dtype=torch.bool, device=self.device)
        for schedule in sorted(set(pop.sched.tolist())):
            decode = self.program.decode_of(schedule)
            at = particle_context(decode, ctx)
            if at is None:  # this schedule is done: its particles run no more forwards
                continue
            rows = (pop.sched == schedule) & masked[:, : at.block_end].any(dim=1)
            if rows.any():
                groups.append((rows.nonzero().squeeze(1), at, decode))
                need |= rows
        if not groups:
            return
        self.ensure_forward(need, max(at.block_end for _, at, _ in groups))
        c = self.cache
        for rows, at, decode in groups:
            w0, _ = transition.window_bounds(gen[rows], self.mask_id, at.block_end)
            window = c.window_logp[pop.slot[rows]][:, w0 - c.w0 : at.block_end - c.w0]
            self._commit(op, at, rows, window, w0, decode)

    def reach(self, ctx: StepContext) -> int:
        """The window a scoring forward keeps, so the next denoise of every schedule reuses it."""
        if not self.program.schedules:
            return ctx.next_block_end
        return reach(self.program.schedules, ctx, self.program.decode)
