"""Resampling schemes: ancestor indices from normalized weights and the problem's uniforms.

Pure functions of (weights, uniforms), shared by the reference interpreter and the executor.
Every scheme returns ancestors in ascending order so that the population layout is canonical.
"""

from __future__ import annotations

import math

import torch

from s3dsl.shape_constants import shape_constant


def normalize(logw: torch.Tensor) -> torch.Tensor:
    """exp-normalize float64 log-weights; all -inf means uniform."""
    logw = logw.double()
    if torch.isneginf(logw).all():
        return torch.full_like(logw, 1.0 / len(logw))
    w = torch.exp(logw - logw.max())
    return w / w.sum()


def ess(weights: torch.Tensor) -> float:
    """Normalized effective sample size 1 / (n * sum w^2) in (0, 1]."""
    return float(1.0 / (len(weights) * (weights**2).sum()))


def _inverse_cdf(weights: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """The first index whose cdf exceeds each point. A point at or past the cdf's last entry
    (a total rounded below 1) gets the last index: the clamp does what setting the last entry
    to just above 1 would (the cdf never decreases, so only the count n can change)."""
    cdf = torch.cumsum(weights, 0)
    return torch.searchsorted(cdf, points, right=True).clamp_max(len(weights) - 1)


def multinomial(weights: torch.Tensor, n: int, u: torch.Tensor) -> torch.Tensor:
    return _inverse_cdf(weights, u[:n]).sort().values


def systematic(weights: torch.Tensor, n: int, u: torch.Tensor) -> torch.Tensor:
    points = (torch.arange(n, dtype=torch.float64) + u[0]) / n
    return _inverse_cdf(weights, points)


def stratified(weights: torch.Tensor, n: int, u: torch.Tensor) -> torch.Tensor:
    points = (torch.arange(n, dtype=torch.float64) + u[:n]) / n
    return _inverse_cdf(weights, points)


def residual(weights: torch.Tensor, n: int, u: torch.Tensor) -> torch.Tensor:
    counts = torch.floor(n * weights).long()
    rest = n - int(counts.sum())
    if rest > 0:
        frac = n * weights - counts
        counts += torch.bincount(multinomial(frac / frac.sum(), rest, u), minlength=len(weights))
    return _from_counts(counts)


def ssp(weights: torch.Tensor, n: int, u: torch.Tensor) -> torch.Tensor:
    """Srinivasan sampling process: each candidate gets floor(nW) or floor(nW)+1 copies, exactly
    n in all, E[copies] = nW. The first two undecided fractional parts are resolved against each
    other, one uniform per pair, until at most one is left.

    Resolving a pair decides at least one of them and the other (if undecided) stays the first
    undecided index, so the process is one left-to-right pass with a carry: O(n), the same pairs
    and the same float64 arithmetic as re-scanning the undecided list after every pair."""
    expected = (n * weights).tolist()
    counts = [math.floor(e) for e in expected]
    frac = [e - c for e, c in zip(expected, counts)]
    draw, carry = 0, None

    def undecided(f: float) -> bool:
        return 1e-12 < f < 1 - 1e-12

    uniforms = u.tolist()
    for j, f in enumerate(frac):
        if not undecided(f):
            continue
        if carry is None:
            carry = j
            continue
        i = carry
        while undecided(frac[i]) and undecided(frac[j]):  # once, unless round-off keeps both
            a, b = min(1 - frac[i], frac[j]), min(frac[i], 1 - frac[j])
            if uniforms[draw % len(uniforms)] < b / (a + b):
                frac[i], frac[j] = frac[i] + a, frac[j] - a
            else:
                frac[i], frac[j] = frac[i] - b, frac[j] + b
            draw += 1
        carry = i if undecided(frac[i]) else j if undecided(frac[j]) else None
    for k, f in enumerate(frac):
        counts[k] += 1 if f > 0.5 else 0
    result = torch.tensor(counts, dtype=torch.long)
    short = n - int(result.sum())  # float round-off can leave one copy unplaced
    if short:
        result[int(torch.argmax(weights))] += short
    return _from_counts(result)


def topk(weights: torch.Tensor, n: int, u: torch.Tensor) -> torch.Tensor:
    """The n heaviest (lower index wins ties), repeating from the top if n exceeds the pool."""
    order = torch.sort(-weights, stable=True).indices
    reps = order.repeat(-(-n // len(order)))[:n]
    return reps.sort().values


def _from_counts(counts: torch.Tensor) -> torch.Tensor:
    return torch.repeat_interleave(torch.arange(len(counts)), counts)


METHODS = {
    "multinomial": multinomial,
    "systematic": systematic,
    "stratified": stratified,
    "residual": residual,
    "ssp": ssp,
    "topk": topk,
}


def resample(
    weights: torch.Tensor, n: int, method: str, u: torch.Tensor, strata: torch.Tensor | None = None
) -> torch.Tensor:
    """Ancestors of n survivors. With strata, every non-empty stratum keeps at least one survivor
    when n allows, the rest are shared by stratum weight, and each stratum resamples inside."""
    weights = weights.double()
    if strata is None:
        return METHODS[method](weights, n, u)
    labels = strata.unique(sorted=True)
    mass = torch.stack([weights[strata == s].sum() for s in labels])
    base = (
        torch.ones(len(labels), dtype=torch.long)
        if n >= len(labels)
        else torch.zeros(len(labels), dtype=torch.long)
    )
    extra = n - int(base.sum())
    alloc = (
        base
        + torch.bincount(
            METHODS["ssp" if method == "topk" else method](mass / mass.sum(), extra, u),
            minlength=len(labels),
        )
        if extra > 0
        else base
    )
    out = []
    for i, s in enumerate(labels):
        members = (strata == s).nonzero().flatten()
        if int(alloc[i]) == 0:
            continue
        w = weights[members]
        w = w / w.sum() if float(w.sum()) > 0 else torch.full_like(w, 1.0 / len(w))
        out.append(members[METHODS[method](w, int(alloc[i]), u[i + 1 :].roll(0))])
    return torch.cat(out).sort().values


# -- all problems at once ---------------------------------------------------------------------
# The same schemes over a [B, n] block of weights (one row per problem), for the executor, so a
# step resamples every problem with a handful of tensor ops instead of a Python loop. Each row's
# result equals the one-problem function above bit for bit (same float64 ops, row-wise).
ROW_METHODS = ("multinomial", "systematic", "stratified")


def row_uniforms(method: str, n: int) -> int:
    """How many of a problem's uniforms (its first ones) `resample_rows` reads for n survivors:
    element i of a draw does not depend on how many follow it, so the batched form draws these
    only and still equals the one-problem form, which draws the full count."""
    return 1 if method == "systematic" else n


def normalize_rows(logw: torch.Tensor) -> torch.Tensor:
    """`normalize` of every row of [B, n] log-weights."""
    logw = logw if logw.dtype == torch.float64 else logw.double()
    top = logw.amax(dim=1, keepdim=True)
    w = torch.exp(logw - top)
    w = w / w.sum(dim=1, keepdim=True)
    if _finite_on_host(top):  # no row is all -inf (a CPU batch's few maxima, read on the host)
        return w
    # a row all -inf (its max is -inf; a nan max is not) is uniform, as `normalize` makes it
    return torch.where(top == -math.inf, 1.0 / logw.shape[1], w)


def _finite_on_host(top: torch.Tensor) -> bool:
    """True when no entry of a small CPU tensor is -inf (one host copy, no tensor op); False
    otherwise, or for a tensor the sync-free form must handle (device, compiled graph)."""
    if top.device.type != "cpu" or top.numel() > 4096 or torch.compiler.is_compiling():
        return False
    return -math.inf not in top.reshape(-1).tolist()


def ess_rows(weights: torch.Tensor) -> torch.Tensor:
    """`ess` of every row of [B, n] normalized weights."""
    return 1.0 / (weights.shape[1] * (weights**2).sum(dim=1))


def ess_rows_on_host(weights: torch.Tensor) -> list[float]:
    """`ess_rows(weights).tolist()`, the same bits: the sums of squares as tensors, the last
    two float64 operations (n * s, 1 / that) in Python floats, which round alike."""
    n = weights.shape[1]
    return [1.0 / (n * s) for s in (weights**2).sum(dim=1).tolist()]


def _inverse_cdf_rows(weights: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """`_inverse_cdf` of every row."""
    cdf = torch.cumsum(weights, 1)
    return torch.searchsorted(cdf, points, right=True).clamp_max(weights.shape[1] - 1)


def resample_rows(weights: torch.Tensor, n: int, method: str, u: torch.Tensor) -> torch.Tensor:
    """[B, n] ancestors (within each row, ascending) of rows of normalized weights, with the
    problem's uniforms u[b]; `method` must be one of ROW_METHODS. Sync-free and on the weights'
    device, so the captured step (`static_resample`) uses it as it is."""
    weights = weights if weights.dtype == torch.float64 else weights.double()
    device = weights.device
    steps = shape_constant(("resampling.steps", n, device),
                           lambda: torch.arange(n, dtype=torch.float64, device=device))
    if method == "multinomial":
        return _inverse_cdf_rows(weights, u[:, :n].contiguous()).sort(dim=1).values
    if method == "systematic":
        return _inverse_cdf_rows(weights, (steps + (u if u.shape[1] == 1 else u[:, :1])) / n)
    if method == "stratified":
        return _inverse_cdf_rows(weights, (steps + u[:, :n]) / n)
    raise ValueError(f"resample_rows: no batched form of {method!r}")
