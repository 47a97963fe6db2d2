"""The benchmarks' one model timer: a `MaskedLM` proxy that sums the time inside the model's calls
and counts its calls, rows and token positions, so the library itself stays untimed.

On a GPU there are two honest ways to time a call, and benchmarks need both:
- `blocking=True` synchronizes before and after each call: the call's wall time, as the engine
  would wait for it (compiler_bench's "share of the wall outside the model");
- `blocking=False` records CUDA events and never waits, so the host may run ahead of the device
  (overlap_bench measures exactly that overlap; a synchronizing timer would remove it).
On a CPU both read the clock around the call. Calls may come from several threads (the overlap
engine's micro-batches): the totals are updated under a lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import torch

from s3dsl.runtime.model import answer_logits, logits_of_last


class TimedModel:
    """The model, with the time inside its calls summed (`forward_s`, `take_busy`) and its calls,
    rows and token positions counted."""

    def __init__(self, inner: Any, blocking: bool = True) -> None:
        self.inner, self.blocking = inner, blocking
        self._lock = threading.Lock()
        self._events: list[tuple[torch.cuda.Event, torch.cuda.Event]] = []
        self._seconds = 0.0
        self.calls = self.rows = self.tokens = 0

    def __getattr__(self, name: str) -> Any:  # name, mask_id, tokenizer, exact_prompt_cache, ...
        return getattr(self.inner, name)  # (methods defined below never reach here)

    @property
    def device(self) -> torch.device:
        return self.inner.device

    @property
    def forward_s(self) -> float:
        """Seconds inside the model's calls since the last reset (waits for recorded events)."""
        if self._events:
            torch.cuda.synchronize()
            with self._lock:
                self._seconds += sum(s.elapsed_time(e) for s, e in self._events) / 1000
                self._events.clear()
        return self._seconds

    def take_busy(self) -> float:
        """`forward_s`, then reset every total: the busy time of one measured stretch."""
        busy = self.forward_s
        self.reset()
        return busy

    def reset(self) -> None:
        with self._lock:
            self._seconds, self._events = 0.0, []
            self.calls = self.rows = self.tokens = 0

    def _timed(self, fn: Callable[[], torch.Tensor], rows: int, positions: int) -> torch.Tensor:
        cuda = self.inner.device.type == "cuda"
        if cuda and not self.blocking:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            out = fn()
            end.record()
            seconds, event = 0.0, (start, end)
        else:
            if cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            out = fn()
            if cuda:
                torch.cuda.synchronize()
            seconds, event = time.perf_counter() - t0, None
        with self._lock:
            self._seconds += seconds
            if event is not None:
                self._events.append(event)
            self.calls += 1
            self.rows += rows
            self.tokens += rows * positions
        return out

    def forward(
        self, ids: torch.Tensor, attention_mask: torch.Tensor | None, gen_length: int | None = None
    ) -> torch.Tensor:
        return self._timed(
            lambda: self.inner.forward(ids, attention_mask, gen_length), ids.shape[0], ids.shape[1]
        )

    def forward_last(self, ids: torch.Tensor, attention_mask: torch.Tensor | None,
                     gen_length: int | None, last: int | None) -> torch.Tensor:
        return self._timed(
            lambda: logits_of_last(self.inner, ids, attention_mask, gen_length, last),
            ids.shape[0], ids.shape[1],
        )

    def encode_prompt(self, ids: torch.Tensor, attention_mask: torch.Tensor) -> Any:
        """Prompt-cache fill: timed as model time, counted as tokens, not as a row."""
        out = self._timed(lambda: self.inner.encode_prompt(ids, attention_mask), 0, 0)
        with self._lock:
            self.tokens += ids.numel()
        return out

    def forward_answer(self, cache: Any, rows: torch.Tensor, answer_ids: torch.Tensor,
                       window: tuple[int, int] | None = None):
        return self._timed(
            lambda: answer_logits(self.inner, cache, rows, answer_ids, window), *answer_ids.shape
        )

    __call__ = forward
