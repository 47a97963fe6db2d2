"""The batched executor's forward cache: forwards over rows, deduplicated, chunked to fit memory,
with or without the prompt cache, kept per row (`slot`) so later stages reuse them.

A mixin of `BatchedExecutor`: it reads the executor's population, plan stage and counters.
The static and captured steps (`static.py`, `captured_driver.py`) run the model through the
same public helpers (`in_chunks`, `model_logits`, `prompt_positions`, `chunk_length`,
`auto_chunk`), so chunking, out-of-memory halving and the prompt cache behave alike on every path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import torch

from s3dsl.compiler.nodes import WINDOW_ONLY
from s3dsl.runtime import transition
from s3dsl.runtime.dedup import identical_rows
from s3dsl.runtime.model import answer_logits, forward_logits, logits_kept
from s3dsl.shape_constants import shape_constant

T = TypeVar("T")


# On a CPU a forward's cost per row grows with the batch once its activations outgrow the caches
# (arith-random-256, gen 192: 4.9 ms a row at 8 rows, 7.8 ms at 128;
# benchmarks/results/cpu_chunks.md), so a CPU forward takes at most the rows whose MLP activations
# (4 x hidden, fp32) fit in this.
CPU_CACHE_BYTES = 8 << 20
CPU_MIN_CHUNK = 8


@dataclass
class Counters:
    forward_rows: int = 0  # sequences that went through the model
    forward_calls: int = 0
    deduplicated: int = 0  # rows a forward was asked for but shared with an identical row
    reused: int = 0  # rows served from the cache
    oom_halvings: int = 0
    prompt_encodes: int = 0  # prompts encoded once for the prompt cache
    positions: int = 0  # positions that went through the model, summed over rows
    kv_refreshes: int = 0  # rows whose block KV cache a full forward rebuilt


def rows_of(part: slice, rows: int, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The chunk `part` of each of `tensors` (`rows` long): the tensors themselves when it is
    all of them (the common case: one chunk), with no slicing op dispatched."""
    if part.start == 0 and part.stop == rows:
        return tensors
    return tuple(t[part] for t in tensors)


