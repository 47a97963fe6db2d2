"""The base transition's math, shared by the reference interpreter and the batched executor.

Everything here works on rows (particles) at once and is a pure function of its inputs and the
particles' keys, so running one row at a time or a thousand gives the same tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from s3dsl.runtime import rng

GUMBEL, RANDOM_RULE = 1, 2  # purposes: each gets its own counter within a step


def counter(step: int | torch.Tensor, purpose: int) -> int | torch.Tensor:
    return step * 8 + purpose


@dataclass
class Reduced:
    """What is kept of one forward pass, per row: the clean prediction of the generated region and
    the log-probabilities of a window of positions [w0, w1) for the next commit. The full
    [rows, length, vocab] logits are dropped as soon as these are made."""

    clean_tok: torch.Tensor  # [R, G] long
    clean_logp: torch.Tensor  # [R, G] float32
    window_logp: torch.Tensor  # [R, w1 - w0, V] float32
    w0: int
    w1: int


def reduce_logits(logits: torch.Tensor, gen_start: int, shifted: bool, w0: int, w1: int) -> Reduced:
    """logits [R, L, V] -> Reduced. Dream-style shifted logits are realigned first."""
    if shifted:
        logits = torch.cat([logits[:, :1], logits[:, :-1]], dim=1)
    logp = torch.log_softmax(logits[:, gen_start:].float(), dim=-1)
    clean_logp, clean_tok = logp.max(dim=-1)
    return Reduced(clean_tok, clean_logp, logp[:, w0:w1].contiguous(), w0, w1)


def commit_counts(masked_in_region: torch.Tensor, steps_left: int | torch.Tensor) -> torch.Tensor:
    """LLaDA's per-step budget: the region's masks spread evenly over the steps left, remainder
    first. ceil(m / steps_left) at every step reproduces LLaDA's precomputed schedule exactly
    (10 masks over 4 steps: 3, 3, 2, 2) and stays right after a remask adds masks."""
    return torch.div(masked_in_region + steps_left - 1, steps_left, rounding_mode="floor")


def propose_and_commit(
    window_logp: torch.Tensor,
    gen_tokens: torch.Tensor,
    keys: torch.Tensor,
    *,
    mask_id: int,
    w0: int,
    block_end: int,
    steps_left: int | torch.Tensor,
    step: int | torch.Tensor,
    temperature: float,
    rule: str,
    threshold: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One denoising step on rows: (new gen tokens, commit mask [R, G], x0 log-probs [R, G]).

    Proposal x0 = argmax(logp + temperature * Gumbel), never the mask token itself (a trained
    model gives it ~0 probability; an untrained one may not, and committing it would leave the
    position masked); positions eligible are the masked ones left of block_end; the `rule`
    ranks them and the top k (per-row k, as a rank threshold) commit.
    """
    logp = window_logp  # exactly positions [w0, block_end)
    rows, width, vocab = logp.shape
    region = gen_tokens[:, w0:block_end] == mask_id
    if temperature > 0:
        noise = rng.gumbel(keys, counter(step, GUMBEL), (width, vocab), offset=w0 * vocab)
        scores = logp.double() + temperature * noise
        scores[..., mask_id] = -math.inf  # a fresh tensor: no copy to exclude the mask token
        x0 = scores.argmax(dim=-1)
    else:  # the best non-mask token, without a [rows, width, vocab] copy of logp
        best2 = logp.topk(2, dim=-1).indices
        x0 = torch.where(best2[..., 0] == mask_id, best2[..., 1], best2[..., 0])
    x0_logp = logp.gather(-1, x0.unsqueeze(-1)).squeeze(-1)
    if rule in ("confidence", "threshold"):
        conf = x0_logp
    elif rule == "margin":
        top2 = logp.exp().topk(2, dim=-1).values
        conf = top2[..., 0] - top2[..., 1]
    elif rule == "entropy":
        conf = (logp.exp() * logp).sum(-1)  # = -entropy: low entropy first
    elif rule == "random":
        conf = rng.uniform(keys, counter(step, RANDOM_RULE), (width,), offset=w0)
    else:  # pragma: no cover - the compiler rejects other rules
        raise ValueError(rule)
    k = commit_counts(region.sum(dim=1), steps_left)
    if rule == "threshold":
        above = (region & (x0_logp > math.log(threshold))).sum(dim=1)
        k = torch.maximum(k, above)
    conf = conf.double().masked_fill(~region, -math.inf)
    order = conf.argsort(dim=1, descending=True, stable=True)
    positions = torch.arange(width, device=order.device).expand_as(order)
    ranks = torch.empty_like(order).scatter_(1, order, positions)
    commit = region & (ranks < k.unsqueeze(1))
    new = gen_tokens.clone()
    new[:, w0:block_end] = torch.where(commit, x0, gen_tokens[:, w0:block_end])
    full_commit = torch.zeros_like(gen_tokens, dtype=torch.bool)
    full_commit[:, w0:block_end] = commit
    full_logp = torch.zeros(gen_tokens.shape, dtype=torch.float32, device=gen_tokens.device)
    full_logp[:, w0:block_end] = x0_logp.float()
    return new, full_commit, full_logp


def window_bounds(gen_tokens: torch.Tensor, mask_id: int, block_end: int) -> tuple[int, int]:
    """The positions a coming commit can touch: from the first masked one to block_end."""
    masked = (gen_tokens[:, :block_end] == mask_id).any(dim=0).nonzero()
    w0 = int(masked[0]) if len(masked) else block_end
    return min(w0, block_end), block_end
