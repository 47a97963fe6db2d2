"""Record golden fixtures from the OFFICIAL LLaDA and Dream code on tiny random-weight checkpoints.

Needs transformers 4.x (the official modeling code does not load on 5.x) and the official files,
fetched separately and passed by path (nothing of them is copied into this project):

    python -m venv .venv-tf4 && .venv-tf4/bin/pip install torch==2.13.0 'transformers<5'
    PYTHONPATH=. .venv-tf4/bin/python benchmarks/golden_parity.py \\
        --llada-code DIR_WITH_modeling_llada.py_AND_configuration_llada.py \\
        --llada-generate PATH/TO/ML-GSAI/LLaDA/generate.py \\
        --dream-code DIR_WITH_modeling_dream.py_configuration_dream.py_generation_utils.py

For each layout (`s3dsl/models/tiny_official.py`, weights from a seed) it writes the checkpoint to
a temporary directory with the official code beside it, loads it with
`AutoModel.from_pretrained(..., trust_remote_code=True)` in float32, and records into
`tests/fixtures/golden/<layout>.json` (+ `.safetensors` for logits):
- the official model's logits on fixed canvases (all of Dream's vocabulary; for LLaDA's 126k
  vocabulary a fixed set of columns plus every row's max and logsumexp);
- the official sampler's tokens for every deterministic setting below: LLaDA `generate()` and
  Dream `diffusion_generate()` (temperature 0; sampled settings use torch's global RNG and cannot
  be reproduced token for token by any other implementation).
`tests/test_real_models.py` loads the same checkpoints natively (transformers 5) and compares.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import save_file

from s3dsl.models.hub_tokenizer import HubTokenizer, load_fast_tokenizer
from s3dsl.models.tiny_official import LAYOUTS, write_checkpoint

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "golden"
PROMPTS = ("w10 w11 w12 w13 w14 w15", "w901 w17 w1200 w30 w31 w3", "w7 w7 w7 w8 w9 w100")
LLADA_COLUMNS = 512  # logit columns kept for LLaDA (plus the special ids)
LLADA_SETTINGS = [  # generate() keyword arguments (temperature 0, low_confidence)
    {"steps": 16, "gen_length": 32, "block_length": 8},
    {"steps": 32, "gen_length": 32, "block_length": 32},
    {"steps": 12, "gen_length": 32, "block_length": 8},
    {"steps": 8, "gen_length": 32, "block_length": 16},
    {"steps": 16, "gen_length": 32, "block_length": 8, "cfg_scale": 1.5},
    {"steps": 16, "gen_length": 32, "block_length": 8, "logits_eos_inf": True},
    {"steps": 16, "gen_length": 32, "block_length": 8, "confidence_eos_eot_inf": True},
    {"steps": 16, "gen_length": 32, "block_length": 32, "cfg_scale": 0.5,
     "logits_eos_inf": True, "confidence_eos_eot_inf": True},
    {"steps": 32, "gen_length": 32, "block_length": 32, "confidence_eos_eot_inf": True},
    {"steps": 32, "gen_length": 32, "block_length": 32, "logits_eos_inf": True},
]
PADDED_PROMPTS = ("w10 w11 w12", "w901 w17 w1200 w30 w31 w3 w44 w45", "w7 w8 w9 w100 w5")
DREAM_SETTINGS = [  # diffusion_generate() keyword arguments (temperature 0)
    {"steps": 16, "max_new_tokens": 32, "alg": "maskgit_plus"},
    {"steps": 16, "max_new_tokens": 32, "alg": "topk_margin"},
    {"steps": 16, "max_new_tokens": 32, "alg": "entropy"},
    {"steps": 32, "max_new_tokens": 32, "alg": "maskgit_plus", "eps": 1e-3},
    {"steps": 10, "max_new_tokens": 32, "alg": "entropy", "eps": 0.1},
    {"steps": 16, "max_new_tokens": 32, "alg": "maskgit_plus", "top_p": 0.9},
    {"steps": 16, "max_new_tokens": 32, "alg": "topk_margin", "top_k": 3},
    {"steps": 16, "max_new_tokens": 32, "alg": "maskgit_plus", "top_k": 50, "top_p": 0.95},
]


def official_checkpoint(layout: str, code: Path, workdir: Path, seed: int) -> Path:
    """The tiny checkpoint with the official modeling files beside it, as on the hub."""
    directory = write_checkpoint(workdir / layout, layout, seed)
    config = json.loads((directory / "config.json").read_text())
    if layout == "llada":
        files = ("modeling_llada.py", "configuration_llada.py")
        config["auto_map"] = {
            "AutoConfig": "configuration_llada.LLaDAConfig",
            "AutoModel": "modeling_llada.LLaDAModelLM",
        }
    else:
        files = ("modeling_dream.py", "configuration_dream.py", "generation_utils.py")
        config["auto_map"] = {
            "AutoConfig": "configuration_dream.DreamConfig",
            "AutoModel": "modeling_dream.DreamModel",
        }
    for name in files:
        shutil.copy(code / name, directory / name)
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    return directory


def load_official(directory: Path) -> torch.nn.Module:
    from transformers import AutoModel

    model = AutoModel.from_pretrained(
        str(directory), trust_remote_code=True, torch_dtype=torch.float32, local_files_only=True
    )
    return model.eval()


def prompt_batches(directory: Path) -> dict[str, list[list[int]]]:
    """The prompts as ids, plain and chat-templated (equal lengths: no padding needed)."""
    tok = load_fast_tokenizer(directory)
    out = {}
    for chat in (False, True):
        hub = HubTokenizer(tok, int(tok.eos_token_id), chat=chat)
        ids = [hub.encode_prompt(p) for p in PROMPTS]
        assert len({len(i) for i in ids}) == 1, "prompts must have equal token lengths"
        out["chat" if chat else "plain"] = ids
    return out


def canvases(prompt: list[int], mask_id: int, gen: int, gen_seed: int) -> torch.Tensor:
    """Prompt + a half-filled answer region and prompt + all-masked answer."""
    g = torch.Generator().manual_seed(gen_seed)
    filled = torch.randint(10, 1900, (gen,), generator=g)
    filled[torch.randperm(gen, generator=g)[: gen // 2]] = mask_id
    p = torch.tensor(prompt)
    return torch.stack([torch.cat([p, torch.full((gen,), mask_id)]), torch.cat([p, filled])])


def llada(args, workdir: Path) -> None:
    directory = official_checkpoint("llada", args.llada_code, workdir, args.seed)
    model = load_official(directory)
    spec = importlib.util.spec_from_file_location("official_llada_generate", args.llada_generate)
    generate_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate_module)
    mask_id = LAYOUTS["llada"][1]["mask_token_id"]
    prompts = prompt_batches(directory)
    x = canvases(prompts["plain"][0], mask_id, 32, args.seed)
    with torch.no_grad():
        logits = model(x).logits.float()
    g = torch.Generator().manual_seed(args.seed + 1)
    cols = torch.unique(torch.cat([
        torch.randint(0, logits.shape[-1], (LLADA_COLUMNS,), generator=g),
        torch.tensor(sorted(LAYOUTS["llada"][2].values())),
    ]))
    tensors = {
        "canvas": x,
        "columns": cols,
        "logits": logits[..., cols].contiguous(),
        "row_max": logits.max(-1).values.contiguous(),
        "row_logsumexp": logits.logsumexp(-1).contiguous(),
    }
    runs = []
    for style, ids in prompts.items():
        for setting in LLADA_SETTINGS if style == "plain" else LLADA_SETTINGS[:1]:
            prompt = torch.tensor(ids)
            out = generate_module.generate(
                model, prompt, attention_mask=torch.ones_like(prompt), temperature=0.0,
                remasking="low_confidence", mask_id=mask_id, **setting,
            )
            runs.append({"prompts": style, "options": setting,
                         "tokens": out[:, prompt.shape[1]:].tolist()})
            print("llada", style, setting, "->", out[0, prompt.shape[1]:][:12].tolist())
    record("llada", directory, prompts, tensors, runs, args)


def dream(args, workdir: Path) -> None:
    directory = official_checkpoint("dream", args.dream_code, workdir, args.seed)
    model = load_official(directory)
    mask_id = LAYOUTS["dream"][1]["mask_token_id"]
    prompts = prompt_batches(directory)
    x = canvases(prompts["plain"][0], mask_id, 32, args.seed)
    with torch.no_grad():
        logits = model(x, "full", None).logits.float()  # the call diffusion_generate makes
    tensors = {"canvas": x, "logits": logits.contiguous()}
    runs = [dream_padded(model, directory)]
    for style, ids in prompts.items():
        for setting in DREAM_SETTINGS if style == "plain" else DREAM_SETTINGS[:1]:
            prompt = torch.tensor(ids)
            options = {"temperature": 0.0, "eps": 1e-3, "top_p": None, "top_k": None, **setting}
            effective = model._prepare_generation_config(None, **options)
            out = model.diffusion_generate(prompt, attention_mask=None, **options)
            used = {k: getattr(effective, k) for k in ("steps", "eps", "alg", "alg_temp",
                                                      "temperature", "top_p", "top_k")}
            runs.append({"prompts": style, "options": setting, "effective": used,
                         "tokens": out[:, prompt.shape[1]:].tolist()})
            print("dream", style, used, "->", out[0, prompt.shape[1]:][:12].tolist())
    record("dream", directory, prompts, tensors, runs, args)


def dream_padded(model, directory: Path) -> dict:
    """Prompts of different lengths, left-padded with an attention mask (Dream honours it)."""
    tok = load_fast_tokenizer(directory)
    ids = [tok.encode(p, add_special_tokens=False) for p in PADDED_PROMPTS]
    width = max(map(len, ids))
    pad = LAYOUTS["dream"][1]["pad_token_id"]
    batch = torch.tensor([[pad] * (width - len(i)) + i for i in ids])
    mask = torch.tensor([[0] * (width - len(i)) + [1] * len(i) for i in ids])
    setting = DREAM_SETTINGS[0]
    options = {"temperature": 0.0, "eps": 1e-3, "top_p": None, "top_k": None, **setting}
    out = model.diffusion_generate(batch, attention_mask=mask, **options)
    print("dream padded", setting, "->", out[0, width:][:12].tolist())
    return {"prompts": "padded", "texts": list(PADDED_PROMPTS), "options": setting,
            "effective": {k: options.get(k) for k in ("steps", "eps", "alg", "temperature")},
            "tokens": out[:, width:].tolist()}


def record(layout, directory, prompts, tensors, runs, args) -> None:
    import transformers

    OUT.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(OUT / f"{layout}.safetensors"))
    meta = {
        "layout": layout,
        "seed": args.seed,
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "official_code": args.provenance.get(layout, ""),
        "texts": list(PROMPTS),
        "prompts": prompts,
        "runs": runs,
    }
    (OUT / f"{layout}.json").write_text(json.dumps(meta, indent=1) + "\n")
    print("wrote", OUT / f"{layout}.json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--llada-code", type=Path, help="dir with modeling/configuration_llada.py")
    parser.add_argument("--llada-generate", type=Path, help="ML-GSAI/LLaDA generate.py")
    parser.add_argument("--dream-code", type=Path, help="dir with Dream's modeling, config and "
                        "generation_utils.py")
    parser.add_argument("--llada-source", default="", help="where the LLaDA files came from")
    parser.add_argument("--dream-source", default="", help="where the Dream files came from")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.provenance = {"llada": args.llada_source, "dream": args.dream_source}
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        if args.llada_code and args.llada_generate:
            llada(args, Path(tmp))
        if args.dream_code:
            dream(args, Path(tmp))
    if not (args.llada_code or args.dream_code):
        sys.exit("nothing to do: pass --llada-code/--llada-generate and/or --dream-code")


if __name__ == "__main__":
    main()
