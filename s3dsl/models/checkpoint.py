"""Official LLaDA and Dream checkpoint directories, loaded natively (no remote code, no network).

A directory holds `config.json`, safetensors weights (one file, or shards listed by
`model.safetensors.index.json`) and tokenizer files. The family comes from `config.json`'s
`model_type`; each family is data: which config keys give the model's shape, how official tensor
names map onto the native `MaskPredictor` (`transformer.py`), which options the native model does
not implement (refused, never silently ignored), and the facts the runtime needs (mask id, shifted
logits, end-of-turn token). Both families run in the same native module:
- LLaDA (LLaDA-8B-Base/Instruct, LLaDA-1.5): OLMo-style names, already the native ones after the
  `model.` prefix.
- Dream (Dream-v0-Base/Instruct-7B, Dream-Coder): a Qwen2 body (grouped-query attention, q/k/v
  biases) run bidirectionally; position i predicts token i+1 (`shifted_logits`).
Padding is honoured by the native model (key-padding mask, positions counted over real tokens), so
a problem gives the same logits alone or in a left-padded batch; the official LLaDA code does not.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from s3dsl.errors import S3DSLError
from s3dsl.models.block_kv import BlockKVForwards
from s3dsl.models.config import ModelConfig
from s3dsl.models.folder_files import (
    assign_weights,
    read_json_object,
    reading_weights,
    token_id,
)
from s3dsl.models.hub_tokenizer import HubTokenizer, load_fast_tokenizer
from s3dsl.models.transformer import MaskPredictor
from s3dsl.models.wrapper import DiffusionLM

INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"


@dataclass(frozen=True)
class Family:
    """How one official checkpoint family maps onto the native model (all of it data)."""

    name: str
    model_types: tuple[str, ...]  # config.json model_type values, lower case
    shape: dict[str, str]  # ModelConfig field <- config.json key (a|b: first present)
    names: tuple[tuple[str, str], ...]  # official tensor name -> native name ({i} = layer)
    tie_key: str  # config.json key that says the LM head is the input embedding
    shifted_logits: bool
    default_mask_id: int
    end_of_turn: str  # the token an instruct model ends its answer with
    qkv_bias: tuple[str, ...] = ()  # config keys, any true: q/k/v biases; () = always biased
    required: dict[str, Any] = field(default_factory=dict)  # config values the native model needs


_LAYER = "transformer.blocks.{i}."
LLADA = Family(
    name="llada",
    model_types=("llada",),
    shape={
        "d_model": "d_model",
        "n_layers": "n_layers",
        "n_heads": "n_heads",
        "n_kv_heads": "n_kv_heads",
        "d_ff": "mlp_hidden_size",
        "max_len": "max_sequence_length",
        "rope_theta": "rope_theta",
        "rms_eps": "rms_norm_eps",
        "vocab_size": "embedding_size|vocab_size",
    },
    names=(
        ("model.transformer.wte.weight", "transformer.wte.weight"),
        ("model.transformer.ln_f.weight", "transformer.ln_f.weight"),
        ("model.transformer.ff_out.weight", "transformer.ff_out.weight"),
        *(
            (f"model.{_LAYER}{part}", f"{_LAYER}{part}")
            for part in (
                "attn_norm.weight", "ff_norm.weight", "q_proj.weight", "k_proj.weight",
                "v_proj.weight", "q_proj.bias", "k_proj.bias", "v_proj.bias", "attn_out.weight",
                "ff_proj.weight", "up_proj.weight", "ff_out.weight",
            )
        ),
    ),
    tie_key="weight_tying",
    shifted_logits=False,
    default_mask_id=126336,
    end_of_turn="<|eot_id|>",
    qkv_bias=("include_qkv_bias",),
    required={
        "block_type": "llama", "rope": True, "alibi": False, "activation_type": "silu",
        "layer_norm_type": "rms", "attention_layer_norm": False, "input_emb_norm": False,
        "scale_logits": False, "include_bias": False, "block_group_size": 1,
    },
)
DREAM = Family(
    name="dream",
    model_types=("dream",),
    shape={
        "d_model": "hidden_size",
        "n_layers": "num_hidden_layers",
        "n_heads": "num_attention_heads",
        "n_kv_heads": "num_key_value_heads",
        "d_ff": "intermediate_size",
        "max_len": "max_position_embeddings",
        "rope_theta": "rope_theta",
        "rms_eps": "rms_norm_eps",
        "vocab_size": "vocab_size",
    },
    names=(
        ("model.embed_tokens.weight", "transformer.wte.weight"),
        ("model.norm.weight", "transformer.ln_f.weight"),
        ("lm_head.weight", "transformer.ff_out.weight"),
        ("model.layers.{i}.input_layernorm.weight", _LAYER + "attn_norm.weight"),
        ("model.layers.{i}.post_attention_layernorm.weight", _LAYER + "ff_norm.weight"),
        *(
            (f"model.layers.{{i}}.self_attn.{p}_proj.{w}", f"{_LAYER}{p}_proj.{w}")
            for p in "qkv"
            for w in ("weight", "bias")
        ),
        ("model.layers.{i}.self_attn.o_proj.weight", _LAYER + "attn_out.weight"),
        ("model.layers.{i}.mlp.gate_proj.weight", _LAYER + "ff_proj.weight"),
        ("model.layers.{i}.mlp.up_proj.weight", _LAYER + "up_proj.weight"),
        ("model.layers.{i}.mlp.down_proj.weight", _LAYER + "ff_out.weight"),
    ),
    tie_key="tie_word_embeddings",
    shifted_logits=True,
    default_mask_id=151666,
    end_of_turn="<|im_end|>",
    required={"hidden_act": "silu", "rope_scaling": None, "use_sliding_window": False},
)
FAMILIES = (LLADA, DREAM)
IGNORED = re.compile(r".*rotary_emb\.inv_freq$")  # buffers some exports include


def read_config(directory: Path) -> dict[str, Any]:
    return read_json_object(directory / "config.json")


def family_of(config: dict[str, Any]) -> Family | None:
    model_type = str(config.get("model_type", "")).lower()
    return next((f for f in FAMILIES if model_type in f.model_types), None)


def is_official_checkpoint(directory: Path) -> bool:
    """A directory whose config.json names a family loaded here."""
    return (directory / "config.json").is_file() and family_of(read_config(directory)) is not None


def native_config(family: Family, config: dict[str, Any], name: str) -> ModelConfig:
    for key, want in family.required.items():
        if key in config and config[key] != want:
            raise S3DSLError(
                f"{name}: config.json has {key}={config[key]!r}; the native {family.name} model "
                f"implements only {key}={want!r}",
                hint="use --model hf:DIR --trust-remote-code for a variant with its own code",
            )
    values: dict[str, Any] = {}
    source: dict[str, str] = {}  # ModelConfig field -> the config.json key it came from
    for field_name, keys in family.shape.items():  # "a|b": the first key present wins
        present = [k for k in keys.split("|") if config.get(k) is not None]
        if present:
            values[field_name], source[field_name] = config[present[0]], present[0]
        elif field_name != "n_kv_heads":  # absent = one kv head per query head
            raise S3DSLError(f"{name}: config.json lacks {keys.replace('|', ' / ')}")
    bias = any(config.get(k) for k in family.qkv_bias) if family.qkv_bias else True
    return ModelConfig.checked(
        {**values, "chars": "", "name": name, "qkv_bias": bias}, f"{name}/config.json", source
    )


def _name_table(family: Family, n_layers: int) -> dict[str, str]:
    table = {}
    for official, native in family.names:
        for i in range(n_layers) if "{i}" in official else [0]:
            table[official.format(i=i)] = native.format(i=i)
    return table


def _weight_files(directory: Path) -> list[Path]:
    if (directory / INDEX).is_file():
        weight_map = read_json_object(directory / INDEX).get("weight_map")
        if not isinstance(weight_map, dict) or not all(
            isinstance(f, str) and f and Path(f).name == f for f in weight_map.values()
        ):
            raise S3DSLError(
                f"{directory / INDEX}: weight_map must map tensor names to shard file names "
                "in the folder"
            )
        paths = [directory / f for f in sorted(set(weight_map.values()))]
        absent = [str(p.name) for p in paths if not p.is_file()]
        if absent:
            raise S3DSLError(
                f"{directory}: shards listed in {INDEX} are missing: {', '.join(absent)}",
                hint="the checkpoint must be complete on disk (nothing is downloaded)",
            )
        return paths
    if (directory / SINGLE).is_file():
        return [directory / SINGLE]
    raise S3DSLError(
        f"{directory}: no safetensors weights ({SINGLE} or {INDEX})",
        hint="only safetensors checkpoints are read (no pickled .bin files)",
    )


def read_weights(
    directory: Path, family: Family, table: dict[str, str], tied: bool, device: str,
    dtype: torch.dtype,
) -> dict[str, torch.Tensor]:
    """Official tensors under native names (`table`: `_name_table`), cast and placed one at a
    time (8B-friendly)."""
    from safetensors import safe_open

    state: dict[str, torch.Tensor] = {}
    for path in _weight_files(directory):
        with reading_weights(path), safe_open(str(path), framework="pt", device=str(device)) as f:
            for key in f.keys():  # noqa: SIM118 - safe_open has no __iter__
                if IGNORED.match(key):
                    continue
                if key not in table:
                    raise S3DSLError(
                        f"{path.name}: tensor '{key}' is not part of the {family.name} layout",
                        hint="a variant with extra modules needs its own code: hf:DIR",
                    )
                state[table[key]] = f.get_tensor(key).to(dtype)
    head = "transformer.ff_out.weight"
    if tied and head not in state and "transformer.wte.weight" in state:
        state[head] = state["transformer.wte.weight"]
    return state


class CheckpointLM(BlockKVForwards):
    """An official checkpoint as a `MaskedLM`: the native module plus the checkpoint's facts.

    No prompt cache is offered for shifted-logit models (the first answer position's logits sit
    at the last prompt position, which an answer-only pass does not compute).
    """

    def __init__(
        self,
        module: MaskPredictor,
        family: Family,
        tokenizer: HubTokenizer,
        mask_id: int,
        name: str,
        shifted_logits: bool,
        eot_id: int | None,
    ):
        self.module = module.eval()
        self.config = module.config
        self.name = name
        self.family = family.name
        self.tokenizer = tokenizer
        self.mask_id = int(mask_id)
        self.vocab_size = module.config.vocab_size
        self.shifted_logits = shifted_logits
        self.eos_id = tokenizer.eos_id
        self.eot_id = eot_id

    @torch.no_grad()  # not inference_mode: torch.compile cannot capture that region
    def forward(
        self, ids: torch.Tensor, attention_mask: torch.Tensor | None, gen_length: int | None = None
    ) -> torch.Tensor:
        """ids [B, L], attention_mask [B, L] bool (False = padding) -> float32 logits [B, L, V]."""
        return self.forward_last(ids, attention_mask, gen_length, None)

    @torch.no_grad()  # as `forward`
    def forward_last(
        self, ids: torch.Tensor, attention_mask: torch.Tensor | None, gen_length: int | None,
        last: int | None,
    ) -> torch.Tensor:
        """`forward`'s logits [B, last, V] of the last `last` positions only (None: all)."""
        if ids.shape[1] > self.config.max_len:
            raise S3DSLError(
                f"prompt + answer is {ids.shape[1]} tokens; {self.name} takes at most "
                f"{self.config.max_len}",
                hint="shorten the prompt or lower gen_length",
            )
        mask = None if attention_mask is None else attention_mask.to(self.device)
        return self.module(ids.to(self.device), mask, last=last).float()

    __call__ = forward

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.module.parameters())

    @property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device

    def __repr__(self) -> str:
        return f"CheckpointLM({self.family}, name={self.name!r}, params={self.num_parameters()})"


