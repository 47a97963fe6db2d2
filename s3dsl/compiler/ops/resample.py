"""resample(n, method, beta, weights, within): n survivors per problem, drawn by weight."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from s3dsl.compiler.nodes import Node
from s3dsl.compiler.ops.base import Batch, Param, Primitive
from s3dsl.shape_constants import shape_constant

RESAMPLE_METHODS = ("multinomial", "systematic", "stratified", "residual", "ssp", "topk")


def resample_logweights(scores: Sequence[float], logw: Sequence[float], args: dict) -> torch.Tensor:
    """One problem's float64 log-weights: score/beta when scored (or asked), else its logw."""
    source = args["weights"]
    if source == "auto":
        source = "score" if not any(math.isnan(x) for x in scores) else "logw"
    if source == "score":
        return torch.tensor(scores, dtype=torch.float64) / args["beta"]
    return torch.tensor(logw, dtype=torch.float64)


def resample_logweights_rows(score: torch.Tensor, logw: torch.Tensor, args: dict) -> torch.Tensor:
    """`resample_logweights` of every problem's row of [B, n] scores and log-weights at once, on
    their device and sync-free (the captured step uses it too)."""
    source = args["weights"]
    score, logw = _float64(score), _float64(logw)
    if source == "score":
        return score / args["beta"]
    if source == "logw":
        return logw
    if _no_nan_on_host(score):  # every problem by its scores (the common case)
        return score / args["beta"]
    by_score = ~torch.isnan(score).any(dim=1, keepdim=True)
    return torch.where(by_score, score / args["beta"], logw)


def _float64(t: torch.Tensor) -> torch.Tensor:
    return t if t.dtype == torch.float64 else t.double()


def _no_nan_on_host(t: torch.Tensor) -> bool:
    """True when a small CPU tensor holds no nan, read in one host copy (no tensor op); False
    when it has one, or is not a small CPU tensor outside a compiled graph (then the caller's
    sync-free tensor form applies)."""
    if t.device.type != "cpu" or t.numel() > 4096 or torch.compiler.is_compiling():
        return False
    return not any(x != x for x in t.reshape(-1).tolist())


def _on_cpu(t: torch.Tensor) -> torch.Tensor:
    return t if t.device.type == "cpu" else t.cpu()


def _record_ess(ex: Batch, b: int, ess: float) -> None:
    ex.resamples[b] += 1
    ex.min_ess[b] = ess if ex.min_ess[b] is None else min(ex.min_ess[b], ess)
    ex.last_ess[b] = ess


