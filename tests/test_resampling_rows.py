"""The all-problems-at-once resamplers give, row for row, exactly what the one-problem schemes
give (the executor uses the former, the reference interpreter the latter)."""

from __future__ import annotations

import math

import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from s3dsl.runtime import resampling
from s3dsl.runtime.semantics import resample_logweights, resample_logweights_rows

LOGW = st.one_of(
    st.floats(-30, 30, allow_nan=False),
    st.integers(-3, 3).map(float),  # ties
    st.just(-math.inf),
)


@st.composite
def blocks(draw):
    b, n = draw(st.integers(1, 5)), draw(st.integers(1, 24))
    rows = draw(st.lists(st.lists(LOGW, min_size=n, max_size=n), min_size=b, max_size=b))
    n_out = draw(st.integers(1, 24))
    seed = draw(st.integers(0, 2**16))
    u = torch.rand(b, 2 * n + n_out + 2, dtype=torch.float64,
                   generator=torch.Generator().manual_seed(seed))
    return torch.tensor(rows, dtype=torch.float64), n_out, u


@settings(max_examples=60, deadline=None)
@given(blocks())
def test_row_resamplers_equal_the_one_problem_schemes(block):
    logw, n_out, u = block
    weights = resampling.normalize_rows(logw)
    ess = resampling.ess_rows(weights).tolist()
    assert resampling.ess_rows_on_host(weights) == ess  # the executor's form: the same bits
    for method in resampling.ROW_METHODS:
        ancestors = resampling.resample_rows(weights, n_out, method, u)
        # the executor draws only the first uniforms the row form reads
        drawn = u[:, : resampling.row_uniforms(method, n_out)]
        assert torch.equal(resampling.resample_rows(weights, n_out, method, drawn), ancestors)
        for b in range(len(logw)):
            one = resampling.normalize(logw[b])
            assert torch.equal(one, weights[b])
            assert resampling.ess(one) == ess[b]
            assert torch.equal(resampling.METHODS[method](one, n_out, u[b]), ancestors[b])


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 4), st.integers(1, 6), st.sampled_from(("auto", "score", "logw")),
       st.data())
def test_row_logweights_equal_the_one_problem_rule(b, n, source, data):
    cell = st.one_of(st.floats(-5, 5), st.just(math.nan))
    score = torch.tensor(data.draw(st.lists(st.lists(cell, min_size=n, max_size=n),
                                            min_size=b, max_size=b)), dtype=torch.float64)
    logw = torch.randn(b, n, dtype=torch.float64)
    args = {"weights": source, "beta": 0.5}
    rows = resample_logweights_rows(score, logw, args)
    for i in range(b):
        one = resample_logweights(score[i].tolist(), logw[i].tolist(), args)
        assert torch.equal(one.isnan(), rows[i].isnan())
        assert torch.equal(torch.nan_to_num(one), torch.nan_to_num(rows[i]))


@settings(max_examples=200, deadline=None)
@given(weights=st.lists(st.one_of(st.just(0.0), st.floats(1e-300, 1.0)), min_size=1, max_size=16),
       scale=st.sampled_from((1.0, 1 - 1e-15, 1 - 1e-9, 1 + 1e-15)),
       points=st.lists(st.floats(0.0, 1.0, exclude_max=True), min_size=1, max_size=8))
def test_inverse_cdf_needs_no_last_entry_fix(weights, scale, points):
    """The clamp alone gives what setting the cdf's last entry just above 1 gives (a cdf never
    decreases, so only a count of n can change, and the clamp maps it to n - 1), also when the
    total rounds below or above 1 and for zero weights at either end."""
    w = torch.tensor(weights, dtype=torch.float64)
    assume(float(w.sum()) > 0)
    w = w / w.sum() * scale
    p = torch.tensor(points, dtype=torch.float64)
    cdf = torch.cumsum(w, 0)
    cdf[-1] = 1.0 + 1e-12
    fixed = torch.searchsorted(cdf, p, right=True).clamp_max(len(w) - 1)
    assert torch.equal(resampling._inverse_cdf(w, p), fixed)
    assert torch.equal(resampling._inverse_cdf_rows(w.view(1, -1), p.view(1, -1))[0], fixed)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 4), st.integers(1, 96), st.data())
def test_a_window_step_logprob_has_the_bits_of_the_whole_region_sum(rows, gen, data):
    """The executor commits on a window [w0, w0 + W) of the generated region; its step log-prob
    (`window_committed_logprob`) must be the reference's sum over the whole region bit for bit."""
    from s3dsl.runtime.semantics import committed_logprob, window_committed_logprob

    w0 = data.draw(st.integers(0, gen - 1))
    width = data.draw(st.integers(1, gen - w0))
    seed = data.draw(st.integers(0, 2**16))
    g = torch.Generator().manual_seed(seed)
    # float32 log-probs from -2e-9 to -20 (a confident token's is near 0): summed in float64 the
    # low bits round, so a sum over the window alone would differ from the region's
    x0_logp = -torch.exp(torch.rand(rows, width, generator=g) * 23 - 20)
    commit = torch.rand(rows, width, generator=g) > 0.4
    full_logp, full_commit = torch.zeros(rows, gen), torch.zeros(rows, gen, dtype=torch.bool)
    full_logp[:, w0 : w0 + width], full_commit[:, w0 : w0 + width] = x0_logp, commit
    want = committed_logprob(full_logp, full_commit)
    assert torch.equal(window_committed_logprob(x0_logp, commit, gen, w0), want)
    out = torch.empty(rows, dtype=torch.float64)
    window_committed_logprob(x0_logp, commit, gen, w0, out=out)
    assert torch.equal(out, want)
