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
    answers: list  # [P] extracted answer of the last scored clean prediction

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
