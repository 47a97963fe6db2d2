"""The `transformers` adapter on tiny random models built in the test (nothing downloaded)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")

from s3dsl.dsl.errors import S3DSLError  # noqa: E402
from s3dsl.runtime.adapters import HFMaskedLM, load_hf_model  # noqa: E402
from s3dsl.runtime.model import MaskedLM, Tokenizer  # noqa: E402

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ["hello", "world", "the", "cat", "sat", "on", "mat", "a", "b", "c", "1", "2", "+", "="]


def _tokenizer(tmp_path: Path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(SPECIAL + WORDS) + "\n")
    return transformers.BertTokenizer(vocab=str(vocab))


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tiny-bert")
    tok = _tokenizer(path)
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    transformers.BertForMaskedLM(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tiny-llama")
    tok = _tokenizer(path)
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    transformers.LlamaForCausalLM(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def test_load_bert_protocol_and_shapes(bert_dir: Path) -> None:
    lm = load_hf_model(str(bert_dir))
    assert isinstance(lm, MaskedLM) and isinstance(lm.tokenizer, Tokenizer)
    tok = transformers.AutoTokenizer.from_pretrained(str(bert_dir))
    assert lm.mask_id == tok.mask_token_id == SPECIAL.index("[MASK]")
    assert lm.tokenizer.eos_id == SPECIAL.index("[SEP]")
    assert lm.tokenizer.pad_id == SPECIAL.index("[PAD]")
    assert lm.vocab_size == len(SPECIAL) + len(WORDS)
    assert lm.shifted_logits is False and lm.device == torch.device("cpu")
    assert lm.num_parameters() == sum(p.numel() for p in lm.model.parameters()) > 0
    ids = torch.randint(0, lm.vocab_size, (3, 7))
    logits = lm.forward(ids, torch.ones(3, 7, dtype=torch.bool))
    assert logits.shape == (3, 7, lm.vocab_size)
    assert lm.forward(ids, None).shape == (3, 7, lm.vocab_size)


def test_overrides(bert_dir: Path) -> None:
    lm = load_hf_model(str(bert_dir), mask_id=7, shifted_logits=True, dtype="float32")
    assert lm.mask_id == 7 and lm.shifted_logits is True
    assert next(lm.model.parameters()).dtype == torch.float32


def test_tokenizer_round_trip(bert_dir: Path) -> None:
    tok = load_hf_model(str(bert_dir)).tokenizer
    ids = tok.encode("the cat sat on the mat")
    assert len(ids) == 6  # no [CLS]/[SEP] added
    assert tok.decode(ids) == "the cat sat on the mat"
    assert tok.decode(tok.encode("hello world")) == "hello world"


def _padding_invariance(lm: HFMaskedLM) -> None:
    torch.manual_seed(1)
    real = torch.randint(5, lm.vocab_size, (1, 6))
    pad = lm.tokenizer.pad_id
    alone = lm.forward(real, torch.ones(1, 6, dtype=torch.bool))
    padded_ids = torch.cat([torch.full((1, 3), pad), real], dim=1)
    mask = torch.cat([torch.zeros(1, 3, dtype=torch.bool), torch.ones(1, 6, dtype=torch.bool)], 1)
    # a batch mixing a left-padded row and a full row
    batch = torch.cat([padded_ids, torch.randint(5, lm.vocab_size, (1, 9))])
    bmask = torch.cat([mask, torch.ones(1, 9, dtype=torch.bool)])
    padded = lm.forward(batch, bmask)
    torch.testing.assert_close(padded[0, 3:], alone[0], atol=1e-5, rtol=1e-4)


def test_left_padding_gives_same_logits(bert_dir: Path) -> None:
    _padding_invariance(load_hf_model(str(bert_dir)))


def test_bidirectional_causal_architecture(llama_dir: Path) -> None:
    ids = torch.randint(5, 19, (1, 6))
    changed = ids.clone()
    changed[0, -1] = 4 if ids[0, -1] != 4 else 5
    full = torch.ones(1, 6, dtype=torch.bool)
    bi = load_hf_model(str(llama_dir), bidirectional=True, mask_id=4)
    assert not torch.allclose(bi.forward(ids, full)[0, 0], bi.forward(changed, full)[0, 0])
    _padding_invariance(bi)
    # the same weights under the causal mask: position 0 cannot see the last token
    causal = HFMaskedLM(bi.model, bi.tokenizer.tok)
    torch.testing.assert_close(causal.forward(ids, full)[0, 0], causal.forward(changed, full)[0, 0])


def test_causal_model_is_not_a_masked_lm(llama_dir: Path) -> None:
    with pytest.raises(S3DSLError) as e:
        load_hf_model(str(llama_dir))
    assert "not a masked LM" in str(e.value) and "bidirectional" in str(e.value)


def test_missing_local_model_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(S3DSLError) as e:
        load_hf_model(str(tmp_path / "nope"))
    assert "nothing is downloaded" in str(e.value)
    with pytest.raises(S3DSLError):
        load_hf_model("some-org/surely-not-cached-model-xyz")


def test_bad_dtype(bert_dir: Path) -> None:
    with pytest.raises(S3DSLError):
        load_hf_model(str(bert_dir), dtype="float33")


def test_no_mask_token_needs_override(tmp_path: Path) -> None:
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[SEP]", *WORDS]) + "\n")
    tok = transformers.BertTokenizer(vocab=str(vocab), mask_token=None, cls_token=None)
    config = transformers.BertConfig(
        vocab_size=20,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=1,
        intermediate_size=16,
    )
    model = transformers.BertForMaskedLM(config)
    with pytest.raises(S3DSLError) as e:
        HFMaskedLM(model, tok)
    assert "mask_id" in str(e.value)
    assert HFMaskedLM(model, tok, mask_id=3).mask_id == 3


@pytest.mark.parametrize("strategy", ["single", "s3", "imh"])
def test_strategies_run_on_a_transformers_model(bert_dir: Path, strategy: str) -> None:
    """The runtime reaches a `transformers` masked LM through the same interface, and its plans
    still give the reference interpreter's tokens (Dream-style shifted logits included)."""
    from s3dsl.catalog import builtin_strategies
    from s3dsl.compiler.passes import plan
    from s3dsl.session import compile_file, execute
    from s3dsl.tasks.base import Problem

    problems = [Problem("a", "1 + 2 =", "3"), Problem("b", "the cat sat on", "mat")]
    program = compile_file(builtin_strategies()[strategy], {"gen_length": "8", "steps": "8"}, 8,
                           "confidence")
    for shifted in (False, True):
        lm = load_hf_model(str(bert_dir), shifted_logits=shifted)
        outputs = []
        for level in (0, 2):
            results, _ = execute(plan(program, level), lm, problems, lambda t: t.strip() or None,
                                 lambda p, a: p == a, seed=1)
            outputs.append([[p.completion for p in r.particles] for r in results])
        assert outputs[0] == outputs[1]
        assert all(r.nfe > 0 for r in results)
