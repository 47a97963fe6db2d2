"""Resampling of every problem at once on the device, with fixed shapes and no host sync.

Multinomial, systematic and stratified are `resampling.resample_rows`, already sync-free (and
the log-weights `ops.resample.resample_logweights_rows`). What the captured step needs beyond
them is here: SSP with no data-dependent shape (`repeat_interleave` by counts) and no Python
branch on values, giving row by row the same float64 operations, so the same ancestors, as
`resampling.ssp` (its left-to-right pass with a carry is unrolled over the static candidate
count).
"""

from __future__ import annotations

import torch

from s3dsl.runtime import resampling

METHODS = (*resampling.ROW_METHODS, "ssp")
_EPS = 1e-12  # resampling.ssp's "undecided" margin


def _from_counts(counts: torch.Tensor, n: int) -> torch.Tensor:
    """[B, n] ascending ancestors holding candidate i counts[b, i] times (counts sum to n)."""
    ends = counts.cumsum(dim=1)
    slots = torch.arange(n, device=counts.device).expand(counts.shape[0], n).contiguous()
    return torch.searchsorted(ends, slots, right=True)


def ssp_rows(weights: torch.Tensor, n: int, u: torch.Tensor) -> torch.Tensor:
    """`resampling.ssp` of every row: the same pairs, the same draws, the same float64 ops."""
    rows, width = weights.shape
    dev = weights.device
    expected = n * weights
    counts = torch.floor(expected)
    frac = expected - counts
    carry = torch.full((rows,), -1, dtype=torch.long, device=dev)
    draw = torch.zeros(rows, dtype=torch.long, device=dev)
    column = torch.arange(width, device=dev).view(1, -1)

    def undecided(f: torch.Tensor) -> torch.Tensor:
        return (f > _EPS) & (f < 1 - _EPS)

    for j in range(width):
        fj = frac[:, j]
        open_j = undecided(fj)
        i = carry.clamp(min=0)
        fi = frac.gather(1, i.view(-1, 1)).squeeze(1)
        pair = open_j & (carry >= 0)  # one pass of the pairwise loop resolves at least one
        a = torch.minimum(1 - fi, fj)
        b = torch.minimum(fi, 1 - fj)
        uj = u.gather(1, (draw % u.shape[1]).view(-1, 1)).squeeze(1)
        up = uj < b / (a + b)
        new_i = torch.where(up, fi + a, fi - b)
        new_j = torch.where(up, fj - a, fj + b)
        at_i = (column == i.view(-1, 1)) & pair.view(-1, 1)
        frac = torch.where(at_i, new_i.view(-1, 1), frac)
        frac[:, j] = torch.where(pair, new_j, fj)
        draw = draw + pair.long()
        after = torch.where(undecided(new_i), i, torch.where(undecided(new_j), j, -1))
        carry = torch.where(pair, after, torch.where(open_j & (carry < 0), j, carry))
    counts = counts.long() + (frac > 0.5).long()
    short = n - counts.sum(dim=1, keepdim=True)  # float round-off can leave one copy unplaced
    heaviest = column == weights.argmax(dim=1, keepdim=True)
    counts = counts + torch.where(heaviest, short, 0)
    return _from_counts(counts, n)


def resample_rows(weights: torch.Tensor, n: int, method: str, u: torch.Tensor) -> torch.Tensor:
    """[B, n] ancestors (ascending in each row) from [B, n_in] normalized weights and the
    problems' uniforms [B, m]; `method` is one of METHODS."""
    if method in resampling.ROW_METHODS:
        return resampling.resample_rows(weights, n, method, u)
    if method == "ssp":
        return ssp_rows(weights, n, u)
    raise ValueError(f"no static form of resampling method {method!r}")