def _cat_clean(cache: transition.Reduced, fresh: transition.Reduced
               ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The clean predictions of a cache and new rows appended to it. Rows of a forward that
    kept its window only get placeholders (zeros): those rows commit next and never read them."""
    if cache.clean_tok is None:
        if fresh.clean_tok is None:
            return None, None
        cache = _with_placeholders(cache, fresh.clean_tok.shape[1])
    elif fresh.clean_tok is None:
        fresh = _with_placeholders(fresh, cache.clean_tok.shape[1])
    return (torch.cat([cache.clean_tok, fresh.clean_tok]),
            torch.cat([cache.clean_logp, fresh.clean_logp]))


def _with_placeholders(r: transition.Reduced, gen: int) -> transition.Reduced:
    rows, device = r.window_logp.shape[0], r.window_logp.device
    return transition.Reduced(torch.zeros(rows, gen, dtype=torch.long, device=device),
                              torch.zeros(rows, gen, device=device), r.window_logp, r.w0, r.w1)


class BatchedForwards:
    # -- the forward cache -----------------------------------------------------------------
    def ensure_forward(
        self, need: torch.Tensor, w1: int, w0: int | None = None,
        rows: torch.Tensor | None = None,
    ) -> bool:
        """Make every row in `need` point at a cached forward whose window reaches [w0, w1).

        A caller that knows them passes `w0` (the first masked position of the rows in `need`,
        at most w1) and `rows` (`need.nonzero()`), which saves recomputing them (host syncs).
        True when every row of the population now has its own cache row, in order (`slot` is
        0..rows-1): a reader may then take the cache's rows as they are, without indexing."""
        if w0 is None:
            w0, _ = transition.window_bounds(self.gen_tokens()[need], self.mask_id, w1)
        if rows is None:
            rows = need.nonzero().squeeze(1)
        node = self.stage.node("forward")
        assert node is not None, self.stage.op.name
        pop, cache = self.pop, self.cache
        covers = cache is not None and cache.w0 <= w0 and cache.w1 >= w1
        window = (cache.w0, cache.w1) if covers else (w0, w1)  # new forwards keep this window
        if node.get("cache") == "fresh" or not covers:
            pop.slot.fill_(-1)
            cache = None
        else:
            miss = rows[pop.slot[rows] < 0]
            self.counters.reused += rows.shape[0] - miss.shape[0]
            rows = miss
        n = rows.shape[0]  # (`shape`, not `len`: a Python-level call on a tensor, per step)
        if not n:
            return False
        if cache is not None and (n == pop.rows or not bool((pop.slot >= 0).any())):
            cache = None  # no row points into it: replaced, as merging and compacting would do
        everyone = n == pop.rows  # then rows == arange(pop.rows) (nonzero is sorted)
        ids = pop.tokens if everyone else pop.tokens[rows]
        same = identical_rows(ids) if node.get("dedup") == "yes" else None
        if same is None:  # every row its own forward, in order
            unique, src = ids, rows
            inverse = shape_constant(("population.rows", n, ids.device),
                                     lambda: torch.arange(n, device=ids.device))
        else:
            first, inverse = same
            unique = ids[first]
            self.counters.deduplicated += n - unique.shape[0]
            src = first if everyone else rows[first]  # (every row: rows is arange(n))
        owners = self.problem_of(src)
        for b in owners.tolist():
            self.nfe[b] += 1
        fresh = self.forward(unique, owners, *window, src, node.get("keeps") != WINDOW_ONLY)
        if cache is None:  # every row points into the new cache, and every cache row is used
            self.cache = fresh
            if everyone:
                pop.slot.copy_(inverse)
            else:
                pop.slot[rows] = inverse
        else:
            base = cache.window_logp.shape[0]
            self.cache = transition.Reduced(
                *_cat_clean(cache, fresh), torch.cat([cache.window_logp, fresh.window_logp]),
                *window,
            )
            pop.slot[rows] = base + inverse
        if self.block_kv is not None:  # identical states share the first one's cache row
            pop.kv_row[rows] = self.block_kv.last_rows[inverse]
        if cache is not None:
            self._compact()
            return False
        return everyone and same is None

    def _compact(self) -> None:
        """Drop cache rows no particle points at any more."""
        live = self.pop.slot >= 0
        used, remap = torch.unique(self.pop.slot[live], return_inverse=True)
        if self.cache is None or len(used) == self.cache.window_logp.shape[0]:
            return
        c = self.cache
        self.cache = transition.Reduced(
            None if c.clean_tok is None else c.clean_tok[used],
            None if c.clean_logp is None else c.clean_logp[used], c.window_logp[used], c.w0, c.w1
        )
        self.pop.slot[live] = remap

    def forward(
        self, ids: torch.Tensor, owners: torch.Tensor, w0: int, w1: int,
        src_rows: torch.Tensor | None = None, clean: bool = True,
    ) -> transition.Reduced:
        """One logical forward over rows (of problems `owners`), in chunks that fit memory.

        A chunk halves on out-of-memory and the call goes on. With the prompt cache only the
        answer positions go through the model. With a block KV cache (`kv_cache.py`) the rows
        read the cache rows of particles `src_rows`. Without `clean` only the window's
        log-probs are kept (with the prompt cache the output layer runs on the window alone).
        """
        rows = ids.shape[0]
        if src_rows is not None and self.block_kv is not None:
            self.counters.forward_rows += rows
            pop = self.pop
            return self.block_kv.forward(ids, self.owner[owners], pop.kv_row[src_rows],
                                         pop.kv_row, w0, w1, self.in_chunks)
        prompt_len = self.prompt_positions(ids.shape[1])
        self.counters.positions += rows * (ids.shape[1] if self.prompts is None else self.gen)
        shifted = self.model.shifted_logits
        head = None if clean or self.prompts is None else (w0, w1)  # the window's logits only
        parts = self.in_chunks(
            rows,
            self.chunk_length(ids.shape[1]),
            lambda part: transition.reduce_logits(
                self.model_logits(*rows_of(part, rows, ids, owners), window=head),
                None if head else prompt_len, shifted, w0, w1, clean,
            ),
        )
        self.counters.forward_rows += rows
        if len(parts) == 1:
            return parts[0]
        return transition.Reduced(
            None if not clean else torch.cat([p.clean_tok for p in parts]),
            None if not clean else torch.cat([p.clean_logp for p in parts]),
            torch.cat([p.window_logp for p in parts]),
            w0,
            w1,
        )

    def in_chunks(self, rows: int, length: int, run: Callable[[slice], T]) -> list[T]:
        """`run` over slices of `rows` sized to fit memory; on out-of-memory the chunk size
        halves (and stays halved) and the failed slice is retried, so no work is lost."""
        chunk = self.chunk_rows or self.auto_chunk(length)
        out: list[T] = []
        start = 0
        while start < rows:
            part = slice(start, min(rows, start + chunk))
            try:
                out.append(run(part))
            except torch.OutOfMemoryError:
                if chunk == 1:
                    raise
                chunk = self.chunk_rows = max(1, chunk // 2)
                self.counters.oom_halvings += 1
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                continue
            self.counters.forward_calls += 1
            start = part.stop
        return out

    def prompt_positions(self, width: int) -> int:
        """Positions before the answer in what `model_logits` returns (none with the prompt cache;
        without it, those of `model.forward_logits`)."""
        if self.prompts is not None:
            return 0
        return logits_kept(self.model, width, self.gen) - self.gen

    def chunk_length(self, width: int) -> int:
        """The positions per row `auto_chunk` sizes a call by: the whole row with the prompt
        cache, the answer without (whose logits are all a forward keeps: `forward_logits`)."""
        return width if self.prompts is not None else self.gen

    def model_logits(self, ids: torch.Tensor, owners: torch.Tensor,
                     window: tuple[int, int] | None = None) -> torch.Tensor:
        """Logits of the answer (after `prompt_positions` others without the prompt cache);
        with `window` (prompt cache only), of answer positions [w0, w1) alone."""
        owners = self.owner[owners]  # a cohort's problems -> their rows of the batch as begun
        if self.prompts is not None:
            return answer_logits(self.model, self.prompts, owners, ids[:, -self.gen :], window)
        return forward_logits(self.model, ids, self.attn[owners], self.gen)

    def auto_chunk(self, length: int) -> int:
        """Rows per call for `length` positions a row: from the free memory on a GPU (asked at
        every call), from fixed sizes on a CPU (worked out once per length)."""
        if self.device.type == "cpu":
            found = self._auto_chunks.get(length)
            if found is None:
                found = self._auto_chunks[length] = self._chunk_from_budget(length)
            return found
        return self._chunk_from_budget(length)

    def _chunk_from_budget(self, length: int) -> int:
        budget = self.flags.memory_budget
        if budget is None:
            if self.device.type == "cuda":
                free, _ = torch.cuda.mem_get_info(self.device)
                budget = int(free * 0.6)
            else:
                budget = 2 << 30
        config = getattr(self.model, "config", None)
        hidden = int(getattr(config, "d_model", 0) or getattr(config, "hidden_size", 0) or 1024)
        per_row = length * (self.model.vocab_size * 4 * 3 + hidden * 4 * 24)
        chunk = max(1, budget // per_row)
        if self.device.type == "cpu":  # rows are computed alike in any chunk (bit for bit)
            chunk = min(chunk, max(CPU_MIN_CHUNK, CPU_CACHE_BYTES // (length * hidden * 16)))
        return chunk
