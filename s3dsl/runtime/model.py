"""The one model interface the runtime uses, for every masked diffusion LM.

The built-in model, a `transformers` masked LM and an official LLaDA/Dream checkpoint are all
reached through `MaskedLM`; the runtime never looks past it.
"""

from __future__ import annotations

import inspect
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
class LastLogitsLM(MaskedLM, Protocol):
    """A `MaskedLM` that can run its output layer on the last positions only (the answer, and
    one before it for shifted logits): the same logits there, without the prompt's, which the
    runtime never reads (`forward_logits`)."""

    def forward_last(
        self,
        ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        gen_length: int | None,
        last: int | None,
    ) -> torch.Tensor:
        """`forward`'s logits [B, last, V] of the last `last` positions (None: every one)."""
        ...


def logits_kept(model: MaskedLM, width: int, gen_length: int) -> int:
    """How many of the last positions a forward computes logits for: the answer's (one more
    for shifted logits) where the model can run its output layer on those alone
    (`LastLogitsLM`), else all `width`."""
    if getattr(model, "forward_last", None) is None:
        return width
    return min(width, gen_length + int(model.shifted_logits))


def logits_of_last(model: MaskedLM, ids: torch.Tensor, attention_mask: torch.Tensor | None,
                   gen_length: int | None, last: int | None) -> torch.Tensor:
    """The logits of the last `last` positions (None: all): `forward_last` where the model has
    it, else sliced from `forward`'s (for wrappers of any model: guidance, timing proxies)."""
    own = getattr(model, "forward_last", None)
    if own is not None:
        return own(ids, attention_mask, gen_length, last)
    logits = model.forward(ids, attention_mask, gen_length)
    return logits if last is None else logits[:, logits.shape[1] - last:]


def forward_logits(model: MaskedLM, ids: torch.Tensor, attention_mask: torch.Tensor | None,
                   gen_length: int) -> torch.Tensor:
    """The logits of the last `logits_kept` positions: all the runtime reads of a forward."""
    kept = logits_kept(model, ids.shape[1], gen_length)
    return logits_of_last(model, ids, attention_mask, gen_length,
                          None if kept == ids.shape[1] else kept)


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
        self, cache: object, rows: torch.Tensor, answer_ids: torch.Tensor,
        window: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        """answer_ids [B, G], row i continuing cached prompt rows[i] -> logits [B, G, V]; with
        `window` (w0, w1), those of answer positions [w0, w1) only (the runtime asks for them
        when a forward keeps no clean prediction)."""
        ...


_TAKES_WINDOW: dict[type, bool] = {}


def answer_logits(model: PromptCachingLM, cache: object, rows: torch.Tensor,
                  answer_ids: torch.Tensor, window: tuple[int, int] | None) -> torch.Tensor:
    """`forward_answer`'s logits, of answer positions [w0, w1) only with `window`: asked of the
    model where its `forward_answer` takes `window` (the built-in models), else sliced from the
    whole answer's (a model or wrapper written before it could)."""
    if window is None:
        return model.forward_answer(cache, rows, answer_ids)
    kind = type(model)
    takes = _TAKES_WINDOW.get(kind)
    if takes is None:
        try:
            takes = "window" in inspect.signature(model.forward_answer).parameters
        except (TypeError, ValueError):  # no signature to read: the plain call
            takes = False
        _TAKES_WINDOW[kind] = takes
    if takes:
        return model.forward_answer(cache, rows, answer_ids, window=window)
    return model.forward_answer(cache, rows, answer_ids)[:, window[0] : window[1]]


@runtime_checkable
class BlockCachingLM(MaskedLM, Protocol):
    """A `MaskedLM` that can keep every layer's keys/values of a forward and run a span of
    positions against cached ones: what the block KV caches (`prefix-cache`, `dual-cache`, as
    Fast-dLLM defines them) need. `kv_shape` is (layers, kv heads, head dim)."""

    kv_shape: tuple[int, int, int]

    def forward_keep(
        self, ids: torch.Tensor, attention_mask: torch.Tensor, gen_length: int, keep_kv: list,
        last: int | None = None,
    ) -> torch.Tensor:
        """`forward`'s logits (of the last `last` positions only, as `forward_last`), with every
        layer's (keys, values) [B, kv_heads, L, hd] appended to `keep_kv`."""
        ...

    def forward_answer_keep(
        self, cache: object, rows: torch.Tensor, answer_ids: torch.Tensor, keep_kv: list
    ) -> torch.Tensor:
        """`forward_answer`'s logits, keeping the answer positions' keys/values."""
        ...

    def forward_span(
        self,
        ids: torch.Tensor,
        positions: torch.Tensor,
        attn_mask: torch.Tensor,
        context: object,
        at: int,
    ) -> torch.Tensor:
        """Logits [B, n, V] of a span attending to cached keys/values (see
        `MaskPredictor.forward_span`)."""
        ...
