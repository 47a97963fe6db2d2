"""Log-likelihood requests for a masked diffusion LM: a Monte-Carlo estimate of the ELBO.

A masked diffusion LM has no exact log p(continuation | context). Its training objective is a
lower bound (the ELBO) of it: with L continuation tokens, draw a masking ratio t, mask each
continuation token with probability t, and score the model's log-probabilities of the masked
tokens, weighted by 1/t. LLaDA's lm-eval model (ML-GSAI/LLaDA, eval_llada.py) estimates it the
same way, which this module follows in its choices:
- the number of masked tokens m is drawn on 1..L and the masked positions uniformly among the
  continuation's, so the weight 1/t is L/m;
- the m of one request's samples are stratified (evenly spaced from a uniform start, modulo L),
  which lowers the variance of the average without biasing it;
- the context is never masked; tokens follow the context with nothing after them.
Unlike LLaDA's, which draws from torch's global generator, every request draws from its own
generator, seeded from (seed, context, continuation): a request's estimate does not depend on
the order, the batch or the other requests lm-eval sends, and repeats give the same number.
`greedy`: whether greedy decoding (one token per forward, the most confident first, as LLaDA's
`suffix_greedy_prediction`) writes exactly the continuation; it costs L forwards, so it runs
only when asked (`greedy_check=true`), and is False otherwise, as in LLaDA's recommended setting.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence

import torch

from s3dsl.errors import S3DSLError


def request_generator(seed: int, *texts: str) -> torch.Generator:
    """A generator of its own for one request (CPU: the same draws on every device)."""
    digest = hashlib.blake2b("\x00".join((str(seed), *texts)).encode(), digest_size=8).digest()
    gen = torch.Generator(device="cpu")
    gen.manual_seed(int.from_bytes(digest, "little") & (2**63 - 1))
    return gen


def encode_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """lm-eval's convention: spaces that end the context belong to the continuation, and the
    continuation's ids are those of the whole text after the context's."""
    spaces = len(context) - len(context.rstrip())
    if spaces:
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    try:
        whole = tokenizer.encode(context + continuation)
        head = tokenizer.encode(context) if context else []
    except (ValueError, KeyError) as err:
        raise S3DSLError(f"loglikelihood: the model's tokenizer cannot encode the request "
                         f"({err})", None,
                         "check the task against the model's vocabulary") from None
    return head, whole[len(head):]


def masked_counts(n_samples: int, length: int, gen: torch.Generator) -> torch.Tensor:
    """How many continuation tokens each sample masks: on 1..length, stratified."""
    start = torch.randint(1, length + 1, (), generator=gen).item()
    spaced = torch.round(torch.linspace(start, start + (n_samples - 1) * length / n_samples,
                                        n_samples)).long()
    return (spaced - 1) % length + 1


def _aligned(logits: torch.Tensor, shifted: bool) -> torch.Tensor:
    """Dream-style logits (position i predicts token i+1) moved to their positions."""
    return torch.cat([logits[:, :1], logits[:, :-1]], dim=1) if shifted else logits


class ElboScorer:
    """Estimates log p(continuation | context) for `model` with `samples` masked forwards per
    request, `batch` rows a forward. `forwards` counts the rows run.

    `cfg` > 0 is LLaDA's unsupervised classifier-free guidance: logits u + (cfg + 1)(c - u), with
    u from the same rows with the context masked too (two rows per sample)."""

    def __init__(self, model, samples: int, batch: int, seed: int, cfg: float = 0.0):
        if samples < 1:
            raise S3DSLError(f"model_args: mc_samples must be at least 1, got {samples}")
        if not cfg >= 0:
            raise S3DSLError(f"model_args: mc_cfg must be at least 0, got {cfg}")
        self.model, self.samples, self.batch, self.seed = model, samples, max(1, batch), seed
        self.cfg = float(cfg)
        self.forwards = 0

    def _logits(self, rows: torch.Tensor, answer: int) -> torch.Tensor:
        """Position-aligned float logits of `rows`, whose last `answer` positions are the
        continuation (guided when `cfg` > 0)."""
        n = rows.shape[0]
        if self.cfg > 0:
            unconditional = rows.clone()
            unconditional[:, :rows.shape[1] - answer] = self.model.mask_id
            rows = torch.cat([rows, unconditional])
        self.forwards += rows.shape[0]
        rows = rows.to(self.model.device)
        attention = torch.ones_like(rows, dtype=torch.bool)
        logits = _aligned(self.model.forward(rows, attention, answer),
                          self.model.shifted_logits).float()
        if self.cfg > 0:
            conditional, unconditional = logits[:n], logits[n:]
            logits = unconditional + (self.cfg + 1) * (conditional - unconditional)
        return logits

    @torch.no_grad()
    def elbo(self, context: list[int], continuation: list[int], gen: torch.Generator) -> float:
        n = len(continuation)
        if n == 0:
            return 0.0
        target = torch.tensor(continuation)
        prefix = torch.tensor(context, dtype=torch.long)
        counts = masked_counts(self.samples, n, gen)
        total = 0.0
        for lo in range(0, self.samples, self.batch):
            m = counts[lo:lo + self.batch]
            ranks = torch.stack([torch.randperm(n, generator=gen) for _ in range(len(m))])
            masked = ranks < m[:, None]  # m[i] positions of row i, uniformly chosen
            noisy = torch.where(masked, torch.tensor(self.model.mask_id), target)
            rows = torch.cat([prefix.expand(len(m), -1), noisy], dim=1)
            logp = torch.log_softmax(self._logits(rows, n)[:, len(context):], dim=-1).cpu()
            token_logp = logp.gather(-1, target.expand(len(m), -1)[..., None])[..., 0]
            total += float(((token_logp * masked).sum(dim=1) * n / m).sum())
        return total / self.samples

    @torch.no_grad()
    def greedy(self, context: list[int], continuation: list[int]) -> bool:
        """Whether committing the most confident argmax, one position a forward, writes the
        continuation."""
        n, mask = len(continuation), self.model.mask_id
        row = torch.tensor([*context, *([mask] * n)])[None]
        for _ in range(n):
            answer = row[0, len(context):]
            logp = torch.log_softmax(self._logits(row, n)[0, len(context):], dim=-1).cpu()
            best, token = logp.max(dim=-1)
            best = torch.where(answer == mask, best, torch.tensor(-torch.inf))
            at = int(best.argmax())
            row[0, len(context) + at] = token[at]
        return row[0, len(context):].tolist() == list(continuation)


def rolling_windows(ids: Sequence[int], max_length: int | None) -> Iterator[tuple[list, list]]:
    """(context, continuation) windows that cover `ids` once each: the first as long as the
    model takes, with no context; each later one half that, after the tokens just before it."""
    ids = list(ids)
    if not ids:
        return
    size = len(ids) if max_length is None else max_length
    yield [], ids[:size]
    step, at = max(1, size // 2), size
    while at < len(ids):
        piece = ids[at:at + step]
        yield ids[at + len(piece) - size:at], piece
        at += len(piece)
