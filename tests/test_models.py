"""Built-in models: tokenizer, config, loading, padding invariance, training, shipped weights."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from s3dsl.dsl.errors import S3DSLError
from s3dsl.models import (
    MODELS,
    CharTokenizer,
    ModelConfig,
    build_random_model,
    load_model,
    save_model,
)
from s3dsl.models.config import FIELD_CHECKS
from s3dsl.models.registry import WEIGHTS_DIR
from s3dsl.models.tokenizer import DEFAULT_CHARS
from s3dsl.models.train import TrainConfig, diffusion_loss, make_batch, train
from s3dsl.runtime.model import MaskedLM, Tokenizer
from s3dsl.tasks import get_task

# Problems the built-in `single` strategy (LLaDA low-confidence, temperature 0) solves among the
# first SLICE test problems with the shipped weights, recorded from a run through the runtime.
SLICE = 32
RECORDED_CORRECT = {"arith": 17, "sudoku": 15}


@given(st.text(alphabet=DEFAULT_CHARS, max_size=100))
@settings(max_examples=50, deadline=None)
def test_tokenizer_round_trip(text):
    tok = CharTokenizer()
    assert tok.decode(tok.encode(text)) == text


def test_tokenizer_specials():
    tok = CharTokenizer()
    assert isinstance(tok, Tokenizer)
    assert (tok.pad_id, tok.mask_id, tok.eos_id) == (0, 1, 2)
    ids = [tok.pad_id] + tok.encode("1+2=3#3") + [tok.mask_id, tok.eos_id] + tok.encode("99")
    assert tok.decode(ids) == "1+2=3#3?"
    with pytest.raises(ValueError):
        tok.encode("1 + 2")
    # numpy and tensor ids decode alike; ids outside the vocabulary show as nothing
    assert tok.decode(np.array(ids)) == tok.decode(torch.tensor(ids)) == "1+2=3#3?"
    assert tok.decode([99, -1] + tok.encode("7")) == "7"


def test_config_json_round_trip(tmp_path):
    cfg = ModelConfig(d_model=64, n_layers=3, n_heads=2, d_ff=96, rope_theta=500000.0)
    cfg.to_json(tmp_path / "config.json")
    assert ModelConfig.from_json(tmp_path / "config.json") == cfg
    with pytest.raises(ValueError):
        ModelConfig(d_model=30, n_heads=4)


def test_every_config_field_is_checked_when_read_from_a_file():
    """A field of a type `ModelConfig.checked` has no check for would load unchecked: each
    field's type has one, its default passes it, and a value of another kind is the file's
    error naming the key."""
    wrong = {"int": "many", "int | None": [2], "float": "big", "bool": 1, "str": 3}
    for f in fields(ModelConfig):
        assert f.type in FIELD_CHECKS, f"ModelConfig.{f.name}: no check for {f.type!r}"
        assert ModelConfig.checked({f.name: getattr(ModelConfig(), f.name)}, "c.json") \
            == ModelConfig()
        with pytest.raises(S3DSLError, match=f"c.json: {f.name} "):
            ModelConfig.checked({f.name: wrong[f.type]}, "c.json")


def test_registry_names_and_errors(tmp_path):
    assert set(MODELS) == {"arith", "sudoku", "tiny-random"}
    with pytest.raises(S3DSLError) as err:
        load_model("aritj")
    assert "did you mean 'arith'" in str(err.value)
    with pytest.raises(S3DSLError):
        load_model(str(tmp_path / "nothing-here"))


def test_tiny_random_is_a_deterministic_masked_lm():
    a, b = load_model("tiny-random"), load_model("tiny-random")
    assert isinstance(a, MaskedLM)
    assert a.shifted_logits is False and a.mask_id == a.tokenizer.mask_id == 1
    assert a.device == torch.device("cpu") and 0 < a.num_parameters() < 100_000
    for (name, p), (_, q) in zip(
        a.module.named_parameters(), b.module.named_parameters(), strict=True
    ):
        assert torch.equal(p, q), name
    cfg = ModelConfig(d_model=32, n_layers=1, n_heads=2, d_ff=64)
    c, d = build_random_model(cfg, seed=1), build_random_model(cfg, seed=2)
    assert not torch.equal(c.module.transformer.wte.weight, d.module.transformer.wte.weight)


def test_llada_weight_names():
    names = set(load_model("tiny-random").module.state_dict())
    for n in (
        "transformer.wte.weight",
        "transformer.ln_f.weight",
        "transformer.ff_out.weight",
        "transformer.blocks.0.attn_norm.weight",
        "transformer.blocks.0.q_proj.weight",
        "transformer.blocks.0.attn_out.weight",
        "transformer.blocks.0.ff_proj.weight",
        "transformer.blocks.0.up_proj.weight",
        "transformer.blocks.1.ff_out.weight",
    ):
        assert n in names


def test_save_load_directory(tmp_path):
    model = build_random_model(ModelConfig(d_model=32, n_layers=1, n_heads=2, d_ff=64), seed=3)
    save_model(model.module, tmp_path)
    again = load_model(str(tmp_path))
    ids = torch.tensor([[5, 6, 7, 1, 1]])
    assert torch.equal(model.forward(ids, None), again.forward(ids, None))


def test_forward_invariant_to_left_padding():
    model = load_model("tiny-random")
    tok, gen = model.tokenizer, 6
    prompts = ["12+3=", "7*8-40+2="]
    rows = [tok.encode(p) + [model.mask_id] * gen for p in prompts]
    width = max(map(len, rows))
    ids = torch.tensor([[tok.pad_id] * (width - len(r)) + r for r in rows])
    attn = torch.tensor([[False] * (width - len(r)) + [True] * len(r) for r in rows])
    batched = model.forward(ids, attn)
    assert batched.shape == (2, width, model.vocab_size)
    for i, r in enumerate(rows):
        alone = model.forward(torch.tensor([r]), torch.ones(1, len(r), dtype=torch.bool))
        torch.testing.assert_close(batched[i, width - len(r) :], alone[0], atol=1e-5, rtol=1e-5)
        # no mask at all means positions 0..L-1, the same as an all-True mask
        torch.testing.assert_close(model.forward(torch.tensor([r]), None), alone)


def test_isolated_prompt_never_sees_the_answer_so_its_cache_is_exact():
    model = load_model("tiny-random")
    assert model.config.isolate_prompt and model.exact_prompt_cache
    tok, gen = model.tokenizer, 6
    rows = [tok.encode(p) for p in ("12+3=", "7*8-40+2=")]
    width = max(map(len, rows))
    prompts = torch.tensor([[tok.pad_id] * (width - len(r)) + r for r in rows])
    pmask = torch.tensor([[False] * (width - len(r)) + [True] * len(r) for r in rows])
    answers = torch.randint(
        3, model.vocab_size, (2, gen), generator=torch.Generator().manual_seed(0)
    )
    ids, attn = torch.cat([prompts, answers], 1), torch.cat([pmask, torch.ones(2, gen).bool()], 1)
    full = model.forward(ids, attn, gen)
    other = model.forward(torch.cat([prompts, answers.flip(1)], 1), attn, gen)
    torch.testing.assert_close(full[:, :width][pmask], other[:, :width][pmask])
    cache = model.encode_prompt(prompts, pmask)
    rows_of = torch.tensor([1, 0, 1])  # any particle layout over the cached prompts
    cached = model.forward_answer(cache, rows_of, answers[rows_of])
    torch.testing.assert_close(cached, full[rows_of, width:], atol=1e-5, rtol=1e-5)


def test_full_attention_prompt_sees_the_answer_and_needs_no_gen_length():
    from dataclasses import replace

    from s3dsl.models.registry import TINY_CONFIG

    model = build_random_model(replace(TINY_CONFIG, isolate_prompt=False))
    assert not model.exact_prompt_cache
    ids = torch.tensor([[5, 6, 7, 1, 1], [5, 6, 7, 8, 9]])
    logits = model.forward(ids, None)
    assert not torch.allclose(logits[0, :3], logits[1, :3])
    with pytest.raises(ValueError, match="gen_length"):
        load_model("tiny-random").module(ids)


def test_training_loss_only_on_generated_positions():
    tok, task = CharTokenizer(), get_task("arith")
    problems = task.problems("train", 4)
    ids, attn, gen_mask = make_batch(problems, tok, task.gen_length)
    width = ids.shape[1] - task.gen_length
    assert gen_mask[:, width:].all() and not gen_mask[:, :width].any()
    p = problems[0]
    row = ids[0][attn[0]].tolist()
    assert tok.decode(row) == p.prompt + p.target  # decode stops at the first EOS
    assert row[len(p.prompt) + len(p.target) :] == [tok.eos_id] * (task.gen_length - len(p.target))
    model = build_random_model(ModelConfig(d_model=32, n_layers=1, n_heads=2, d_ff=64))
    module = model.module.train()
    loss = diffusion_loss(
        module, ids, attn, gen_mask, tok.mask_id, torch.Generator().manual_seed(0)
    )
    loss.backward()
    assert torch.isfinite(loss) and loss.item() > 0


@pytest.mark.parametrize("task_name", ["arith", "sudoku"])
def test_training_runs_a_few_steps(task_name, tmp_path):
    cfg = ModelConfig(d_model=32, n_layers=1, n_heads=2, d_ff=64, max_len=192)
    tc = TrainConfig(steps=3, batch_size=4, warmup=1)
    module, wall = train(task_name, cfg, tc, tmp_path, quiet=True)
    assert (tmp_path / "config.json").is_file() and (tmp_path / "model.safetensors").is_file()
    again, _ = train(task_name, cfg, tc, None, quiet=True)
    for p, q in zip(module.parameters(), again.parameters(), strict=True):
        assert torch.equal(p, q)  # fixed seeds, deterministic data


def test_shipped_weights_are_small():
    size = sum(f.stat().st_size for f in Path(WEIGHTS_DIR).rglob("*") if f.is_file())
    assert size < 20 * 2**20


@pytest.mark.parametrize("name", ["arith", "sudoku"])
def test_shipped_model_reproduces_recorded_accuracy(name):
    from s3dsl.session import run_strategy

    summary = run_strategy("single", model=name, task=name, limit=SLICE, batch_size=SLICE)
    correct = sum(r.correct for r in summary.per_problem)
    assert abs(correct - RECORDED_CORRECT[name]) <= 1, correct
