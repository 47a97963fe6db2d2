"""Tiny random-weight checkpoints in the official LLaDA and Dream layouts, rebuilt from a seed.

They are what the golden-parity fixtures were recorded on (`benchmarks/golden_parity.py` runs the
official modeling code and samplers on them under transformers 4.x) and what the tests load
natively, so only the fixtures' tokens and logits are stored, never weights. A directory holds
what a real one holds: an official-format `config.json`, two safetensors shards with their index,
and a word-level `tokenizer.json` (built with the `tokenizers` library) whose
`tokenizer_config.json` carries the family's style of chat template. LLaDA keeps its full
126,464-token vocabulary because the official sampler hard-codes the EOS / EoT ids; Dream's is
reduced (its sampler takes the mask id from the config).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from s3dsl.models.checkpoint import DREAM, INDEX, LLADA, Family, _name_table, native_config
from s3dsl.models.transformer import MaskPredictor

LLADA_CONFIG: dict[str, Any] = {
    "architectures": ["LLaDAModelLM"], "model_type": "llada", "activation_type": "silu",
    "alibi": False, "alibi_bias_max": 8.0, "attention_dropout": 0.0,
    "attention_layer_norm": False, "attention_layer_norm_with_affine": True,
    "bias_for_layer_norm": False, "block_group_size": 1, "block_type": "llama", "d_model": 32,
    "embedding_dropout": 0.0, "embedding_size": 126464, "eos_token_id": 126081,
    "flash_attention": False, "include_bias": False, "include_qkv_bias": False,
    "init_cutoff_factor": None, "init_device": "cpu", "init_fn": "mitchell", "init_std": 0.02,
    "input_emb_norm": False, "layer_norm_type": "rms", "layer_norm_with_affine": True,
    "mask_token_id": 126336, "max_sequence_length": 256, "mlp_hidden_size": 48, "mlp_ratio": 4,
    "multi_query_attention": None, "n_heads": 4, "n_kv_heads": 4, "n_layers": 2,
    "pad_token_id": 126081, "precision": "amp_bf16", "residual_dropout": 0.0,
    "rms_norm_eps": 1e-05, "rope": True, "rope_full_precision": True, "rope_theta": 500000.0,
    "scale_logits": False, "use_cache": False, "vocab_size": 126464, "weight_tying": False,
}
DREAM_CONFIG: dict[str, Any] = {
    "architectures": ["DreamModel"], "model_type": "Dream", "attention_dropout": 0.0,
    "bos_token_id": 2001, "eos_token_id": 2001, "pad_token_id": 2001, "mask_token_id": 2000,
    "hidden_act": "silu", "hidden_size": 32, "initializer_range": 0.02, "intermediate_size": 48,
    "max_position_embeddings": 256, "max_window_layers": 2, "num_attention_heads": 4,
    "num_hidden_layers": 2, "num_key_value_heads": 2, "rms_norm_eps": 1e-06,
    "rope_scaling": None, "rope_theta": 1000000.0, "sliding_window": None,
    "tie_word_embeddings": False, "torch_dtype": "float32", "use_cache": False,
    "use_sliding_window": False, "vocab_size": 2048,
}
LLADA_SPECIALS = {
    "<|startoftext|>": 126080, "<|endoftext|>": 126081, "<|mdm_mask|>": 126336,
    "<|start_header_id|>": 126346, "<|end_header_id|>": 126347, "<|eot_id|>": 126348,
}
DREAM_SPECIALS = {
    "<|mask|>": 2000, "<|endoftext|>": 2001, "<|im_start|>": 2002, "<|im_end|>": 2003,
}
LLADA_TEMPLATE = (
    "{% for message in messages %}{% set content = '<|start_header_id|>' + message['role'] + "
    "'<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}"
    "{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
DREAM_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
END_TOKEN_SCALE = 5.5  # see _end_tokens_compete
WORDS = ("<unk>", "system", "user", "assistant", "You", "are", "a", "helpful", "assistant.")
LAYOUTS: dict[str, tuple[Family, dict[str, Any], dict[str, int], str, dict[str, str]]] = {
    "llada": (LLADA, LLADA_CONFIG, LLADA_SPECIALS, LLADA_TEMPLATE,
              {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
               "tokenizer_class": "PreTrainedTokenizerFast"}),
    "dream": (DREAM, DREAM_CONFIG, DREAM_SPECIALS, DREAM_TEMPLATE,
              {"eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
               "mask_token": "<|mask|>", "tokenizer_class": "DreamTokenizer"}),
}


def official_weights(
    layout: str, seed: int = 0, shape: dict[str, Any] | None = None
) -> dict[str, torch.Tensor]:
    """Every official tensor of the tiny layout, drawn in sorted-name order from one generator.

    Embedding and LM head ~ N(0, 1); other weights (and biases) ~ N(0, 1 / fan_in), so that
    positions and context change the logits; norm weights 1 + N(0, 0.1^2).
    """
    family, config, *_ = LAYOUTS[layout]
    config = {**config, **(shape or {})}
    cfg = native_config(family, config, layout)
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in MaskPredictor(cfg).state_dict().items()}
    official = {o: n for o, n in _name_table(family, cfg.n_layers).items() if n in shapes}
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for name in sorted(official):
        shape = shapes[official[name]]
        noise = torch.randn(shape, generator=gen)
        if official[name].endswith(("norm.weight", "ln_f.weight")):
            out[name] = 1 + 0.1 * noise
        elif official[name] in ("transformer.ff_out.weight", "transformer.wte.weight"):
            out[name] = noise
        else:
            out[name] = noise / shape[-1] ** 0.5
    if layout == "llada":
        _end_tokens_compete(out, config)
    return out


def _end_tokens_compete(weights: dict[str, torch.Tensor], config: dict[str, Any]) -> None:
    """Point the LM-head rows of EOS and EoT along a masked position's final hidden state.

    With small block weights that state is close to the normalised mask embedding times the final
    norm's weight, so EOS and EoT come out near the top at masked positions, as in a trained
    instruct model: that is what makes `logits_eos_inf` and `confidence_eos_eot_inf` change tokens.
    """
    mask = weights["model.transformer.wte.weight"][config["mask_token_id"]]
    direction = mask / mask.pow(2).mean().sqrt() * weights["model.transformer.ln_f.weight"]
    direction = direction / direction.norm()
    head = weights["model.transformer.ff_out.weight"]
    for token, scale in (("<|endoftext|>", END_TOKEN_SCALE), ("<|eot_id|>", END_TOKEN_SCALE - 0.5)):
        row = LLADA_SPECIALS[token]
        head[row] = scale * direction + 0.5 * head[row] / head[row].norm()


def _tokenizer_files(directory: Path, layout: str, vocab_size: int) -> None:
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    _, _, specials, template, extra = LAYOUTS[layout]
    taken = set(specials.values())
    vocab = {w: i for i, w in enumerate(WORDS)}
    vocab.update({f"w{i}": i for i in range(len(WORDS), vocab_size) if i not in taken})
    vocab.update(specials)
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    tok.save(str(directory / "tokenizer.json"))
    config = {"chat_template": template, "model_max_length": 256, **extra}
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2))


def write_checkpoint(
    directory: Path,
    layout: str,
    seed: int = 0,
    shards: int = 2,
    shape: dict[str, Any] | None = None,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """A complete checkpoint directory in the official layout (config, shards, tokenizer).

    `shape` overrides config.json keys (e.g. LLaDA-8B's d_model, n_layers, ...: an 8B-shaped
    random checkpoint for scale measurements, `benchmarks/real_scale.py`); `dtype` is what the
    shards store.
    """
    from safetensors.torch import save_file

    family, config, *_ = LAYOUTS[layout]
    config = {**config, **(shape or {})}
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    weights = official_weights(layout, seed, shape)
    names = sorted(weights)
    per = -(-len(names) // shards)
    weight_map, total = {}, 0
    for s in range(shards):
        file = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        part = {n: weights.pop(n).to(dtype).contiguous() for n in names[s * per : (s + 1) * per]}
        save_file(part, str(directory / file), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(part, file))
        total += sum(t.numel() * t.element_size() for t in part.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (directory / INDEX).write_text(json.dumps(index, indent=2))
    _tokenizer_files(directory, layout, config["vocab_size"])
    if layout == "dream":  # the official Dream code reads its special ids from here
        ids = {k: config[k] for k in ("bos_token_id", "eos_token_id", "pad_token_id")}
        generation = {**ids, "mask_token_id": config["mask_token_id"]}
        (directory / "generation_config.json").write_text(json.dumps(generation, indent=2))
    return directory
