"""A bidirectional transformer mask predictor in the LLaDA-8B layout.

Pre-norm RMSNorm, rotary position embeddings, SwiGLU MLP, no causal mask, attention through
`scaled_dot_product_attention` with a key-padding mask. Position ids come from the attention mask
(cumsum), so left padding does not shift positions.

Parameter names follow LLaDA's `modeling_llada.py` (`transformer.wte`, `blocks.{i}.attn_norm`,
`q_proj`/`k_proj`/`v_proj`/`attn_out`, `ff_norm`, `ff_proj` (gate) / `up_proj` / `ff_out` (down),
`transformer.ln_f`, `transformer.ff_out` (LM head)) so that a later mapping from official
checkpoints is a prefix rename (LLaDA prefixes `model.`); that mapping is not implemented here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from s3dsl.models.config import ModelConfig


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
        self.n_heads = cfg.n_heads
        self.attn_norm = RMSNorm(d, cfg.rms_eps)
        self.q_proj = nn.Linear(d, d, bias=False)
        self.k_proj = nn.Linear(d, d, bias=False)
        self.v_proj = nn.Linear(d, d, bias=False)
        self.attn_out = nn.Linear(d, d, bias=False)
        self.ff_norm = RMSNorm(d, cfg.rms_eps)
        self.ff_proj = nn.Linear(d, cfg.d_ff, bias=False)
        self.up_proj = nn.Linear(d, cfg.d_ff, bias=False)
        self.ff_out = nn.Linear(cfg.d_ff, d, bias=False)

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, key_mask: torch.Tensor | None
    ) -> torch.Tensor:
        b, n, d = x.shape
        h = self.attn_norm(x)
        q, k, v = (
            proj(h).view(b, n, self.n_heads, d // self.n_heads).transpose(1, 2)
            for proj in (self.q_proj, self.k_proj, self.v_proj)
        )
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask)
        x = x + self.attn_out(att.transpose(1, 2).reshape(b, n, d))
        h = self.ff_norm(x)
        return x + self.ff_out(F.silu(self.ff_proj(h)) * self.up_proj(h))


class Transformer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.wte = nn.Embedding(cfg.vocab_size, cfg.d_model)
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
        self, ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        cfg = self.config
        b, n = ids.shape
        if n > cfg.max_len:
            raise ValueError(f"sequence length {n} exceeds max_len {cfg.max_len}")
        if attention_mask is None:
            positions = torch.arange(n, device=ids.device).expand(b, n)
            key_mask = None
        else:
            attention_mask = attention_mask.bool()
            positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
            key_mask = attention_mask[:, None, None, :]
        cos, sin = rotary_tables(positions, cfg.d_model // cfg.n_heads, cfg.rope_theta)
        x = self.transformer.wte(ids)
        cos, sin = cos.to(x.dtype), sin.to(x.dtype)
        for block in self.transformer.blocks:
            x = block(x, cos, sin, key_mask)
        return self.transformer.ff_out(self.transformer.ln_f(x))
