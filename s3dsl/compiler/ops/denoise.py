"""denoise: one base transition: a forward pass, a Gumbel-max proposal, commits by rule."""

from __future__ import annotations

import torch

from s3dsl.compiler.nodes import Node, forward
from s3dsl.compiler.ops.base import Batch, Param, Primitive

COMMIT_RULES = ("confidence", "margin", "entropy", "random", "threshold")


def batched(ex: Batch, op, ctx, active) -> None:
    """Rows with a mask before the block end get a forward (from the cache where the plan reuses
    one) and commit on the window [first mask, block end)."""
    if ex.stage.has("static-step"):
        ex.static_denoise(op, ctx)
        return
    if ex.program.schedules and op.uid != 0:  # not the finishing commit (FINISH, uid 0)
        per_schedule(ex, op, ctx)
        return
    masked = ex.gen_tokens()[:, : ctx.block_end] == ex.mask_id
    need = masked.any(dim=1)
    pop = ex.pop
    if bool(need.all()):  # the common case: no nonzero (rows are 0..rows-1)
        rows, n_rows = pop.every_row(), pop.rows
    else:
        rows = need.nonzero().squeeze(1)
        n_rows = rows.shape[0]
        pop.step_logp.zero_()  # (else `commit` writes every row's)
    if not n_rows:
        return
    # the window starts at the first masked position of any row (a row outside `need` has none
    # before the block end); one host read of the block's columns finds it
    w0 = ex.kernels.transition.first_true(masked.any(dim=0), ctx.block_end)
    in_order = ex.ensure_forward(need, ctx.block_end, w0, rows)
    c = ex.cache
    every = slice(None) if n_rows == pop.rows else rows
    window = c.window_logp[:, w0 - c.w0 : ctx.block_end - c.w0]
    if not in_order:  # each row's cache row
        window = window[pop.slot[every]]
    ex.commit(op, ctx, every, window, w0)


def per_schedule(ex: Batch, op, ctx) -> None:
    """Particles following different schedules (`compiler/particle_schedules.py`): one forward
    over every row that needs one, whatever its schedule, then the commit math per schedule (its
    block end, commit budget, rule, temperature)."""
    from s3dsl.compiler.particle_schedules import particle_context  # imports the registry

    pop, gen = ex.pop, ex.gen_tokens()
    pop.step_logp.zero_()
    masked = gen == ex.mask_id
    groups = []
    need = torch.zeros(pop.rows, dtype=torch.bool, device=ex.device)
    for schedule in sorted(set(pop.sched.tolist())):
        decode = ex.program.decode_of(schedule)
        at = particle_context(decode, ctx)
        if at is None:  # this schedule is done: its particles run no more forwards
            continue
        rows = (pop.sched == schedule) & masked[:, : at.block_end].any(dim=1)
        if rows.any():
            groups.append((rows.nonzero().squeeze(1), at, decode))
            need |= rows
    if not groups:
        return
    ex.ensure_forward(need, max(at.block_end for _, at, _ in groups))
    c = ex.cache
    for rows, at, decode in groups:
        w0, _ = ex.kernels.transition.window_bounds(gen[rows], ex.mask_id, at.block_end)
        window = c.window_logp[pop.slot[rows]][:, w0 - c.w0 : at.block_end - c.w0]
        ex.commit(op, at, rows, window, w0, decode)


PRIMITIVE = Primitive(
    "denoise",
    "One base transition: a forward pass, a Gumbel-max proposal, commit positions by rule.",
    (
        Param("rule", "choice", None, COMMIT_RULES, doc="commit rule; default: decode.commit"),
        Param("temperature", "float", None, low=0.0, doc="default: decode.temperature"),
        Param("threshold", "float", None, low=0.0, high=1.0, doc="for rule=threshold"),
    ),
    aliases=("unmask",),
    provides=frozenset({"logprobs"}),
    lower=lambda args: (
        forward("masked in block", "first mask..block end", clean=False),
        Node.of("commit", rule=args.get("rule") or "decode",
                temperature=args.get("temperature"), threshold=args.get("threshold")),
    ),
    changes_tokens=True,
    phases=("step",),
    batched=batched,
)
