"""A denoise step with static shapes and no host synchronisation (the `static-steps` pass).

The general executor asks the data what to do (which rows still have masks, where the first mask
is, which states are duplicates), and every such question is a device-to-host copy. For steps made
only of `denoise` the answers are known in advance: every row has masks in the current block
(the LLaDA schedule fills a block exactly on its last step), and the window is the whole block.
So a step is a pure function of fixed-shape tensors (forward, log-softmax over the block window,
Gumbel-max proposal, per-row top-k as a rank threshold, scatter) that `torch.compile` can capture
whole, CUDA graphs included. Step numbers enter as 0-d tensors, so one captured graph serves every
step of a block. Eager execution of the same function is the fallback and gives the same tokens
as the reference interpreter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from s3dsl.runtime import transition
from s3dsl.runtime.semantics import arg, committed_logprob

if TYPE_CHECKING:
    from s3dsl.compiler.ir import Op
    from s3dsl.compiler.schedule import StepContext
    from s3dsl.runtime.executor import BatchedExecutor

Logits = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (tokens, owners) -> logits


@dataclass(frozen=True)
class StepSpec:
    """The static part of a step: the same for every step of a block."""

    w0: int  # block start: the window's first generated position
    block_end: int
    temperature: float
    rule: str
    threshold: float
    sampler: transition.Sampler = transition.DEFAULT_SAMPLER


def denoise_step(
    logits_of: Logits,
    tokens: torch.Tensor,
    owners: torch.Tensor,
    keys: torch.Tensor,
    commit_logp: torch.Tensor,
    step: torch.Tensor,
    steps_left: torch.Tensor,
    *,
    gen: int,
    prompt_len: int,
    mask_id: int,
    shifted: bool,
    spec: StepSpec,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step on all rows: (tokens, commit_logp, step_logp), all with their input shapes."""
    red = transition.reduce_logits(
        logits_of(tokens, owners), prompt_len, shifted, spec.w0, spec.block_end
    )
    new, commit, x0_logp = transition.propose_and_commit(
        red.window_logp,
        tokens[:, -gen:],
        keys,
        mask_id=mask_id,
        w0=spec.w0,
        block_end=spec.block_end,
        steps_left=steps_left,
        step=step,
        temperature=spec.temperature,
        rule=spec.rule,
        threshold=spec.threshold,
        sampler=spec.sampler,
    )
    tokens = torch.cat([tokens[:, :-gen], new], dim=1)
    commit_logp = torch.where(commit, x0_logp, commit_logp)
    return tokens, commit_logp, committed_logprob(x0_logp, commit)


def compiled(fn: Callable, device: torch.device) -> Callable:
    """`fn` captured whole (CUDA graphs on a GPU); compiled kernels may round differently."""
    mode = "reduce-overhead" if device.type == "cuda" else None
    return torch.compile(fn, fullgraph=True, dynamic=False, mode=mode)


def run_denoise(ex: BatchedExecutor, op: Op, ctx: StepContext) -> None:
    """A `denoise` stage of the executor's population: all rows in fixed-size chunks through
    the executor's step function (`denoise_step`, compiled or not), with no host sync."""
    d, pop, rows = ex.program.decode, ex.pop, ex.pop.rows
    spec = StepSpec(
        w0=ctx.block_end - d.block_length,
        block_end=ctx.block_end,
        temperature=float(arg(op, "temperature", d.temperature)),
        rule=arg(op, "rule", d.commit),
        threshold=float(arg(op, "threshold", d.threshold)),
        sampler=ex.sampler(d),
    )
    prompt_len = ex.prompt_positions(pop.tokens.shape[1])
    owners = torch.arange(rows, device=ex.device) // ex.n
    step = torch.tensor(ctx.step, device=ex.device)
    steps_left = torch.tensor(ctx.steps_left, device=ex.device)
    outs = ex.in_chunks(
        rows,
        ex.chunk_length(pop.tokens.shape[1]),
        lambda part: ex.step_fn(
            ex.model_logits,
            pop.tokens[part],
            owners[part],
            pop.key[part],
            pop.commit_logp[part],
            step,
            steps_left,
            gen=ex.gen,
            prompt_len=prompt_len,
            mask_id=ex.mask_id,
            shifted=ex.model.shifted_logits,
            spec=spec,
        ),
    )
    pop.tokens, pop.commit_logp, pop.step_logp = (torch.cat(t) for t in zip(*outs))
    pop.slot.fill_(-1)
    ex.counters.forward_rows += rows
    ex.counters.positions += rows * (pop.tokens.shape[1] if ex.prompts is None else ex.gen)
    ex.nfe = [k + ex.n for k in ex.nfe]
