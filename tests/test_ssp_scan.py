"""`resampling.ssp` is a one-pass scan; it must pick exactly what the pairwise definition picks
(re-scan the undecided list after every pair, as first written), ancestors and all."""

from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from s3dsl.runtime import resampling


def ssp_by_definition(weights: torch.Tensor, n: int, u: torch.Tensor) -> torch.Tensor:
    expected = (n * weights).tolist()
    counts = [math.floor(e) for e in expected]
    frac = [e - c for e, c in zip(expected, counts)]
    draw = 0
    pending = [i for i, f in enumerate(frac) if 1e-12 < f < 1 - 1e-12]
    while len(pending) >= 2:
        i, j = pending[0], pending[1]
        a, b = min(1 - frac[i], frac[j]), min(frac[i], 1 - frac[j])
        if float(u[draw % len(u)]) < b / (a + b):
            frac[i], frac[j] = frac[i] + a, frac[j] - a
        else:
            frac[i], frac[j] = frac[i] - b, frac[j] + b
        draw += 1
        pending = [k for k in pending if 1e-12 < frac[k] < 1 - 1e-12]
    for k, f in enumerate(frac):
        counts[k] += 1 if f > 0.5 else 0
    result = torch.tensor(counts, dtype=torch.long)
    short = n - int(result.sum())
    if short:
        result[int(torch.argmax(weights))] += short
    return torch.repeat_interleave(torch.arange(len(counts)), result)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.floats(-20, 20), st.integers(-2, 2).map(float), st.just(-math.inf)),
                min_size=1, max_size=40),
       st.integers(1, 40), st.integers(1, 60), st.integers(0, 2**16))
def test_ssp_scan_equals_the_pairwise_definition(logw, n, n_u, seed):
    weights = resampling.normalize(torch.tensor(logw, dtype=torch.float64))
    u = torch.rand(n_u, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    assert torch.equal(resampling.ssp(weights, n, u), ssp_by_definition(weights, n, u))


def test_ssp_scan_equals_the_definition_on_dyadic_and_uniform_weights():
    u = torch.rand(64, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    for n_w in (1, 2, 3, 7, 8, 64, 128):
        for n in (1, 3, 8, 32, 128):
            for w in (torch.full((n_w,), 1.0 / n_w, dtype=torch.float64),
                      torch.softmax(torch.linspace(0, 3, n_w, dtype=torch.float64), 0)):
                assert torch.equal(resampling.ssp(w, n, u), ssp_by_definition(w, n, u))