class CachingCheckpointLM(CheckpointLM):
    """Position-aligned checkpoints (LLaDA) also offer the prompt cache; it is approximate (the
    prompt attends to the answer in these models), so it runs only when asked for."""

    exact_prompt_cache = False
    encode_prompt = DiffusionLM.encode_prompt
    forward_answer = DiffusionLM.forward_answer


def default_dtype(device: str) -> torch.dtype:
    """bfloat16 on a GPU (the checkpoints' own precision), float32 on CPU."""
    return torch.bfloat16 if str(device).startswith("cuda") else torch.float32


def load_checkpoint(
    directory: str | Path,
    device: str = "cpu",
    dtype: torch.dtype | None = None,
    mask_id: int | None = None,
    shifted_logits: bool | None = None,
    chat: bool | None = None,
    system: str | None = None,
    weights: bool = True,
) -> CheckpointLM:
    """Load an official LLaDA / Dream checkpoint directory natively.

    `weights=False` reads no tensors: the module stays on the meta device (shapes and dtype
    only), enough for `s3dsl compile`'s memory estimate of an 8B model on a small machine.
    """
    directory = Path(directory).expanduser()
    config = read_config(directory)
    family = family_of(config)
    if family is None:
        known = ", ".join(t for f in FAMILIES for t in f.model_types)
        raise S3DSLError(
            f"{directory}: model_type {config.get('model_type')!r} is not a native family "
            f"({known})",
            hint="other masked LMs load through transformers: --model hf:DIR",
        )
    cfg = native_config(family, config, str(directory))
    dtype = dtype or (default_dtype(device) if weights else torch.bfloat16)
    tied = bool(config.get(family.tie_key, False))
    with torch.device("meta"):
        module = MaskPredictor(cfg).to(dtype)
    if weights:
        table = _name_table(family, cfg.n_layers)
        state = read_weights(directory, family, table, tied, device, dtype)
        official = {native: name for name, native in table.items()}
        assign_weights(module, state, directory, family.name, official)
    tok = load_fast_tokenizer(directory)
    eos = config.get("eos_token_id", tok.eos_token_id)
    eos = eos[0] if isinstance(eos, list) and eos else eos
    if eos is None:
        raise S3DSLError(f"{directory}: neither config.json nor the tokenizer names an EOS token")
    eos = token_id(eos, f"{directory}: the EOS token id", cfg.vocab_size)
    vocab = tok.get_vocab()
    eot = vocab.get(family.end_of_turn)
    tokenizer = HubTokenizer(tok, eos, (eot,) if eot is not None else (), chat, system)
    mid = mask_id if mask_id is not None else config.get("mask_token_id", tok.mask_token_id)
    mid = family.default_mask_id if mid is None else mid
    token_id(mid, "the mask id", cfg.vocab_size)
    shifted = family.shifted_logits if shifted_logits is None else shifted_logits
    # the prompt format is part of the name, so stored results of one never resume the other
    mode = "chat" if tokenizer.chat else "no chat"
    if tokenizer.chat and system:
        mode += f", system {json.dumps(system)}"
    cls = CheckpointLM if shifted else CachingCheckpointLM
    return cls(module, family, tokenizer, int(mid), f"{directory} ({mode})", shifted, eot)
