"""The batched population: every particle of every problem in a batch, as tensors on the device.

Rows are laid out problem-major: problem b owns rows [b*n, (b+1)*n). Every per-particle field is a
tensor with one row per particle, so expand and resample are one index gather over all fields.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch


@dataclass
class Population:
    tokens: torch.Tensor  # [P, L] long; prompts left-padded
    commit_logp: torch.Tensor  # [P, G] float32
    step_logp: torch.Tensor  # [P] float64: log-prob of the tokens the last denoise committed
    logw: torch.Tensor  # [P] float64
    score: torch.Tensor  # [P] float64, nan until scored
    prev_score: torch.Tensor  # [P] float64
    best_score: torch.Tensor  # [P] float64
    stratum: torch.Tensor  # [P] long
    group: torch.Tensor  # [P] long
    key: torch.Tensor  # [P] int64
    slot: torch.Tensor  # [P] long: row of the forward cache holding this state, -1 if none
    kv_row: torch.Tensor  # [P] long: row of the block KV cache (kv_cache.py) this particle reads
    answers: list  # [P] extracted answer of the last scored clean prediction

    @classmethod
    def initial(cls, tokens: torch.Tensor, keys: torch.Tensor, gen: int) -> Population:
        """One particle per problem: the prompt and `gen` masks, nothing committed or scored."""
        rows, dev = tokens.shape[0], tokens.device

        def full(value: float, dtype: torch.dtype = torch.float64) -> torch.Tensor:
            return torch.full((rows,), value, dtype=dtype, device=dev)

        return cls(
            tokens=tokens, commit_logp=torch.zeros(rows, gen, device=dev),
            step_logp=full(0.0), logw=full(0.0), score=full(float("nan")),
            prev_score=full(float("nan")), best_score=full(float("-inf")),
            stratum=full(0, torch.long), group=full(0, torch.long), key=keys.clone(),
            slot=full(-1, torch.long), kv_row=full(-1, torch.long), answers=[None] * rows,
        )

    @property
    def rows(self) -> int:
        return self.tokens.shape[0]

    def gather(self, index: torch.Tensor) -> Population:
        """The population of rows `index` (repeats allowed): expand and resample."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):
                out[f.name] = [value[i] for i in index.tolist()]
            else:
                out[f.name] = value[index.to(value.device)]
        return Population(**out)
