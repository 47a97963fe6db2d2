"""The base transition's math, shared by the reference interpreter and the batched executor.

Everything here works on rows (particles) at once and is a pure function of its inputs and the
particles' keys, so running one row at a time or a thousand gives the same tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from s3dsl.runtime import rng

GUMBEL, RANDOM_RULE, POSITION_SAMPLING = 1, 2, 3  # purposes: each its own counter in a step
NO_CONFIDENCE = -1e30  # a proposal whose confidence is removed ranks after every other, yet
# before the positions that cannot commit (-inf), as a zero probability does in LLaDA's code


def counter(step: int | torch.Tensor, purpose: int) -> int | torch.Tensor:
    return step * 8 + purpose


@dataclass
class Reduced:
    """What is kept of one forward pass, per row: the clean prediction of the generated region and
    the log-probabilities of a window of positions [w0, w1) for the next commit. The full
    [rows, length, vocab] logits are dropped as soon as these are made."""

    clean_tok: torch.Tensor | None  # [R, G] long; None: a forward that keeps its window only
    clean_logp: torch.Tensor | None  # [R, G] float32
    window_logp: torch.Tensor  # [R, w1 - w0, V] float32
    w0: int
    w1: int


def reduce_logits(logits: torch.Tensor, gen_start: int, shifted: bool, w0: int, w1: int,
                  clean: bool = True) -> Reduced:
    """logits [R, L, V] -> Reduced. Dream-style shifted logits are realigned first. Without
    `clean` only the window's log-probs are made (no clean prediction); logits of exactly the
    window's positions ([R, w1 - w0, V], `gen_start` None: the model's output layer ran on them
    alone) are taken as they are."""
    if gen_start is None:
        return Reduced(None, None, torch.log_softmax(logits.float(), dim=-1), w0, w1)
    if shifted:
        logits = torch.cat([logits[:, :1], logits[:, :-1]], dim=1)
    if not clean:
        logits = logits[:, gen_start + w0 : gen_start + w1]
        return Reduced(None, None, torch.log_softmax(logits.float(), dim=-1), w0, w1)
    if gen_start:  # (with the prompt cache the logits are the answer's only: no slice)
        logits = logits[:, gen_start:]
    if logits.dtype != torch.float32:
        logits = logits.float()
    logp = torch.log_softmax(logits, dim=-1)
    clean_logp, clean_tok = logp.max(dim=-1)
    return Reduced(clean_tok, clean_logp, logp[:, w0:w1].contiguous(), w0, w1)


@dataclass(frozen=True)
class Sampler:
    """The official samplers' options beyond LLaDA's default (every default is "off").

    schedule: `even` spreads a block's masks evenly over its steps (LLaDA); `linear` is Dream's:
    with timesteps linspace(1, eps, steps_per_block + 1) and (t, s) the step's pair, commit
    int(masked * (1 - s / t)) positions, all that remain at the block's last step (and the
    `origin` rule commits each masked position with probability 1 - s / t).
    top_p / top_k filter the proposal distribution (Dream's order: temperature, top-p, top-k).
    tempered_confidence: confidence is read from the tempered, filtered distribution (Dream),
    not from the model's own (LLaDA). alg_temp > 0 samples which positions commit, without
    replacement, from softmax(confidence / alg_temp) (Gumbel-top-k), instead of the top k.
    banned_ids are never proposed, the rest renormalised (LLaDA's logits_eos_inf);
    no_confidence_ids may be proposed but are ranked last (LLaDA's confidence_eos_eot_inf).
    """

    schedule: str = "even"
    eps: float = 1e-3
    steps_per_block: int = 1
    top_p: float | None = None
    top_k: int | None = None
    tempered_confidence: bool = False
    alg_temp: float = 0.0
    banned_ids: tuple[int, ...] = ()
    no_confidence_ids: tuple[int, ...] = ()


DEFAULT_SAMPLER = Sampler()


def sampler_of(decode, model) -> Sampler:
    """The `Sampler` a program's decode settings ask for, with the model's EOS / EoT ids."""
    eos = getattr(model.tokenizer, "eos_id", None)
    eot = getattr(model, "eot_id", None)
    ends = tuple(i for i in (eos, eot) if i is not None)
    return Sampler(
        schedule=getattr(decode, "schedule", "even"),
        eps=getattr(decode, "eps", 1e-3),
        steps_per_block=decode.steps_per_block,
        top_p=getattr(decode, "top_p", None),
        top_k=getattr(decode, "top_k", None),
        tempered_confidence=getattr(decode, "tempered_confidence", False),
        alg_temp=getattr(decode, "alg_temp", 0.0),
        banned_ids=ends[:1] if getattr(decode, "logits_eos_inf", False) else (),
        no_confidence_ids=ends if getattr(decode, "confidence_eos_eot_inf", False) else (),
    )


def filter_logp(logp: torch.Tensor, top_p: float | None, top_k: int | None) -> torch.Tensor:
    """Dream's top-p then top-k filters on log-probabilities, renormalised (log-softmax).

    top-p keeps the most probable tokens up to cumulative probability top_p (and always the
    first); top-k keeps the tokens at least as probable as the k-th. With both off (None, top_p
    1, top_k 0: the decode defaults) `logp` itself comes back, not renormalised again.
    """
    filtered = logp
    if top_p is not None and top_p < 1:
        sorted_logp, order = logp.sort(dim=-1, descending=True)
        drop = sorted_logp.softmax(-1).cumsum(-1) > top_p
        drop[..., 1:] = drop[..., :-1].clone()
        drop[..., 0] = False
        filtered = logp.masked_fill(torch.zeros_like(drop).scatter_(-1, order, drop), -math.inf)
    if top_k is not None and top_k > 0:
        kth = filtered.topk(min(top_k, logp.shape[-1]), dim=-1).values[..., -1:]
        filtered = filtered.masked_fill(filtered < kth, -math.inf)
    return logp if filtered is logp else torch.log_softmax(filtered, dim=-1)


def _without(logp: torch.Tensor, ids: tuple[int, ...]) -> torch.Tensor:
    out = logp.clone()
    out[..., list(ids)] = -math.inf
    return torch.log_softmax(out, dim=-1)


def _linear_fraction(
    steps_left: int | torch.Tensor, sampler: Sampler, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Dream's 1 - s/t at this step of the block (float32, as its code computes it), and whether
    this is the block's last step."""
    spb = sampler.steps_per_block
    times = torch.linspace(1, sampler.eps, spb + 1)
    i = torch.as_tensor(spb - steps_left).long().cpu()
    fraction = (1 - times[i + 1] / times[i]).to(device)
    return fraction, (i >= spb - 1).to(device)


def commit_counts(masked_in_region: torch.Tensor, steps_left: int | torch.Tensor) -> torch.Tensor:
    """LLaDA's per-step budget: the region's masks spread evenly over the steps left, remainder
    first. ceil(m / steps_left) at every step reproduces LLaDA's precomputed schedule exactly
    (10 masks over 4 steps: 3, 3, 2, 2) and stays right after a remask adds masks."""
    return torch.div(masked_in_region + (steps_left - 1), steps_left, rounding_mode="floor")


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
    sampler: Sampler = DEFAULT_SAMPLER,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One denoising step on rows: (new gen tokens, commit mask [R, G], x0 log-probs [R, G]):
    `propose_window` on positions [w0, block_end), written into the whole generated region."""
    window_tokens = gen_tokens[:, w0:block_end]
    x0, commit, x0_logp = propose_window(
        window_logp, window_tokens, keys, mask_id=mask_id, w0=w0, steps_left=steps_left,
        step=step, temperature=temperature, rule=rule, threshold=threshold, sampler=sampler,
    )
    new = gen_tokens.clone()
    new[:, w0:block_end] = torch.where(commit, x0, window_tokens)
    full_commit = torch.zeros_like(gen_tokens, dtype=torch.bool)
    full_commit[:, w0:block_end] = commit
    full_logp = torch.zeros(gen_tokens.shape, dtype=torch.float32, device=gen_tokens.device)
    full_logp[:, w0:block_end] = x0_logp
    return new, full_commit, full_logp


def propose_window(
    window_logp: torch.Tensor,
    window_tokens: torch.Tensor,
    keys: torch.Tensor,
    *,
    mask_id: int,
    w0: int,
    steps_left: int | torch.Tensor,
    step: int | torch.Tensor,
    temperature: float,
    rule: str,
    threshold: float,
    sampler: Sampler = DEFAULT_SAMPLER,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One denoising step on the window [w0, w0 + W) of rows: (proposals x0 [R, W] long, commit
    mask [R, W], x0 log-probs [R, W] float32); a caller writes only the window back.

    Proposal x0 ~ softmax(logp / temperature) (Gumbel-max's law, drawn by inverse CDF from one
    uniform per position: `rng.categorical`), never the mask token itself (a trained
    model gives it ~0 probability; an untrained one may not, and committing it would leave the
    position masked); positions eligible are the masked ones of the window (it ends at the block
    end); the `rule` ranks them and the top k (per-row k, as a rank threshold) commit. `sampler`
    adds the official samplers' options (see `Sampler`); x0 log-probs are always the model's own.
    """
    logp = window_logp  # exactly the window's positions
    region = window_tokens == mask_id
    dist = logp if not sampler.banned_ids else _without(logp, sampler.banned_ids)
    tempered = sampler.tempered_confidence and temperature > 0
    if tempered:
        dist = torch.log_softmax(dist / temperature, dim=-1)
    if sampler.top_p is not None or sampler.top_k is not None:
        dist = filter_logp(dist, sampler.top_p, sampler.top_k)
    width = logp.shape[1]
    if temperature > 0:
        x0 = rng.categorical(keys, counter(step, GUMBEL), dist, offset=w0,
                             temperature=1.0 if tempered else temperature, exclude=mask_id)
    else:  # the best non-mask token, without a [rows, width, vocab] copy of logp
        best2 = dist.topk(2, dim=-1).indices
        x0 = torch.where(best2[..., 0] == mask_id, best2[..., 1], best2[..., 0])
    x0_logp = logp.gather(-1, x0.unsqueeze(-1)).squeeze(-1)
    conf_dist = dist if not sampler.no_confidence_ids else _without(dist, sampler.no_confidence_ids)
    if rule in ("confidence", "threshold"):
        conf = x0_logp if conf_dist is logp else conf_dist.gather(-1, x0[..., None]).squeeze(-1)
    elif rule == "margin":
        top2 = conf_dist.exp().topk(2, dim=-1).values
        conf = top2[..., 0] - top2[..., 1]
    elif rule == "entropy":  # = -entropy: low entropy first (a filtered-out token adds 0)
        conf = torch.where(conf_dist > -math.inf, conf_dist.exp() * conf_dist, 0.0).sum(-1)
    elif rule in ("random", "origin"):
        conf = rng.uniform(keys, counter(step, RANDOM_RULE), (width,), offset=w0)
    else:  # pragma: no cover - the compiler rejects other rules
        raise ValueError(rule)
    masked = region.sum(dim=1)
    if sampler.schedule == "linear":
        fraction, last = _linear_fraction(steps_left, sampler, masked.device)
        k = torch.where(last, masked, (masked.float() * fraction).long())
    else:
        k = commit_counts(masked, steps_left)
    if rule == "threshold":
        above = (region & (x0_logp > math.log(threshold))).sum(dim=1)
        k = torch.maximum(k, above)
    if rule == "origin":  # each masked position independently, with probability 1 - s/t
        fraction, last = _linear_fraction(steps_left, sampler, masked.device)
        commit = region & ((conf < fraction) | last)
    else:
        conf = torch.where(region, conf.double().clamp(min=NO_CONFIDENCE), -math.inf)
        if sampler.alg_temp > 0 and rule not in ("random", "threshold"):
            g = rng.gumbel(keys, counter(step, POSITION_SAMPLING), (width,), offset=w0)
            conf = (conf / sampler.alg_temp + g).masked_fill(~region, -math.inf)
        order = conf.argsort(dim=1, descending=True, stable=True)
        ranks = order.argsort(dim=1)  # the inverse permutation: each position's rank
        commit = region & (ranks < k.unsqueeze(1))
    return x0, commit, x0_logp  # float32, as the reduced log-probs


def first_true(flags: torch.Tensor, default: int) -> int:
    """The index of the first True of a short 1-D bool tensor (`default` if none), read on the
    host in one copy (no nonzero or argmax op)."""
    values = flags.tolist()
    return values.index(True) if True in values else default


def window_bounds(gen_tokens: torch.Tensor, mask_id: int, block_end: int) -> tuple[int, int]:
    """The positions a coming commit can touch: from the first masked one to block_end."""
    masked = (gen_tokens[:, :block_end] == mask_id).any(dim=0).nonzero()
    w0 = int(masked[0]) if masked.shape[0] else block_end
    return min(w0, block_end), block_end
