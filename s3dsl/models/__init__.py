"""The built-in masked diffusion LM: a small LLaDA-style bidirectional transformer.

`load_model("arith" | "sudoku" | "tiny-random" | <dir>)` returns a `MaskedLM`.
"""

from s3dsl.models.config import ModelConfig
from s3dsl.models.registry import MODELS, build_random_model, load_model, save_model
from s3dsl.models.tokenizer import CharTokenizer
from s3dsl.models.wrapper import DiffusionLM

__all__ = [
    "MODELS",
    "CharTokenizer",
    "DiffusionLM",
    "ModelConfig",
    "build_random_model",
    "load_model",
    "save_model",
]
