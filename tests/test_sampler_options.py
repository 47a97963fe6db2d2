"""The official samplers' options in the shared transition math, checked against their definitions
(the token-exact checks against the official code are in test_real_models.py)."""

from __future__ import annotations

import math

import pytest
import torch

from s3dsl.dsl.errors import S3DSLError
from s3dsl.runtime import transition
from s3dsl.runtime.transition import Sampler, filter_logp, propose_and_commit

MASK = 0


OFF = Sampler()


def step(logp, gen, *, rule="confidence", steps_left=4, temperature=0.0, sampler=OFF, keys=None):
    keys = torch.arange(len(gen)) if keys is None else keys
    return propose_and_commit(logp, gen, keys, mask_id=MASK, w0=0, block_end=gen.shape[1],
                              steps_left=steps_left, step=3, temperature=temperature, rule=rule,
                              threshold=0.9, sampler=sampler)


def random_logp(rows: int, width: int, vocab: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.log_softmax(torch.randn(rows, width, vocab, generator=g) * 3, dim=-1)


@pytest.mark.parametrize("steps,eps,masked", [(16, 1e-3, 32), (10, 0.1, 32), (5, 1e-3, 7)])
def test_linear_schedule_is_dreams_int_of_masked_times_one_minus_s_over_t(steps, eps, masked):
    """Dream: timesteps linspace(1, eps, steps + 1); k = int(m * (1 - s/t)); all at the end."""
    times = torch.linspace(1, eps, steps + 1)
    sampler = Sampler(schedule="linear", eps=eps, steps_per_block=steps)
    m = masked
    for i in range(steps):
        gen = torch.tensor([[MASK] * m + [5] * (masked - m)])
        _, commit, _ = step(random_logp(1, masked, 9, i), gen, steps_left=steps - i,
                            sampler=sampler)
        want = m if i == steps - 1 else int(torch.tensor(float(m)) * (1 - times[i + 1] / times[i]))
        assert int(commit.sum()) == want
        m -= want
    assert m == 0


def test_origin_commits_each_masked_position_with_probability_one_minus_s_over_t():
    sampler = Sampler(schedule="linear", eps=1e-3, steps_per_block=4)
    gen = torch.full((4000, 16), MASK)
    _, commit, _ = step(random_logp(4000, 16, 7), gen, rule="origin", steps_left=4,
                        sampler=sampler)
    times = torch.linspace(1, 1e-3, 5)
    want = float(1 - times[1] / times[0])  # 0.25
    assert abs(commit.float().mean().item() - want) < 0.01
    _, last, _ = step(random_logp(8, 16, 7), gen[:8], rule="origin", steps_left=1,
                      sampler=sampler)
    assert bool(last.all())  # the last step commits everything left


def test_alg_temp_samples_positions_and_tends_to_top_k_as_it_vanishes():
    logp = random_logp(1, 12, 9).expand(600, -1, -1)
    gen = torch.full((600, 12), MASK)
    _, greedy, _ = step(logp, gen, steps_left=4)
    _, cold, _ = step(logp, gen, steps_left=4, sampler=Sampler(alg_temp=1e-6))
    _, hot, _ = step(logp, gen, steps_left=4, sampler=Sampler(alg_temp=100.0))
    assert torch.equal(cold, greedy) and (hot.sum(1) == 3).all()
    spread = hot.float().mean(0)  # nearly uniform over the 12 positions at a high temperature
    assert spread.min() > 0.15 and spread.max() < 0.35
    assert not torch.equal(hot[0], hot[1]) or not torch.equal(hot[1], hot[2])


def test_top_p_and_top_k_filters_renormalise_like_dreams():
    logp = torch.log_softmax(torch.tensor([[2.0, 1.0, 0.5, 0.0, -1.0]]), -1)
    p = logp.exp()
    kept = filter_logp(logp, 0.7, None).exp()  # cumulative 0.55, 0.75: keep the first two
    assert torch.allclose(kept[0, :2], p[0, :2] / p[0, :2].sum()) and kept[0, 2:].eq(0).all()
    top3 = filter_logp(logp, None, 3).exp()
    assert torch.allclose(top3[0, :3], p[0, :3] / p[0, :3].sum()) and top3[0, 3:].eq(0).all()
    assert torch.allclose(filter_logp(logp, 1.0, 0).exp(), p)  # both off


def test_top_k_one_gives_margin_of_the_whole_probability():
    logp = random_logp(2, 6, 9)
    gen = torch.full((2, 6), MASK)
    plain = step(logp, gen, rule="margin")
    filtered = step(logp, gen, rule="margin", sampler=Sampler(top_k=1))
    assert torch.equal(plain[0], step(logp, gen, rule="margin", sampler=Sampler(top_k=0))[0])
    assert filtered[1].sum() == plain[1].sum()


def test_banned_ids_are_never_proposed_and_no_confidence_ids_commit_last():
    logp = torch.log_softmax(torch.tensor([[[0.0, 9.0, 1.0, 0.5]] * 4]), -1)  # token 1 wins
    gen = torch.full((1, 4), MASK)
    new, _, x0_logp = step(logp, gen, steps_left=1, sampler=Sampler(banned_ids=(1,)))
    assert (new == 2).all()
    assert torch.allclose(x0_logp, logp[0, :, 2][None])  # log-probs stay the model's own
    mixed = logp.clone()
    mixed[0, 0] = torch.log_softmax(torch.tensor([0.0, 1.0, 5.0, 0.5]), -1)  # proposes 2
    _, commit, _ = step(mixed, gen, steps_left=4, sampler=Sampler(no_confidence_ids=(1,)))
    assert commit[0].tolist() == [True, False, False, False]  # the others propose the banned 1
    _, commit, _ = step(mixed, gen, steps_left=4)
    assert commit[0].tolist() == [False, True, False, False]  # without it, 1 is most confident


def test_default_sampler_changes_nothing():
    logp = random_logp(3, 8, 11)
    gen = torch.full((3, 8), MASK)
    for rule in ("confidence", "margin", "entropy", "random", "threshold"):
        for temperature in (0.0, 0.7):
            a = step(logp, gen, rule=rule, temperature=temperature)
            b = propose_and_commit(logp, gen, torch.arange(3), mask_id=MASK, w0=0, block_end=8,
                                   steps_left=4, step=3, temperature=temperature, rule=rule,
                                   threshold=0.9)
            assert all(torch.equal(x, y) for x, y in zip(a, b))



def test_filters_that_are_off_return_the_log_probs_themselves():
    """top_p 1 and top_k 0 (the decode defaults) or None mean off: `filter_logp` hands back the
    very tensor, not a renormalised copy (an op a step, and ulps apart); one that is on filters."""
    logp = random_logp(2, 4, 6)
    for top_p, top_k in ((None, None), (1.0, 0), (1.0, None), (None, 0)):
        assert filter_logp(logp, top_p, top_k) is logp
    assert bool(torch.isinf(filter_logp(logp, None, 3)).any())
    assert bool(torch.isinf(filter_logp(logp, 0.5, 0)).any())


@pytest.mark.parametrize("key,value,message", [
    ("schedule", "cosine", "unknown schedule"),
    ("eps", "0", "decode.eps must be a number in"),
    ("top_p", "1.5", "decode.top_p"),
    ("top_k", "-1", "decode.top_k"),
    ("cfg_scale", "-1", "decode.cfg_scale"),
    ("commit", "origin", "needs schedule: linear"),
    ("commit", "maskgit", "unknown commit rule"),
])
def test_bad_sampler_settings_are_user_errors(key, value, message):
    from s3dsl.catalog import resolve_strategy
    from s3dsl.session import compile_file

    with pytest.raises(S3DSLError, match=message):
        compile_file(resolve_strategy("single"), {key: value}, 16, "confidence")


def test_official_names_resolve_to_rules():
    from s3dsl.catalog import resolve_strategy
    from s3dsl.session import compile_file

    llada = compile_file(resolve_strategy("llada"), {"cfg_scale": "1.5"}, 16, "confidence")
    assert (llada.decode.commit, llada.decode.cfg_scale, llada.decode.schedule) == (
        "confidence", 1.5, "even")
    dream = compile_file(resolve_strategy("dream"), {"alg": "topk_margin", "eps": "0.01"}, 16,
                         "confidence")
    d = dream.decode
    assert (d.commit, d.eps, d.schedule, d.tempered_confidence) == ("margin", 0.01, "linear", True)
    assert compile_file(resolve_strategy("dream"), None, 16, "confidence").decode.commit == "origin"
    assert math.isclose(transition.NO_CONFIDENCE, -1e30)
