"""The batched population: every particle of every problem in a batch, as tensors on the device.

Rows are laid out problem-major: problem b owns rows [b*n, (b+1)*n). Every per-particle field is a
tensor with one row per particle, so expand and resample are one index gather over all fields,
with no host copy: even the extracted answers are ids on the device into a table kept on the host.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

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
    answer_id: torch.Tensor  # [P] long: the last scored clean prediction's answer in answer_table
    answer_table: list = field(default_factory=lambda: [None])  # distinct answers; [0] is None
    sched: torch.Tensor | None = None  # [P] long: the particle's schedule (Program.decode_of)

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
            slot=full(-1, torch.long), kv_row=full(-1, torch.long),
            answer_id=full(0, torch.long), sched=full(0, torch.long),
        )

    @property
    def rows(self) -> int:
        return self.tokens.shape[0]

    @property
    def answers(self) -> list:
        """[P] extracted answer of the last scored clean prediction (None before any)."""
        return [self.answer_table[i] for i in self.answer_id.tolist()]

    @answers.setter
    def answers(self, values: list) -> None:
        table: dict = {None: 0}
        ids = [table.setdefault(v, len(table)) for v in values]
        self.answer_table = list(table)
        self.answer_id = torch.tensor(ids, dtype=torch.long, device=self.answer_id.device)

    def gather(self, index: torch.Tensor) -> Population:
        """The population of rows `index` (repeats allowed): expand and resample. Tensor fields
        are gathered on their device; the answer table is shared (ids index into it)."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or isinstance(value, list):
                out[f.name] = value
            else:
                out[f.name] = value[index.to(value.device)]
        return Population(**out)
