"""The prompt cache's preallocated context buffer is reused across forwards: a forward must
never read another row layout's prompt keys/values, nor a previous forward's answer part."""

from __future__ import annotations

import pytest
import torch

from s3dsl.models import prompt_cache
from s3dsl.models.registry import load_model


def _prompts(model, texts):
    tok = model.tokenizer
    rows = [tok.encode(t) for t in texts]
    width = max(map(len, rows))
    ids = torch.tensor([[tok.pad_id] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[False] * (width - len(r)) + [True] * len(r) for r in rows])
    return ids, mask


def _full(model, ids, mask, rows, answers):
    """The uncached answer logits of prompt rows[i] followed by answers[i]."""
    gen = answers.shape[1]
    full_ids = torch.cat([ids[rows], answers], 1)
    full_mask = torch.cat([mask[rows], torch.ones(len(rows), gen, dtype=torch.bool)], 1)
    return model.forward(full_ids, full_mask, gen)[:, -gen:]


@pytest.mark.parametrize("variant", ["kept", "one slot", "refilled"])
@pytest.mark.parametrize("texts", [("12+3=", "7*8-40+2=", "9="), ("1+2=", "3+4=", "5*6=")])
def test_buffer_reused_across_changing_row_layouts_stays_exact(monkeypatch, variant, texts):
    one_slot = variant == "one slot"
    if one_slot:  # the per-layer refill used when all layers' buffers would be too large
        monkeypatch.setattr(prompt_cache, "MAX_BUFFER_BYTES", 0)
    if variant == "refilled":  # as on an accelerator: the rows are never compared
        monkeypatch.setattr(prompt_cache.PromptCache, "_same_rows",
                            staticmethod(lambda buf, rows: False))
    model = load_model("tiny-random")
    ids, mask = _prompts(model, texts)
    cache = model.encode_prompt(ids, mask)
    assert cache.padded == (len(set(map(len, texts))) > 1)
    gen = torch.Generator().manual_seed(1)
    rows = torch.tensor([0, 0, 1, 2])
    layouts = [rows, rows.flip(0), torch.tensor([2, 1]), torch.tensor([1, 2, 2, 0, 0, 1]),
               torch.tensor([1, 2, 2, 0, 0, 1]),  # same layout twice: the buffer is kept
               torch.tensor([1, 2, 2]), torch.tensor([1, 2, 2, 0, 0, 1]), torch.tensor([1])]
    # (fewer rows that start the buffer's: kept too, and all of them again after)
    kept: list = []
    for i, layout in enumerate(layouts):
        answers = torch.randint(3, model.vocab_size, (len(layout), 6), generator=gen)
        keep: list = []
        got = model.forward_answer_keep(cache, layout, answers, keep)
        torch.testing.assert_close(got, _full(model, ids, mask, layout, answers),
                                   atol=1e-5, rtol=1e-5)
        kept.append((i, [(k.clone(), v.clone()) for k, v in keep], keep))
    if not one_slot:
        assert cache._buffer is not None and cache._buffer.slots == model.config.n_layers
    # what keep_kv received is not overwritten by the forwards after it
    for _, copies, keep in kept:
        for (k0, v0), (k, v) in zip(copies, keep, strict=True):
            assert torch.equal(k0, k) and torch.equal(v0, v)


def test_fewer_rows_that_start_the_buffers_rows_reuse_it():
    """One problem's rows are all its prompt: when dedup leaves fewer of them, the buffer's
    prompt part and rotary tables serve as they are (no refill); other rows refill it."""
    model = load_model("tiny-random")
    ids, mask = _prompts(model, ("12+3=", "7*8-40+2="))
    cache = model.encode_prompt(ids, mask)
    gen = torch.Generator().manual_seed(3)
    versions = []
    for rows in ([0, 0, 1, 1], [0, 0, 1], [0, 0, 1, 1], [0], [0, 1], [0, 1, 1]):
        rows = torch.tensor(rows)
        answers = torch.randint(3, model.vocab_size, (len(rows), 5), generator=gen)
        torch.testing.assert_close(model.forward_answer(cache, rows, answers),
                                   _full(model, ids, mask, rows, answers), atol=1e-5, rtol=1e-5)
        versions.append(cache._buffer.version)
    assert versions == [1, 1, 1, 1, 2, 3]


def test_rows_changed_in_place_between_forwards_are_seen():
    """The caller may reuse its rows tensor: the buffer compares contents, not identity."""
    model = load_model("tiny-random")
    ids, mask = _prompts(model, ("12+3=", "7*8-40+2="))
    cache = model.encode_prompt(ids, mask)
    rows = torch.tensor([0, 1, 1])
    answers = torch.randint(3, model.vocab_size, (3, 5), generator=torch.Generator().manual_seed(2))
    model.forward_answer(cache, rows, answers)
    rows[:] = torch.tensor([1, 0, 0])
    torch.testing.assert_close(model.forward_answer(cache, rows, answers),
                               _full(model, ids, mask, rows, answers), atol=1e-5, rtol=1e-5)


def test_the_answer_window_head_gives_the_full_heads_logits_there():
    model = load_model("tiny-random")
    tok = model.tokenizer
    prompts = [tok.encode("12+3="), tok.encode("7*8=")]
    width = max(map(len, prompts))
    ids = torch.tensor([[tok.pad_id] * (width - len(p)) + p for p in prompts])
    cache = model.encode_prompt(ids, ids != tok.pad_id)
    answer = torch.randint(3, len(tok), (4, 16), generator=torch.Generator().manual_seed(0))
    rows = torch.tensor([0, 0, 1, 1])
    with torch.inference_mode():
        full = model.forward_answer(cache, rows, answer)
        window = model.forward_answer(cache, rows, answer, window=(4, 9))
    assert window.shape == (4, 5, full.shape[-1])
    torch.testing.assert_close(window, full[:, 4:9])  # float32 round-off of another matmul shape


def test_a_model_whose_forward_answer_takes_no_window_gets_its_logits_sliced():
    from s3dsl.runtime.model import answer_logits

    model = load_model("tiny-random")

    class Older:  # a PromptCachingLM written before `window`
        def forward_answer(self, cache, rows, answer_ids):
            return model.forward_answer(cache, rows, answer_ids)

    tok = model.tokenizer
    ids = torch.tensor([tok.encode("12+3=")])
    cache = model.encode_prompt(ids, ids != tok.pad_id)
    answer = torch.randint(3, len(tok), (2, 12), generator=torch.Generator().manual_seed(1))
    rows = torch.tensor([0, 0])
    with torch.inference_mode():
        full = model.forward_answer(cache, rows, answer)
        assert torch.equal(answer_logits(Older(), cache, rows, answer, (3, 7)), full[:, 3:7])
        torch.testing.assert_close(answer_logits(model, cache, rows, answer, (3, 7)),
                                   full[:, 3:7])