def resample_all(ex: Batch, op, ctx, active) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Every problem at once (row schemes, no strata): the same ancestors as one problem at a
    time, from the same per-problem uniforms, in a few [B, n] tensor ops. (ancestors, which rows
    are survivors: None when all are)."""
    rs, rng = ex.kernels.resampling, ex.kernels.rng
    B, n_in, n_out = len(ex.batch), ex.n, op.args["n"]
    logw = resample_logweights_rows(
        _on_cpu(ex.pop.score).view(B, n_in), _on_cpu(ex.pop.logw).view(B, n_in), op.args
    )
    weights = rs.normalize_rows(logw)
    # a batch's few root keys, mixed as Python ints (the same bits as `rng.mix`)
    keys = [rng.mix_int(root, op.uid, ctx.step) for root in ex.root.tolist()]
    u = rng.host_uniform(keys, 0, (rs.row_uniforms(op.args["method"], n_out),))
    ancestors = rs.resample_rows(weights, n_out, op.args["method"], u)
    ancestors = ancestors + shape_constant(("resample.problem-offsets", B, n_in),
                                           lambda: torch.arange(0, B * n_in, n_in).view(B, 1))
    ess = rs.ess_rows_on_host(weights)
    if active is None:  # every problem resamples (the common case: no `when=`)
        for b in range(B):
            _record_ess(ex, b, ess[b])
        return ancestors.reshape(-1).to(ex.device), None
    live = active.cpu().bool()
    if not bool(live.all()):  # a finished problem keeps its rows (then n_out == n_in)
        own = torch.arange(B * n_in).view(B, n_in)
        ancestors = torch.where(live.view(B, 1), ancestors, own)
    for b in range(B):
        if bool(live[b]):
            _record_ess(ex, b, ess[b])
    moved = live.view(B, 1).expand(B, n_out).reshape(-1)
    return ancestors.reshape(-1).to(ex.device), moved.to(ex.device)


def resample_each(ex: Batch, op, ctx, active) -> tuple[torch.Tensor, torch.Tensor]:
    """One problem at a time: strata, and schemes with no row form (residual, ssp, topk)."""
    rs = ex.kernels.resampling
    n_in, n_out = ex.n, op.args["n"]
    index, fresh = [], []
    for b in range(len(ex.batch)):
        sl = slice(b * n_in, (b + 1) * n_in)
        if active is not None and not bool(active[b]):
            index.append(torch.arange(sl.start, sl.stop))
            fresh.append(torch.zeros(n_in, dtype=torch.bool))
            continue
        logw = resample_logweights(ex.pop.score[sl].tolist(), ex.pop.logw[sl].tolist(), op.args)
        weights = rs.normalize(logw)
        _record_ess(ex, b, rs.ess(weights))
        u = ex.problem_uniforms(b, op, ctx, 2 * n_in + n_out + 2)
        strata = ex.pop.stratum[sl].cpu() if op.args["within"] == "strata" else None
        ancestors = rs.resample(weights, n_out, op.args["method"], u, strata)
        index.append(ancestors + sl.start)
        fresh.append(torch.ones(n_out, dtype=torch.bool))
    return torch.cat(index).to(ex.device), torch.cat(fresh).to(ex.device)


def survivor_keys(mix: Callable[..., torch.Tensor], keys: torch.Tensor, uid: int,
                  step: int | torch.Tensor, n_out: int) -> torch.Tensor:
    """Survivor i of each problem (n_out per problem, problem-major) gets the key
    mix(its ancestor's key, uid, step, i). Shared with the captured step."""
    rows, device = keys.shape[0], keys.device
    number = shape_constant(("resample.survivor-number", rows, n_out, device),
                            lambda: torch.arange(rows, device=device) % n_out)
    return mix(keys, uid, step, number)


def batched(ex: Batch, op, ctx, active) -> None:
    """Survivors get fresh keys and log-weight 0; a problem whose `when` fails keeps its rows."""
    n_in, n_out = ex.n, op.args["n"]
    by_rows = (
        op.args["method"] in ex.kernels.resampling.ROW_METHODS
        and op.args["within"] != "strata"
        and (active is None or n_out == n_in)
    )
    idx, moved = (resample_all if by_rows else resample_each)(ex, op, ctx, active)
    pop = ex.pop.gather(idx)
    new_keys = survivor_keys(ex.kernels.rng.mix, pop.key, op.uid, ctx.step, n_out)
    if moved is None:  # every row is a survivor
        pop.key, pop.logw = new_keys, torch.zeros_like(pop.logw)
    else:
        pop.key = torch.where(moved, new_keys, pop.key)
        pop.logw = torch.where(moved, torch.zeros_like(pop.logw), pop.logw)
    ex.pop = pop


def _needs_of_args(args: dict) -> list[frozenset[str]]:
    extra = []
    if args.get("weights") in ("score", "logw"):
        extra.append(frozenset({"scored" if args["weights"] == "score" else "logw"}))
    if args.get("within") == "strata":
        extra.append(frozenset({"strata"}))
    return extra


PRIMITIVE = Primitive(
    "resample",
    "Draw n survivors per problem with weights exp(score/beta) or exp(log-weight).",
    (
        Param("n", "int", low=1, high=4096, doc="survivors per problem"),
        Param("method", "choice", "systematic", RESAMPLE_METHODS),
        Param("beta", "float", 1.0, low=1e-9, doc="temperature of exp(score/beta)"),
        Param("weights", "choice", "auto", ("auto", "score", "logw"),
              doc="auto: scores when scored, else log-weights"),
        Param("within", "choice", "none", ("none", "strata")),
    ),
    needs=(frozenset({"scores", "logw"}),),
    clears=frozenset({"groups"}),
    lower=lambda args: (
        Node.of("resample", n=args.get("n"), method=args.get("method"),
                weights=args.get("weights"), within=args.get("within"), cache="carry"),
    ),
    count=lambda n, args, group: int(args["n"]),
    needs_of_args=_needs_of_args,
    batched=batched,
    masks_problems=True,
)
