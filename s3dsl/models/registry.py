"""Model names and paths -> `MaskedLM`s; saving and loading checkpoints (safetensors + JSON)."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from s3dsl.errors import S3DSLError, did_you_mean
from s3dsl.models.config import ModelConfig
from s3dsl.models.folder_files import assign_weights, reading_weights
from s3dsl.models.transformer import MaskPredictor
from s3dsl.models.wrapper import DiffusionLM

WEIGHTS_DIR = Path(__file__).parent / "weights"
SHIPPED = ("arith", "sudoku")
TINY_RANDOM = "tiny-random"
MODELS: tuple[str, ...] = (*SHIPPED, TINY_RANDOM)

# Small enough for fast tests; same tokenizer and options as the shipped models.
TINY_CONFIG = ModelConfig(
    d_model=32,
    n_layers=2,
    n_heads=2,
    d_ff=64,
    max_len=256,
    name=TINY_RANDOM,
    abs_positions=True,
    isolate_prompt=True,
)


def build_random_model(
    config: ModelConfig, seed: int = 0, device: str = "cpu", dtype: torch.dtype | None = None
) -> DiffusionLM:
    """A randomly initialised model, identical for a given (config, seed) on every machine."""
    module = MaskPredictor(config)
    module.reset_parameters(torch.Generator().manual_seed(seed))
    return DiffusionLM(module.to(device=device, dtype=dtype))


def save_model(module: MaskPredictor, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    module.config.to_json(directory / "config.json")
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    save_file(state, str(directory / "model.safetensors"))


def load_model(
    name_or_path: str, device: str = "cpu", dtype: torch.dtype | None = None
) -> DiffusionLM:
    """A shipped name (`arith`, `sudoku`, `tiny-random`) or a directory with config + weights."""
    if name_or_path == TINY_RANDOM:
        return build_random_model(TINY_CONFIG, seed=0, device=device, dtype=dtype)
    directory = WEIGHTS_DIR / name_or_path if name_or_path in SHIPPED else Path(name_or_path)
    from s3dsl.models.checkpoint import is_official_checkpoint, load_checkpoint

    if name_or_path not in SHIPPED and is_official_checkpoint(directory.expanduser()):
        return load_checkpoint(directory, device=device, dtype=dtype)
    if not (directory / "config.json").is_file() or not (directory / "model.safetensors").is_file():
        if name_or_path in SHIPPED:
            raise S3DSLError(
                f"weights for model '{name_or_path}' are missing",
                hint=f"train them: python -m s3dsl.models.train --task {name_or_path}",
            )
        raise S3DSLError(
            f"unknown model '{name_or_path}' (not a shipped name, nor a directory with "
            "config.json and model.safetensors)",
            hint=did_you_mean(name_or_path, MODELS),
        )
    config = ModelConfig.from_json(directory / "config.json")
    with torch.device("meta"):  # nothing allocated before the weights are known to fit
        module = MaskPredictor(config)
    weights = directory / "model.safetensors"
    with reading_weights(weights):  # float32, as the shipped format stores them
        state = {k: v.to(torch.float32) for k, v in load_file(str(weights)).items()}
    assign_weights(module, state, directory, "s3dsl")
    return DiffusionLM(module.to(device=device, dtype=dtype), name=name_or_path)
