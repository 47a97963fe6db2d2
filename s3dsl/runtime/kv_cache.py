"""The block KV caches of the batched executor (plan nodes `forward kv=prefix|dual`).

Fast-dLLM's approximation for full-attention diffusion LMs. A row's cache holds every layer's
keys/values of its sequence as of a full forward (a *refresh*) at the start of the current block,
plus that forward's clean prediction. Until the next block, a forward of the row computes only a
span of positions, attending to the cached keys/values everywhere else:
- `prefix`: the span is the block and everything after it;
- `dual`: the span is the block alone, and the clean prediction of the positions after the block
  comes from the cached logits of the refresh (what scoring reads; see `compiler.kv_rewrite`).

Particles point at cache rows (`Population.kv_row`), so expand's children share their parent's
row and resample / mh-accept / prune gather rows with every other field; a refresh writes new
rows. Rows no particle points at are reused. With the prompt cache on, the prompt's keys/values
are the problem's (one `PromptCache` row, shared by all its particles) and a row holds only the
answer positions. Buffers are preallocated (grown by doubling), and a span forward gathers each
layer's context into one scratch buffer with `index_select(out=)`: no per-layer `cat`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from s3dsl.compiler.kv_rewrite import KINDS
from s3dsl.compiler.passes import Plan
from s3dsl.errors import S3DSLError
from s3dsl.runtime import transition
from s3dsl.runtime.model import BlockCachingLM, MaskedLM, logits_kept

Chunks = Callable[[int, int, Callable[[slice], transition.Reduced]], list[transition.Reduced]]


def plan_kind(lowered) -> str | None:
    kinds = {n.get("kv") for n in lowered.nodes("forward")} & set(KINDS)
    return next(iter(kinds), None)


def for_plan(lowered, model: MaskedLM, decode, attn: torch.Tensor, prompts: object | None,
             counters) -> BlockKV | None:
    """The batch's block KV cache when the plan's forwards use one."""
    kind = plan_kind(lowered)
    if kind is None:
        return None
    assert isinstance(model, BlockCachingLM), model  # check_model refused it before the run
    every = any(n.get("refresh") == "every forward" for n in lowered.nodes("forward"))
    return BlockKV(model, kind, every, decode.block_length, decode.gen_length, attn, prompts,
                   counters)


def check_model(the_plan: Plan, model: MaskedLM) -> None:
    """A model that cannot run a block KV cache is refused before any forward (exit 2)."""
    if the_plan.lowered is None or the_plan.reference:
        return
    kind = plan_kind(the_plan.lowered)
    if kind is None:
        return
    if not isinstance(model, BlockCachingLM):
        raise S3DSLError(
            f"--enable-pass {kind}-cache: model {model.name} cannot keep per-layer keys/values",
            None, "the block KV caches need a built-in model or a native LLaDA / Dream "
            "checkpoint (--model DIR), not hf:",
        )
    if the_plan.program.decode.cfg_scale:
        raise S3DSLError(
            f"--enable-pass {kind}-cache does not combine with cfg_scale "
            f"{the_plan.program.decode.cfg_scale}", None, "set cfg_scale=0",
        )


class BlockKV:
    """The cache rows of one batch of problems (see the module docstring)."""

    def __init__(
        self,
        model: BlockCachingLM,
        kind: str,
        every_forward: bool,
        block_length: int,
        gen: int,
        attn: torch.Tensor,
        prompts: object | None,
        counters,
    ):
        self.counters = counters  # the executor's: positions, kv_refreshes
        self.model, self.kind, self.every_forward = model, kind, every_forward
        self.block_length, self.gen = block_length, gen
        self.attn = attn  # [B, L] bool, the problems' attention masks
        self.width = attn.shape[1]
        self.positions = (attn.long().cumsum(-1) - 1).clamp(min=0)
        self.prompts = prompts
        self.region = gen if prompts is not None else self.width  # positions a row holds
        self.shift = 1 if model.shifted_logits else 0
        self.prompt_kv: list[tuple[torch.Tensor, torch.Tensor]] = []
        if prompts is not None:  # position-major [Lp, P, kv_heads, hd], gathered by problem
            self.prompt_kv = [(k.permute(2, 0, 1, 3).contiguous(), v.permute(2, 0, 1, 3)
                               .contiguous()) for k, v in prompts.kv]
        self.capacity = 0
        self.k: list[torch.Tensor] = []  # per layer [region, capacity, kv_heads, hd]
        self.v: list[torch.Tensor] = []
        self.block = torch.empty(0, dtype=torch.long)  # [capacity] block each row holds
        self.clean_tok = torch.empty(0, dtype=torch.long)  # [capacity, G]
        self.clean_logp = torch.empty(0)
        self.src = torch.empty(0, dtype=torch.long)  # [capacity, L] tokens a row was built from
        self._scratch: torch.Tensor | None = None
        self.last_rows = torch.empty(0, dtype=torch.long)
        self._want = 0  # rows asked for before the storage exists

    # -- one logical forward ---------------------------------------------------------------
    def forward(
        self, ids: torch.Tensor, owners: torch.Tensor, kv_rows: torch.Tensor,
        in_use: torch.Tensor, w0: int, w1: int, in_chunks: Chunks,
    ) -> transition.Reduced:
        """Reduced outputs of `ids` (rows of problems `owners`, reading cache rows `kv_rows`,
        -1 for none). Stale rows are refreshed into rows no particle uses (`in_use`: every
        particle's kv_row); `last_rows` then holds each row's cache row."""
        dev = ids.device
        block = (w1 - 1) // self.block_length
        start = min(block * self.block_length, w0)
        end = w1 if self.kind == "dual" else self.gen
        whole = start == 0 and end == self.gen and self.prompts is not None
        have = kv_rows >= 0
        stale = ~have
        if have.any():
            stale |= self.block.to(dev)[kv_rows.clamp(min=0)] != block
        if self.every_forward or whole:
            stale[:] = True
        rows = kv_rows.clone()
        n = ids.shape[0]
        clean_tok = torch.empty(n, self.gen, dtype=torch.long, device=dev)
        clean_logp = torch.empty(n, self.gen, device=dev)
        window: torch.Tensor | None = None
        for part_rows, refresh in ((stale.nonzero().squeeze(1), True),
                                   ((~stale).nonzero().squeeze(1), False)):
            if len(part_rows) == 0:
                continue
            if refresh:
                rows[part_rows] = new = self._allocate(len(part_rows), in_use)
                parts = in_chunks(len(part_rows), self.width, lambda s, r=part_rows, d=new: (
                    self._refresh(ids[r[s]], owners[r[s]], d[s], block, w0, w1)))
            else:
                parts = in_chunks(len(part_rows), end - start + self.shift,
                                  lambda s, r=part_rows: self._span(
                                      ids[r[s]], owners[r[s]], kv_rows[r[s]], start, end, w0, w1))
            if window is None:
                v = parts[0].window_logp
                window = torch.empty(n, *v.shape[1:], dtype=v.dtype, device=dev)
            clean_tok[part_rows] = torch.cat([p.clean_tok for p in parts])
            clean_logp[part_rows] = torch.cat([p.clean_logp for p in parts])
            window[part_rows] = torch.cat([p.window_logp for p in parts])
        assert window is not None
        self.last_rows = rows
        return transition.Reduced(clean_tok, clean_logp, window, w0, w1)

    def _refresh(self, ids: torch.Tensor, owners: torch.Tensor, dest: torch.Tensor, block: int,
                 w0: int, w1: int) -> transition.Reduced:
        """A full forward (the exact plan's logits) that also writes rows `dest` of the cache."""
        keep: list = []
        if self.prompts is not None:
            logits = self.model.forward_answer_keep(self.prompts, owners, ids[:, -self.gen:], keep)
            prompt_len = 0
        else:
            last = logits_kept(self.model, ids.shape[1], self.gen)
            logits = self.model.forward_keep(ids, self.attn[owners], self.gen, keep, last)
            prompt_len = last - self.gen
        self.counters.positions += ids.shape[0] * (ids.shape[1] if self.prompts is None
                                                   else self.gen)
        self.counters.kv_refreshes += ids.shape[0]
        self._ensure_storage(keep[0][0])
        for layer, (k, v) in enumerate(keep):
            self.k[layer].index_copy_(1, dest, k.permute(2, 0, 1, 3))
            self.v[layer].index_copy_(1, dest, v.permute(2, 0, 1, 3))
        out = transition.reduce_logits(logits, prompt_len, self.model.shifted_logits, w0, w1)
        self.block[dest] = block
        self.clean_tok[dest] = out.clean_tok
        self.clean_logp[dest] = out.clean_logp
        self.src[dest] = ids
        return out

    def _span(self, ids: torch.Tensor, owners: torch.Tensor, kv_rows: torch.Tensor, start: int,
              end: int, w0: int, w1: int) -> transition.Reduced:
        """Answer positions [start, end) (one more before them for shifted logits) against the
        cached keys/values of rows `kv_rows`."""
        b, answer = ids.shape[0], self.width - self.gen
        lo, hi = answer + start - self.shift, answer + end
        context = self._context(owners, kv_rows)
        mask = self.attn[owners][:, None, None, :]
        logits = self.model.forward_span(ids[:, lo:hi], self.positions[owners][:, lo:hi], mask,
                                         context, lo)
        self.counters.positions += b * (hi - lo)
        out = transition.reduce_logits(logits, self.shift, self.model.shifted_logits,
                                       w0 - start, w1 - start)
        clean_tok = self.clean_tok[kv_rows].clone()
        clean_logp = self.clean_logp[kv_rows].clone()
        clean_tok[:, start:end] = out.clean_tok
        clean_logp[:, start:end] = out.clean_logp
        return transition.Reduced(clean_tok, clean_logp, out.window_logp, w0, w1)

    def _context(self, owners: torch.Tensor, kv_rows: torch.Tensor):
        """layer -> that layer's keys/values of every position, [B, kv_heads, L, hd] views of
        one scratch buffer (reused by every layer and step)."""
        b = len(kv_rows)
        _, heads, hd = self.model.kv_shape
        shape = (2, self.width, b, heads, hd)
        size = 2 * self.width * b * heads * hd
        if self._scratch is None or self._scratch.numel() < size:
            self._scratch = torch.empty(size, dtype=self.k[0].dtype, device=self.k[0].device)
        buf = self._scratch[:size].view(shape)
        cut = self.width - self.region

        def layer(i: int):
            for j, (store, prompt) in enumerate(((self.k[i], 0), (self.v[i], 1))):
                if cut:
                    torch.index_select(self.prompt_kv[i][prompt], 1, owners, out=buf[j, :cut])
                torch.index_select(store, 1, kv_rows, out=buf[j, cut:])
            return buf[0].permute(1, 2, 0, 3), buf[1].permute(1, 2, 0, 3)

        return layer

    # -- storage ---------------------------------------------------------------------------
    def _ensure_storage(self, like: torch.Tensor) -> None:
        if self.k:
            return
        self._grow(max(8, 2 * self._want), like)

    def _grow(self, capacity: int, like: torch.Tensor) -> None:
        """Preallocated rows; doubling copies the old ones (rare: capacity follows the peak)."""
        layers, heads, hd = self.model.kv_shape
        dev, old = like.device, self.capacity

        def fresh(t: torch.Tensor | None, *shape: int, dtype=like.dtype, dim: int = 0,
                  fill=0) -> torch.Tensor:
            out = torch.full(shape, fill, dtype=dtype, device=dev)
            if t is not None and old:
                out.narrow(dim, 0, old).copy_(t)
            return out

        self.k = [fresh(self.k[i] if self.k else None, self.region, capacity, heads, hd, dim=1)
                  for i in range(layers)]
        self.v = [fresh(self.v[i] if self.v else None, self.region, capacity, heads, hd, dim=1)
                  for i in range(layers)]
        self.block = fresh(self.block, capacity, dtype=torch.long, fill=-1)
        self.clean_tok = fresh(self.clean_tok, capacity, self.gen, dtype=torch.long)
        self.clean_logp = fresh(self.clean_logp, capacity, self.gen, dtype=torch.float32)
        self.src = fresh(self.src, capacity, self.width, dtype=torch.long)
        self.capacity = capacity

    def _allocate(self, count: int, in_use: torch.Tensor) -> torch.Tensor:
        """`count` rows no particle points at (lowest first: deterministic)."""
        dev = in_use.device
        if self.capacity:
            used = torch.zeros(self.capacity, dtype=torch.bool, device=dev)
            live = in_use[in_use >= 0]
            used[live] = True
            free = (~used).nonzero().squeeze(1)
            if len(free) >= count:
                return free[:count]
            self._grow(max(2 * self.capacity, self.capacity + count), self.k[0])
            return self._allocate(count, in_use)
        self._want = max(self._want, count)
        return torch.arange(count, device=dev)


def cache_bytes(the_plan: Plan, model: MaskedLM, length: int, batch: int,
                value_bytes: int = 2) -> int:
    """The block KV cache's rows for the plan's peak particles (a lower bound: a refresh may
    hold up to twice as many): every layer's keys and values of `length` positions."""
    if the_plan.lowered is None or plan_kind(the_plan.lowered) is None:
        return 0
    if not isinstance(model, BlockCachingLM):
        return 0
    layers, heads, hd = model.kv_shape
    rows = the_plan.cost.peak_particles * max(batch, 1)
    return rows * layers * 2 * length * heads * hd * value_bytes
