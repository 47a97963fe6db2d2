"""What a task is: problems with gold answers, answer extraction and exact-match scoring."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Problem:
    """One problem.

    prompt: the text the model is conditioned on. answer: the gold final answer.
    target: the full gold completion the model is trained to write (for arith the chain of
    intermediate equations, then `#` and the answer); empty where a data file gives none.
    """

    id: str
    prompt: str
    answer: str
    target: str = ""
    meta: dict = field(default_factory=dict, compare=False, hash=False)


class Task(Protocol):
    """A task: a seeded generator, a fixed held-out split, extraction and scoring.

    `gen_length` is how many tokens a completion gets; `default_model` and `default_verifier` are
    names in the model and verifier registries.
    """

    name: str
    gen_length: int
    default_model: str
    default_verifier: str

    def problems(self, split: str = "test", limit: int | None = None) -> list[Problem]:
        """split: 'train' (for tuning and training) or 'test' (held out, identical everywhere)."""
        ...

    def extract_answer(self, completion: str) -> str | None:
        """The final answer written in a completion, or None when it has none."""
        ...

    def is_correct(self, prediction: str | None, answer: str) -> bool: ...


SPLITS = ("train", "test")


def split_problems(
    test: list[Problem], train_stream: Iterator[Problem], split: str, limit: int | None
) -> list[Problem]:
    """A generated task's splits: the fixed held-out `test` list, or the first `limit` (default
    1000) problems of its train stream. An unknown split is the user's error."""
    from s3dsl.errors import S3DSLError, did_you_mean

    if split == "test":
        return list(test[:limit])
    if split == "train":
        return [next(train_stream) for _ in range(1000 if limit is None else limit)]
    raise S3DSLError(f"unknown split '{split}'", None, did_you_mean(split, SPLITS))
