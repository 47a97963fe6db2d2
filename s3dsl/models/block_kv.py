"""What a model wrapper needs for the block KV caches (`s3dsl.runtime.kv_cache`): the native
transformer's forwards that keep every layer's keys/values, and its span forward. Shared by the
built-in `DiffusionLM` and the official-layout `CheckpointLM` (LLaDA, Dream)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from s3dsl.models.transformer import KeyValues, MaskPredictor, PromptCache


class BlockKVForwards:
    """A mixin for wrappers that hold a native `MaskPredictor` as `self.module`."""

    module: MaskPredictor

    @property
    def kv_shape(self) -> tuple[int, int, int]:
        cfg = self.module.config
        return cfg.n_layers, cfg.kv_heads, cfg.d_model // cfg.n_heads

    @property
    def _device(self) -> torch.device:
        return next(self.module.parameters()).device

    @torch.inference_mode()
    def forward_keep(
        self, ids: torch.Tensor, attention_mask: torch.Tensor, gen_length: int,
        keep_kv: list[KeyValues], last: int | None = None,
    ) -> torch.Tensor:
        gen = gen_length if self.module.config.isolate_prompt else None
        dev = self._device
        return self.module(ids.to(dev), attention_mask.to(dev), gen, keep_kv, last=last).float()

    @torch.inference_mode()
    def forward_answer_keep(
        self, cache: PromptCache, rows: torch.Tensor, answer_ids: torch.Tensor,
        keep_kv: list[KeyValues],
    ) -> torch.Tensor:
        return self.module.forward_answer(cache, rows, answer_ids.to(self._device), keep_kv).float()

    @torch.inference_mode()
    def forward_span(
        self, ids: torch.Tensor, positions: torch.Tensor, attn_mask: torch.Tensor,
        context: Callable[[int], KeyValues], at: int,
    ) -> torch.Tensor:
        return self.module.forward_span(ids, positions, attn_mask, context, at).float()
