"""`DiffusionLM`: the built-in mask predictor behind the runtime's `MaskedLM` protocol."""

from __future__ import annotations

import torch

from s3dsl.models.config import ModelConfig
from s3dsl.models.tokenizer import CharTokenizer
from s3dsl.models.transformer import MaskPredictor


class DiffusionLM:
    """A `MaskedLM`: position-aligned logits (`shifted_logits=False`), char tokenizer."""

    shifted_logits = False

    def __init__(self, module: MaskPredictor, name: str | None = None):
        self.module = module.eval()
        self.config: ModelConfig = module.config
        self.name = name or module.config.name
        self.tokenizer = CharTokenizer(module.config.chars)
        self.mask_id = self.tokenizer.mask_id
        self.vocab_size = module.config.vocab_size

    @torch.inference_mode()
    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        """ids [B, L] long, attention_mask [B, L] bool or None -> logits [B, L, V] (float32)."""
        logits = self.module(ids.to(self.device), attention_mask)
        return logits.float()

    __call__ = forward

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.module.parameters())

    @property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device

    def __repr__(self) -> str:
        return f"DiffusionLM(name={self.name!r}, params={self.num_parameters()})"
