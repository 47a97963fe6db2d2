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

import torch

from s3dsl.runtime import transition
from s3dsl.runtime.semantics import committed_logprob

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
