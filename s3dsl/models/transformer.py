"""A bidirectional transformer mask predictor in the LLaDA-8B layout.

Pre-norm RMSNorm, rotary position embeddings, SwiGLU MLP, no causal mask, attention through
`scaled_dot_product_attention` with a key-padding mask. Position ids come from the attention mask
(cumsum), so left padding does not shift positions.

Two options, off in the LLaDA layout and on in the shipped models: learned absolute position
embeddings (`transformer.wpe`), and prompt isolation (prompt positions attend only to the prompt),
which makes a prompt's keys/values independent of the answer and so exactly cacheable
(`encode_prompt` + `forward_answer`).

Parameter names follow LLaDA's `modeling_llada.py` (`transformer.wte`, `blocks.{i}.attn_norm`,
`q_proj`/`k_proj`/`v_proj`/`attn_out`, `ff_norm`, `ff_proj` (gate) / `up_proj` / `ff_out` (down),
`transformer.ln_f`, `transformer.ff_out` (LM head)) so that a later mapping from official
checkpoints is a prefix rename (LLaDA prefixes `model.`); `checkpoint.py` holds that mapping and
Dream's (Qwen2 names), which also needs grouped-query attention and q/k/v biases (config options).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from s3dsl.models.config import ModelConfig
from s3dsl.models.prompt_cache import KeyValues, PromptCache

__all__ = ["KeyValues", "MaskPredictor", "PromptCache"]


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return xf.to(x.dtype) * self.weight


def rotary_tables(
    positions: torch.Tensor, head_dim: int, theta: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin of shape [B, 1, L, head_dim] for integer positions [B, L] (rotate-half layout)."""
    inv_freq = 1.0 / theta ** (
        torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float32) / head_dim
    )
    angles = positions.float()[..., None] * inv_freq  # [B, L, hd/2]
    angles = torch.cat([angles, angles], dim=-1)[:, None]
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return (x.float() * cos + rotated.float() * sin).to(x.dtype)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.d_model
        self.n_heads, self.n_kv = cfg.n_heads, cfg.kv_heads
        kv_dim = d // cfg.n_heads * cfg.kv_heads
        self.attn_norm = RMSNorm(d, cfg.rms_eps)
        self.q_proj = nn.Linear(d, d, bias=cfg.qkv_bias)
        self.k_proj = nn.Linear(d, kv_dim, bias=cfg.qkv_bias)
        self.v_proj = nn.Linear(d, kv_dim, bias=cfg.qkv_bias)
        self.attn_out = nn.Linear(d, d, bias=False)
        self.ff_norm = RMSNorm(d, cfg.rms_eps)
        self.ff_proj = nn.Linear(d, cfg.d_ff, bias=False)
        self.up_proj = nn.Linear(d, cfg.d_ff, bias=False)
        self.ff_out = nn.Linear(cfg.d_ff, d, bias=False)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        attn_mask: torch.Tensor | None,
    ) -> tuple[torch.Tensor, KeyValues]:
        """One block; returns the new hidden states and the keys/values of `x`'s positions."""
        q, k, v = self._qkv(x, cos, sin)
        return self._attend(x, q, k, v, attn_mask), (k, v)

    def forward_into(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        attn_mask: torch.Tensor | None,
        context: KeyValues,
        at: int,
    ) -> torch.Tensor:
        """One block over a span of positions whose context (every position's keys/values,
        [B, kv_heads, Lc, head_dim] each, cached ones included) is given: the span's fresh
        keys/values are written into `context` at [at, at + n) in place (a buffer the caller
        owns), so no per-layer concatenation is needed (the block KV caches, the prompt
        cache). Returns the new hidden states and the span's keys/values."""
        q, k, v = self._qkv(x, cos, sin)
        n = x.shape[1]
        context[0][:, :, at : at + n] = k
        context[1][:, :, at : at + n] = v
        return self._attend(x, q, context[0], context[1], attn_mask), (k, v)

    def _qkv(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, n, d = x.shape
        h = self.attn_norm(x)
        hd = d // self.n_heads
        q = self.q_proj(h).view(b, n, self.n_heads, hd).transpose(1, 2)
        k, v = (p(h).view(b, n, self.n_kv, hd).transpose(1, 2) for p in (self.k_proj, self.v_proj))
        return apply_rotary(q, cos, sin), apply_rotary(k, cos, sin), v

    def _attend(
        self,
        x: torch.Tensor,
        q: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        attn_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        b, n, d = x.shape
        if self.n_kv != self.n_heads:  # grouped-query attention: each kv head serves a group
            group = self.n_heads // self.n_kv
            keys, values = (t.repeat_interleave(group, dim=1) for t in (keys, values))
        att = F.scaled_dot_product_attention(q, keys, values, attn_mask=attn_mask)
        x = x + self.attn_out(att.transpose(1, 2).reshape(b, n, d))
        h = self.ff_norm(x)
        return x + self.ff_out(F.silu(self.ff_proj(h)) * self.up_proj(h))


class Transformer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.wte = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.wpe = nn.Embedding(cfg.max_len, cfg.d_model) if cfg.abs_positions else None
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_f = RMSNorm(cfg.d_model, cfg.rms_eps)
        self.ff_out = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)


class MaskPredictor(nn.Module):
    """ids [B, L] + attention mask [B, L] (True = real token) -> logits [B, L, V]."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        self.transformer = Transformer(cfg)

    def reset_parameters(self, generator: torch.Generator) -> None:
        """Deterministic init (normal 0.02, output projections scaled by depth, norms at 1)."""
        depth_scale = (2 * self.config.n_layers) ** -0.5
        for name, p in self.named_parameters():
            with torch.no_grad():
                if p.dim() == 1:
                    p.fill_(1.0)
                else:
                    residual_out = ".blocks." in f".{name}" and name.endswith(
                        ("attn_out.weight", "ff_out.weight")
                    )
                    std = 0.02 * (depth_scale if residual_out else 1.0)
                    p.copy_(torch.randn(p.shape, generator=generator) * std)

    def forward(
        self,
        ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        gen_length: int | None = None,
        keep_kv: list[KeyValues] | None = None,
        last: int | None = None,
    ) -> torch.Tensor:
        """Logits for every position (with `last`: for the last `last` only); the last
        `gen_length` positions are the answer.

        `gen_length` matters only to an `isolate_prompt` model, whose prompt positions must not
        see the answer; such a model requires it. A `keep_kv` list receives every layer's
        keys/values (a block KV cache's refresh: the same logits as without it). `last` runs
        the output layer on those positions only: with a 126,464-entry vocabulary it is most of
        a small model's work and of any model's activation memory, and the prompt's logits are
        never read.
        """
        b, n = ids.shape
        if n > self.config.max_len:
            raise ValueError(f"sequence length {n} exceeds max_len {self.config.max_len}")
        if attention_mask is None:
            attention_mask = torch.ones_like(ids, dtype=torch.bool)
        attention_mask = attention_mask.bool()
        positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        mask = attention_mask[:, None, None, :]
        if self.config.isolate_prompt:
            if gen_length is None:
                raise ValueError("an isolate_prompt model needs gen_length")
            is_answer = torch.arange(n, device=ids.device) >= n - gen_length
            # prompt queries (rows) may not attend to answer keys (columns)
            mask = mask & ~(~is_answer[:, None] & is_answer[None, :])
        x = self._embed(ids, positions)
        cos, sin = self._rotary(positions, x.dtype)
        for block in self.transformer.blocks:
            x, layer_kv = block(x, cos, sin, mask)
            if keep_kv is not None:
                keep_kv.append(layer_kv)
        if last is not None:
            x = x[:, n - min(last, n):]
        return self.transformer.ff_out(self.transformer.ln_f(x))

    @torch.no_grad()
    def encode_prompt(self, ids: torch.Tensor, attention_mask: torch.Tensor) -> PromptCache:
        """Run left-padded prompts alone and keep every layer's keys/values.

        With `isolate_prompt` these are exactly what a full forward computes for the prompt, so
        `forward_answer` reproduces `forward`. Without it they ignore the answer: an approximation.
        """
        attention_mask = attention_mask.bool()
        positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        x = self._embed(ids, positions)
        cos, sin = self._rotary(positions, x.dtype)
        kv = []
        for block in self.transformer.blocks:
            x, layer_kv = block(x, cos, sin, attention_mask[:, None, None, :])
            kv.append(layer_kv)
        return PromptCache.of(kv, attention_mask)

    def forward_answer(
        self,
        cache: PromptCache,
        rows: torch.Tensor,
        answer_ids: torch.Tensor,
        keep_kv: list[KeyValues] | None = None,
        window: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        """Logits [B, G, V] of the answer positions; row i continues prompt `rows[i]` of `cache`.
        `keep_kv` receives every layer's keys/values of the answer positions. With `window`
        (w0, w1) the output layer runs on answer positions [w0, w1) only: [B, w1 - w0, V]."""
        b, g = answer_ids.shape
        if cache.mask.shape[1] + g > self.config.max_len:
            raise ValueError(f"sequence length exceeds max_len {self.config.max_len}")
        layout = cache.layout(rows, g)
        if "rows" not in layout.memo:  # positions, rotary tables and mask follow from the rows
            positions = cache.lengths[rows, None] + torch.arange(g, device=answer_ids.device)
            cos, sin = self._rotary(positions, self.transformer.wte.weight.dtype)
            wpe = self.transformer.wpe
            placed = None if wpe is None else wpe(positions)
            layout.memo["rows"] = placed, cos, sin, cache.answer_mask(rows, g)
        placed, cos, sin, mask = layout.memo["rows"]
        x = self.transformer.wte(answer_ids)
        x = x if placed is None else x + placed
        lp = cache.mask.shape[1]
        for i, block in enumerate(self.transformer.blocks):
            x, layer_kv = block.forward_into(x, cos, sin, mask, layout.context(i), lp)
            if keep_kv is not None:
                keep_kv.append(layer_kv)
        if window is not None:
            x = x[:, window[0] : window[1]]
        return self.transformer.ff_out(self.transformer.ln_f(x))

    def forward_span(
        self,
        ids: torch.Tensor,
        positions: torch.Tensor,
        attn_mask: torch.Tensor,
        context: Callable[[int], KeyValues],
        at: int,
    ) -> torch.Tensor:
        """Logits [B, n, V] of a span of positions (ids [B, n] at `positions` [B, n]) attending
        to a context of cached keys/values: `context(layer)` gives that layer's [B, kv_heads, Lc,
        head_dim] buffers, whose [at, at + n) the span's fresh keys/values overwrite.
        `attn_mask` [B, 1, 1, Lc] bool marks the context positions the span may attend to."""
        x = self._embed(ids, positions)
        cos, sin = self._rotary(positions, x.dtype)
        for i, block in enumerate(self.transformer.blocks):
            x, _ = block.forward_into(x, cos, sin, attn_mask, context(i), at)
        return self.transformer.ff_out(self.transformer.ln_f(x))

    def _embed(self, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        x = self.transformer.wte(ids)
        if self.transformer.wpe is not None:
            x = x + self.transformer.wpe(positions)
        return x

    def _rotary(
        self, positions: torch.Tensor, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.config
        cos, sin = rotary_tables(positions, cfg.d_model // cfg.n_heads, cfg.rope_theta)
        return cos.to(dtype), sin.to(dtype)
