"""Reading the files of a model folder, where every failure is the folder's fault and says so.

A model folder is user input like a strategy file: a config.json that is not an object, a config
value of the wrong type, a truncated shard or a tokenizer file that transformers cannot parse
must end in an `S3DSLError` that names the file, never in an exception from deep inside a
library. The loaders (`registry.py`, `checkpoint.py`, `hub_tokenizer.py`) read through these.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from s3dsl.compiler.values import number
from s3dsl.errors import S3DSLError, first_line

if TYPE_CHECKING:  # (torch is not imported to read a config)
    import torch


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON file whose top level must be an object (config.json, the shard index)."""
    try:
        doc = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise S3DSLError(f"cannot read {path}: {str(e)[:200]}") from e
    if not isinstance(doc, dict):
        raise S3DSLError(f"{path}: expected a JSON object at the top, found {type(doc).__name__}")
    return doc


LARGEST_SIZE = 2**31 - 1  # a size above it is a broken file (and overflows torch's shapes)


def token_id(value: Any, what: str, vocab_size: int) -> int:
    """A token id from a model's files: an integer inside the vocabulary (checked by the one
    validation layer, `compiler/values.py`, as every other value)."""
    return int(number(value, what, None, integer=True, low=0, high=vocab_size - 1))


@contextmanager
def reading_weights(path: Path) -> Iterator[None]:
    """Inside: reading a safetensors file; a damaged or unreadable file is the folder's error."""
    from safetensors import SafetensorError

    try:
        yield
    except (SafetensorError, OSError) as e:
        raise S3DSLError(f"cannot read the weights in {path}: {first_line(e)}",
                         hint="the file is damaged or incomplete: copy it again") from e


def assign_weights(module: torch.nn.Module, state: dict[str, torch.Tensor], directory: Path,
                   layout: str, file_names: dict[str, str] | None = None) -> None:
    """Put `state` into `module` (built on the meta device: nothing allocated before the names
    and shapes are known to fit the config). `file_names`: the files' name of a module name,
    for the message, where they differ (the official layouts)."""
    expected = set(module.state_dict())
    shown = file_names or {}
    missing = sorted(shown.get(n, n) for n in expected - set(state))
    extra = sorted(shown.get(n, n) for n in set(state) - expected)
    if missing or extra:
        raise S3DSLError(
            f"{directory}: the weights do not fit the {layout} config "
            f"(missing {missing[:3]}, unexpected {extra[:3]})",
            hint="check config.json against the weight files",
        )
    try:
        module.load_state_dict(state, assign=True)
    except RuntimeError as e:  # a shape that does not fit the config
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        raise S3DSLError(f"{directory}: {' '.join(lines[:2])[:300]}",
                         hint="check config.json against the weight files") from e
