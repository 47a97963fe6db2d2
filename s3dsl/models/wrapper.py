"""`DiffusionLM`: the built-in mask predictor behind the runtime's `MaskedLM` protocol."""

from __future__ import annotations

import torch

from s3dsl.models.block_kv import BlockKVForwards
from s3dsl.models.config import ModelConfig
from s3dsl.models.tokenizer import CharTokenizer
from s3dsl.models.transformer import MaskPredictor, PromptCache


class DiffusionLM(BlockKVForwards):
    """A `MaskedLM`: position-aligned logits (`shifted_logits=False`), char tokenizer."""

    shifted_logits = False

    def __init__(self, module: MaskPredictor, name: str | None = None):
        self.module = module.eval()
        self.config: ModelConfig = module.config
        self.name = name or module.config.name
        self.tokenizer = CharTokenizer(module.config.chars)
        self.mask_id = self.tokenizer.mask_id
        self.vocab_size = module.config.vocab_size

    # no_grad, not inference_mode: torch.compile (inductor, CUDA graphs) cannot compile an
    # inference_mode region inside a captured step; under the callers' inference_mode it is one
    @torch.no_grad()
    def forward(
        self,
        ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        gen_length: int | None = None,
    ) -> torch.Tensor:
        """ids [B, L] long, attention_mask [B, L] bool or None -> logits [B, L, V] (float32)."""
        return self.forward_last(ids, attention_mask, gen_length, None)

    @torch.no_grad()  # as `forward`
    def forward_last(
        self,
        ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        gen_length: int | None,
        last: int | None,
    ) -> torch.Tensor:
        """`forward`'s logits [B, last, V] of the last `last` positions only (None: all)."""
        if gen_length is None and self.config.isolate_prompt:
            gen_length = ids.shape[1]  # no prompt given: everything is answer
        logits = self.module(ids.to(self.device), attention_mask, gen_length, last=last)
        return logits.float()

    @property
    def exact_prompt_cache(self) -> bool:
        """True when `encode_prompt` + `forward_answer` give exactly `forward`'s answer logits."""
        return self.config.isolate_prompt

    @torch.inference_mode()
    def encode_prompt(self, ids: torch.Tensor, attention_mask: torch.Tensor) -> PromptCache:
        """Keys/values of left-padded prompts, computed once and shared by their particles."""
        return self.module.encode_prompt(ids.to(self.device), attention_mask.to(self.device))

    @torch.no_grad()  # as `forward`
    def forward_answer(
        self, cache: PromptCache, rows: torch.Tensor, answer_ids: torch.Tensor,
        window: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        """Answer logits [B, G, V] (float32), of positions [w0, w1) only with `window`; row i
        continues cached prompt `rows[i]`."""
        return self.module.forward_answer(cache, rows, answer_ids.to(self.device),
                                          window=window).float()

    __call__ = forward

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.module.parameters())

    @property
    def device(self) -> torch.device:
        # the embedding's device, read through (every forward asks; `parameters()` costs ~10 us)
        return self.module.transformer.wte.weight.device

    def __repr__(self) -> str:
        return f"DiffusionLM(name={self.name!r}, params={self.num_parameters()})"
