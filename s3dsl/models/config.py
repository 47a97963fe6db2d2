"""The one model config, stored next to the weights as `config.json`."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from s3dsl.compiler.values import number
from s3dsl.errors import S3DSLError
from s3dsl.models.folder_files import LARGEST_SIZE, read_json_object
from s3dsl.models.tokenizer import DEFAULT_CHARS, SPECIALS

MAX_LAYERS = 4096  # far above any released model; a config beyond it is broken, not large


def checked_size(value: Any, what: str, *, layers: bool = False) -> int:
    """A size read from a model's files: a positive integer, at most MAX_LAYERS for a layer
    count and LARGEST_SIZE otherwise (also for transformers configs: `runtime/adapters/hf.py`)."""
    high = MAX_LAYERS if layers else LARGEST_SIZE
    return int(number(value, what, None, integer=True, low=1, high=high))


def _size(value: Any, what: str, name: str) -> int:
    return checked_size(value, what, layers=name == "n_layers")


def _flag(value: Any, what: str, name: str) -> bool:
    if type(value) is not bool:
        raise S3DSLError(f"{what} must be true or false, found {value!r}")
    return value


def _text(value: Any, what: str, name: str) -> str:
    if not isinstance(value, str):
        raise S3DSLError(f"{what} must be a string, found {value!r}")
    return value


# How `ModelConfig.checked` reads a file's value, by the field's declared type (the annotation's
# text). A field of a type not listed here raises KeyError (an internal error) whenever a file sets
# it, rather than loading unchecked; tests/test_models.py checks that every field has an entry.
FIELD_CHECKS = {
    "int": _size,
    "int | None": lambda value, what, name: None if value is None else _size(value, what, name),
    "float": lambda value, what, name: float(number(value, what, None, above=0)),
    "bool": _flag,
    "str": _text,
}


@dataclass(frozen=True)
class ModelConfig:
    """Shape of a LLaDA-style mask predictor; `chars` is the tokenizer's character set.

    `vocab_size` may exceed the tokenizer's size (unused rows), e.g. to round to a multiple of 8.
    `abs_positions` adds learned absolute position embeddings to the rotary ones (a grid task needs
    to know which row and column a cell is in, which relative positions alone do not say).
    `isolate_prompt` lets prompt positions attend only to the prompt, so a prompt's keys and values
    never depend on the answer: they are computed once per problem and shared, exactly.
    """

    vocab_size: int = len(SPECIALS) + len(DEFAULT_CHARS)
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int = 384
    max_len: int = 256
    rope_theta: float = 10000.0
    rms_eps: float = 1e-5
    chars: str = DEFAULT_CHARS
    name: str = "s3dsl-mdlm"
    # Off in the LLaDA layout; the shipped models turn both on (see `transformer.py`).
    abs_positions: bool = False
    isolate_prompt: bool = False
    # Real checkpoints (LLaDA, Dream; see `checkpoint.py`): grouped-query attention (None = one
    # key/value head per query head), biases on the q/k/v projections (Qwen2/Dream).
    n_kv_heads: int | None = None
    qkv_bias: bool = False

    @property
    def kv_heads(self) -> int:
        return self.n_kv_heads or self.n_heads

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads or (self.d_model // self.n_heads) % 2:
            raise ValueError("d_model / n_heads must be an even integer (rotary embeddings)")
        if self.n_heads % self.kv_heads:
            raise ValueError("n_heads must be a multiple of n_kv_heads")
        if self.vocab_size < len(SPECIALS) + len(self.chars):
            raise ValueError("vocab_size is smaller than the tokenizer")

    def to_json(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def from_json(cls, path: Path) -> ModelConfig:
        """The shipped format's config.json (unknown keys are ignored)."""
        return cls.checked(read_json_object(Path(path)), str(path))

    @classmethod
    def checked(cls, values: dict[str, Any], source: str,
                keys: dict[str, str] | None = None) -> ModelConfig:
        """A config from a model's files, each known field checked against its type first, so a
        wrong value is the file's error (`source` names the file, `keys` the file's name of a
        field where it differs), not a TypeError in the model."""
        given: dict[str, Any] = {}
        for f in fields(cls):
            if f.name in values:
                what = f"{source}: {(keys or {}).get(f.name, f.name)}"
                given[f.name] = FIELD_CHECKS[f.type](values[f.name], what, f.name)
        try:
            return cls(**given)
        except ValueError as e:
            raise S3DSLError(f"{source}: {e}") from e
