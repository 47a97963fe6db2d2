"""`rng.categorical`: the token proposal's draw (one uniform per position, any vocabulary)."""

from __future__ import annotations

import math

import torch

from s3dsl.runtime import rng


def test_draws_follow_the_softmax_at_the_temperature():
    """20,000 draws of one position: empirical frequencies within 4 standard errors of
    softmax(logits / T), the mask-like excluded entry never drawn."""
    logits = torch.tensor([2.0, 0.5, -1.0, 1.0, -math.inf, 0.0])
    keys = torch.arange(20_000, dtype=torch.int64)
    for temperature in (1.0, 0.5, 2.0):
        draws = rng.categorical(keys, 7, logits.expand(len(keys), 1, -1), 0, temperature,
                                exclude=3)
        counts = torch.bincount(draws.flatten(), minlength=6).double()
        weights = logits.double() / temperature
        weights[3] = -math.inf
        p = torch.softmax(weights, -1)
        se = (p * (1 - p) / len(keys)).sqrt()
        assert counts[3] == 0 and counts[4] == 0
        assert torch.all((counts / len(keys) - p).abs() <= 4 * se + 1e-12), temperature


def test_a_window_drawn_alone_equals_that_window_of_a_larger_draw():
    torch.manual_seed(0)
    logits = torch.randn(3, 10, 50)
    keys = torch.tensor([5, -7, 11])
    full = rng.categorical(keys, 9, logits)
    assert torch.equal(rng.categorical(keys, 9, logits[:, 4:7], offset=4), full[:, 4:7])


def test_a_row_draws_the_same_alone_as_in_any_batch():
    torch.manual_seed(1)
    logits = torch.randn(6, 4, 126_464)  # LLaDA's vocabulary
    keys = torch.tensor([1, 2, 3, 4, 5, 6]) * 977
    batch = rng.categorical(keys, 2, logits, temperature=0.7)
    for r in range(6):
        alone = rng.categorical(keys[r : r + 1], 2, logits[r : r + 1], temperature=0.7)
        assert torch.equal(alone[0], batch[r])


def test_degenerate_positions():
    """All weight on one entry: that entry; every entry -inf: index 0, as argmax gives."""
    one = torch.full((1, 1, 5), -math.inf)
    one[0, 0, 2] = 0.0
    none = torch.full((1, 1, 5), -math.inf)
    keys = torch.tensor([3])
    assert int(rng.categorical(keys, 1, one)) == 2
    assert int(rng.categorical(keys, 1, none)) == 0


def test_a_uniform_that_rounds_to_one_still_draws_inside_the_vocabulary(monkeypatch):
    # (m + 0.5) * 2^-53 rounds to 1.0 for the largest mantissa: the draw must stay below the
    # cdf's total, i.e. take the last entry with weight, never index V
    def ones(keys, counter, shape, offset=0):
        return torch.ones(len(keys), *shape, dtype=torch.float64)

    monkeypatch.setattr(rng, "uniform", ones)
    logw = torch.log_softmax(torch.randn(3, 4, 6), -1)
    logw[0, :, 5] = -math.inf  # the last entry has no weight: the one before it is drawn
    index = rng.categorical(torch.arange(3), 0, logw, exclude=2)
    assert index[0].tolist() == [4, 4, 4, 4]
    assert index[1:].eq(5).all()
