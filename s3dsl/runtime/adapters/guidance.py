"""LLaDA's unsupervised classifier-free guidance (`cfg_scale`) as a wrapper around any `MaskedLM`.

Every forward runs each row together with its unconditional twin (the prompt replaced by the mask
token, as LLaDA's `generate()` does) in one batched call, and returns
`un + (cfg_scale + 1) * (cond - un)`. Being a model, it serves the reference interpreter and the
executor alike; it offers no prompt cache (the twin has a different prompt). A forward pass
counted by the runtime therefore costs two rows.
"""

from __future__ import annotations

import torch

from s3dsl.runtime.model import MaskedLM, logits_of_last


class GuidedLM:
    def __init__(self, model: MaskedLM, cfg_scale: float):
        self.inner = model
        self.cfg_scale = float(cfg_scale)
        self.name = model.name
        self.mask_id = model.mask_id
        self.vocab_size = model.vocab_size
        self.shifted_logits = model.shifted_logits
        self.tokenizer = model.tokenizer
        self.eot_id = getattr(model, "eot_id", None)

    def forward(
        self, ids: torch.Tensor, attention_mask: torch.Tensor | None, gen_length: int | None = None
    ) -> torch.Tensor:
        return self.forward_last(ids, attention_mask, gen_length, None)

    def forward_last(
        self, ids: torch.Tensor, attention_mask: torch.Tensor | None, gen_length: int | None,
        last: int | None,
    ) -> torch.Tensor:
        """The guided logits of the last `last` positions (None: all); the inner model computes
        only those where it can (`LastLogitsLM`)."""
        if gen_length is None:
            raise ValueError("classifier-free guidance needs gen_length (where the prompt ends)")
        prompt = torch.zeros_like(ids, dtype=torch.bool)
        prompt[:, : ids.shape[1] - gen_length] = True
        uncond = ids.masked_fill(prompt, self.mask_id)
        mask = None if attention_mask is None else attention_mask.repeat(2, 1)
        logits = logits_of_last(self.inner, torch.cat([ids, uncond]), mask, gen_length, last)
        cond, un = logits.float().chunk(2, dim=0)
        return un + (self.cfg_scale + 1) * (cond - un)

    __call__ = forward

    def num_parameters(self) -> int:
        return self.inner.num_parameters()

    @property
    def device(self) -> torch.device:
        return self.inner.device


def with_guidance(model: MaskedLM, cfg_scale: float) -> MaskedLM:
    """The model itself when cfg_scale is 0 (LLaDA's default: guidance off)."""
    return GuidedLM(model, cfg_scale) if cfg_scale > 0 else model
