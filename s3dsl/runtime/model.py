"""The one model interface the runtime uses, for every masked diffusion LM.

The built-in model, a `transformers` masked LM and an official LLaDA/Dream checkpoint are all
reached through `MaskedLM`; the runtime never looks past it.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class Tokenizer(Protocol):
    """Text <-> token ids. `eos_id` ends a completion; everything after it is padding."""

    pad_id: int
    eos_id: int

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...


@runtime_checkable
class MaskedLM(Protocol):
    """A mask predictor: one forward pass gives logits for every position.

    `shifted_logits` is True for Dream-style models, whose logits at position i predict token i+1;
    the runtime undoes the shift so that everything downstream sees position-aligned logits.
    """

    name: str
    mask_id: int
    vocab_size: int
    shifted_logits: bool
    tokenizer: Tokenizer

    def forward(
        self,
        ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        gen_length: int | None = None,
    ) -> torch.Tensor:
        """ids: [B, L] long; attention_mask: [B, L] bool (False = padding) -> logits [B, L, V].

        The last `gen_length` positions are the answer; a model may ignore it.
        """
        ...

    def num_parameters(self) -> int: ...

    @property
    def device(self) -> torch.device: ...


@runtime_checkable
class PromptCachingLM(MaskedLM, Protocol):
    """A `MaskedLM` that can encode a prompt once and run only the answer positions after.

    `exact_prompt_cache` is True when that gives exactly `forward`'s logits (the prompt never
    attends to the answer); otherwise caching is an approximation, used only when asked for.
    """

    exact_prompt_cache: bool

    def encode_prompt(self, ids: torch.Tensor, attention_mask: torch.Tensor) -> object:
        """Left-padded prompts [P, Lp] -> an opaque cache."""
        ...

    def forward_answer(
        self, cache: object, rows: torch.Tensor, answer_ids: torch.Tensor
    ) -> torch.Tensor:
        """answer_ids [B, G], row i continuing cached prompt rows[i] -> logits [B, G, V]."""
        ...
