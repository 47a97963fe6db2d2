"""Shared fixtures: small models and problems that make every test fast and offline."""

from __future__ import annotations

import pytest
import torch

from s3dsl.models.tokenizer import CharTokenizer
from s3dsl.tasks.base import Problem

torch.set_num_threads(1)


class ToyModel:
    """A deterministic `MaskedLM` whose logits are a fixed function of position: position i
    prefers the digit `i % 10` with confidence falling as i grows, so every rule's choices can
    be predicted by hand. Counts its forward rows."""

    name = "toy"
    shifted_logits = False

    def __init__(self) -> None:
        self.tokenizer = CharTokenizer()
        self.mask_id = self.tokenizer.mask_id
        self.vocab_size = len(self.tokenizer)
        self.rows = 0

    def forward(
        self, ids: torch.Tensor, attention_mask: torch.Tensor | None, gen_length: int | None = None
    ) -> torch.Tensor:
        batch, length = ids.shape
        self.rows += batch
        logits = torch.zeros(batch, length, self.vocab_size)
        digit_ids = [self.tokenizer.encode(str(d))[0] for d in range(10)]
        for i in range(length):
            logits[:, i, digit_ids[i % 10]] = 10.0 - 0.1 * i
        return logits

    def num_parameters(self) -> int:
        return 0

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")


@pytest.fixture
def toy_model() -> ToyModel:
    return ToyModel()


@pytest.fixture(scope="session")
def tiny_model():
    from s3dsl.models.registry import load_model

    return load_model("tiny-random")


@pytest.fixture(scope="session")
def arith_problems() -> list[Problem]:
    from s3dsl.tasks.registry import get_task

    return get_task("arith").problems("test", 3)
