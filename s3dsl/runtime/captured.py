"""A whole search step as one fixed-shape, sync-free function (the `static-steps` pass on steps
that expand, denoise, score with a tensor verifier, weight and resample).

The general executor asks the data what to do at every stage: which rows have masks, where the
first mask is, which forward is cached, what text a verifier reads. In a step whose stages are all
capturable every answer is known on the host before the step runs: all rows of a problem are in
the same place of the LLaDA schedule, so which forwards run and which windows they keep are
Python facts of the step context (`plan_step`), not of the tensors. What is left (`run_step`) is a
pure function of fixed-shape tensors, with no `.item()`, no data-dependent branch and no
data-dependent shape, that `torch.compile(fullgraph=True)` captures whole (CUDA graphs on a GPU).

State is a dict of tensors, problem-major: the population's per-row fields, each problem's root
key, and the forward cache (the reduced forward of every cached row, `slot` pointing at it), which
survives expand and resample as the eager executor's does. Each step gives the eager executor's
tokens, scores, log-weights and counters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from s3dsl.runtime import resampling, rng, static_resample, transition
from s3dsl.runtime.population import STATE
from s3dsl.runtime.scoring import clean_prediction
from s3dsl.runtime.semantics import (
    children,
    committed_logprob,
    resample_logweights_rows,
    survivor_keys,
    weight_update,
)
from s3dsl.runtime.static import StepSpec

Logits = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (tokens, owners) -> logits
# every tensor field of a particle (runtime/population.py STATE) but its forward-cache slot: a
# captured step keeps its own cache
ROW_FIELDS = tuple(f.name for f in STATE if f.dtype is not None and f.name != "slot")
CACHE_FIELDS = ("window", "clean_tok", "clean_logp")


@dataclass(frozen=True)
class Shape:
    """What every step of a batch shares: sizes and ids, Python constants in the graph."""

    gen: int
    prompt_len: int  # positions before the answer in what `logits_of` returns
    mask_id: int
    shifted: bool
    eos_id: int | None


@dataclass(frozen=True)
class Expand:
    k: int
    uid: int
    keep_cache: bool


@dataclass(frozen=True)
class Denoise:
    spec: StepSpec
    forward: bool  # False: the cached forward's window covers the block
    cache_w0: int = 0  # where the cached window starts


@dataclass(frozen=True)
class Score:
    scorer: Callable
    forward: str  # "none" (no masks left) | "cached" | "fresh"
    w0: int  # the fresh forward keeps the log-probs of [w0, w1) for the commits to come
    w1: int


@dataclass(frozen=True)
class Weight:
    by: str
    scale: float


@dataclass(frozen=True)
class Resample:
    n: int
    method: str
    weights: str
    beta: float
    uid: int


@dataclass(frozen=True)
class DropCache:
    """The end of a stage without forward-reuse: no later stage may use its forward."""


Op = Expand | Denoise | Score | Weight | Resample | DropCache


# -- the step --------------------------------------------------------------------------------
def run_step(
    logits_of: Logits,
    state: dict[str, torch.Tensor],
    ops: tuple[Op, ...],
    shape: Shape,
    step: torch.Tensor,
    steps_left: torch.Tensor,
    problem0: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """One step of `ops` over the problems of `state` (problem `problem0` first): a new state.
    Step numbers and the first problem are 0-d tensors, so one graph serves every step of a
    block and every same-shape chunk. Each resample adds its ESS per problem as `ess<i>`."""
    state = dict(state)
    problems = state["root"].shape[0]
    resamples = 0
    for op in ops:
        rows = state["tokens"].shape[0]
        n = rows // problems
        if isinstance(op, Expand):
            index, child, group = children(rows, op.k, n, step.device)
            state = _gather_rows(state, index, keep_cache=op.keep_cache)
            state["key"] = rng.mix(state["key"], op.uid, step, child)
            state["group"] = group
        elif isinstance(op, Denoise):
            _denoise(logits_of, state, op, shape, step, steps_left, problem0, n)
        elif isinstance(op, Score):
            _score(logits_of, state, op, shape, problem0, n)
        elif isinstance(op, Weight):
            args = {"by": op.by, "scale": op.scale}
            state["logw"] = weight_update(state["logw"], state["step_logp"], state["score"],
                                          state["prev_score"], state["best_score"], args)
        elif isinstance(op, Resample):
            state = _resample(state, op, step, problems, n, resamples)
            resamples += 1
        else:
            _drop_cache(state)
    return state


def _owners(problem0: torch.Tensor, rows: int, n: int) -> torch.Tensor:
    return problem0 + torch.arange(rows, device=problem0.device) // n


def _forward(logits_of: Logits, state: dict, shape: Shape, problem0: torch.Tensor, n: int,
             w0: int, w1: int) -> transition.Reduced:
    tokens = state["tokens"]
    logits = logits_of(tokens, _owners(problem0, tokens.shape[0], n))
    return transition.reduce_logits(logits, shape.prompt_len, shape.shifted, w0, w1)


def _denoise(logits_of, state, op: Denoise, shape: Shape, step, steps_left, problem0, n):
    spec, gen = op.spec, shape.gen
    if op.forward:
        window = _forward(logits_of, state, shape, problem0, n, spec.w0, spec.block_end)
        window_logp = window.window_logp
    else:
        cw0 = op.cache_w0
        cached = state["window"][state["slot"]]
        window_logp = cached[:, spec.w0 - cw0 : spec.block_end - cw0]
    tokens = state["tokens"]
    new, commit, x0_logp = transition.propose_and_commit(
        window_logp, tokens[:, -gen:], state["key"], mask_id=shape.mask_id, w0=spec.w0,
        block_end=spec.block_end, steps_left=steps_left, step=step,
        temperature=spec.temperature, rule=spec.rule, threshold=spec.threshold,
        sampler=spec.sampler,
    )
    state["tokens"] = torch.cat([tokens[:, :-gen], new], dim=1)
    state["commit_logp"] = torch.where(commit, x0_logp, state["commit_logp"])
    state["step_logp"] = committed_logprob(x0_logp, commit)
    _drop_cache(state)  # the committed states have no forward yet


def _score(logits_of, state, op: Score, shape: Shape, problem0, n):
    gen_tok, commit_logp = state["tokens"][:, -shape.gen :], state["commit_logp"]
    if op.forward == "fresh":
        red = _forward(logits_of, state, shape, problem0, n, op.w0, op.w1)
        rows = gen_tok.shape[0]
        state.update(window=red.window_logp, clean_tok=red.clean_tok, clean_logp=red.clean_logp,
                     slot=torch.arange(rows, device=gen_tok.device))
    if op.forward == "none":
        tok, lp, filled = clean_prediction(gen_tok, commit_logp, None, None, shape.mask_id)
    else:
        slot = state["slot"]
        tok, lp, filled = clean_prediction(gen_tok, commit_logp, state["clean_tok"][slot],
                                           state["clean_logp"][slot], shape.mask_id)
    values = op.scorer(tok, lp, filled, shape.eos_id)
    state["prev_score"], state["score"] = state["score"], values
    state["best_score"] = torch.maximum(state["best_score"], values)
    state["answer_tok"] = tok
    state.pop("origin", None)  # the answers are this prediction's from now on


def _resample(state: dict, op: Resample, step, problems: int, n_in: int, index_of_op: int):
    score = state["score"].view(problems, n_in)
    logw = resample_logweights_rows(score, state["logw"].view(problems, n_in),
                                    {"weights": op.weights, "beta": op.beta})
    weights = resampling.normalize_rows(logw)
    keys = rng.mix(state["root"], op.uid, step)
    u = rng.uniform(keys, 0, (2 * n_in + op.n + 2,))
    ancestors = static_resample.resample_rows(weights, op.n, op.method, u)
    offsets = torch.arange(problems, device=step.device).view(-1, 1) * n_in
    index = (ancestors + offsets).reshape(-1)
    state = _gather_rows(state, index, keep_cache=True)
    state["key"] = survivor_keys(rng.mix, state["key"], op.uid, step, op.n)
    state["logw"] = torch.zeros_like(state["logw"])
    state[f"ess{index_of_op}"] = resampling.ess_rows(weights)
    return state


def _gather_rows(state: dict, index: torch.Tensor, keep_cache: bool) -> dict:
    out = dict(state)
    for name in (*ROW_FIELDS, "answer_tok", "origin"):
        if name in state:
            out[name] = state[name][index]
    if "slot" in state:
        if keep_cache:
            out["slot"] = state["slot"][index]
        else:
            _drop_cache(out)
    return out


def _drop_cache(state: dict) -> None:
    for name in (*CACHE_FIELDS, "slot"):
        state.pop(name, None)


# -- what the host knows before the step ------------------------------------------------------
@dataclass(frozen=True)
class Window:
    """The positions [w0, w1) whose log-probs the cached forward kept (none: no cache)."""

    w0: int
    w1: int


@dataclass(frozen=True)
class Planned:
    ops: tuple[Op, ...]
    forwards: tuple[int, ...]  # per forward, rows per problem
    resamples: int
    cache: Window | None  # the cache after the step
    peak: int  # the most rows per problem at any point of the step


def plan_step(stages, ctx, decode, cache: Window | None, n: int, scorers: dict[str, Callable],
              sampler: transition.Sampler) -> Planned:
    """The ops of one step and what they cost, decided from the step context alone: every row
    of a problem has masks in the current block until its last step (the applicability check of
    `s3dsl.compiler.rewrites.capturable_step`), so forwards and windows are the same for all."""
    from s3dsl.runtime.semantics import arg

    gen, length = decode.gen_length, decode.block_length
    filled_end = ctx.block * length  # every earlier block was filled at its last step
    ops: list[Op] = []
    forwards: list[int] = []
    resamples, peak = 0, n
    for stage in stages:
        op = stage.op
        fwd = stage.node("forward")
        reuse = fwd is not None and fwd.get("cache") == "reuse"
        if op.name == "expand":
            gather = stage.node("gather")
            keep = gather is not None and gather.get("cache") == "keep"
            ops.append(Expand(int(op.args["k"]), op.uid, keep))
            cache = cache if keep else None
            n *= int(op.args["k"])
        elif op.name == "denoise":
            w0 = ctx.block_end - length
            spec = StepSpec(w0=w0, block_end=ctx.block_end,
                            temperature=float(arg(op, "temperature", decode.temperature)),
                            rule=arg(op, "rule", decode.commit),
                            threshold=float(arg(op, "threshold", decode.threshold)),
                            sampler=sampler)
            cached = reuse and cache is not None and cache.w0 <= w0 and cache.w1 >= ctx.block_end
            ops.append(Denoise(spec, not cached, cache.w0 if cached and cache else 0))
            if not cached:
                forwards.append(n)
            cache = None
            if ctx.steps_left == 1:
                filled_end = ctx.block_end
        elif op.name == "score":
            w1 = ctx.next_block_end
            if filled_end >= gen:
                mode = "none"
            elif reuse and cache is not None and cache.w0 <= filled_end and cache.w1 >= w1:
                mode = "cached"
            else:
                mode, cache = "fresh", Window(filled_end, w1)
                forwards.append(n)
            ops.append(Score(scorers[op.args["verifier"]], mode, filled_end, w1))
        elif op.name == "weight":
            ops.append(Weight(op.args["by"], float(op.args["scale"])))
        elif op.name == "resample":
            a = op.args
            ops.append(Resample(int(a["n"]), a["method"], a["weights"], float(a["beta"]), op.uid))
            resamples += 1
            n = int(a["n"])
        else:  # pragma: no cover - the compiler captures no other stage
            raise ValueError(f"{op.name} is not capturable")
        if stage.has("drop-cache"):
            ops.append(DropCache())
            cache = None
        peak = max(peak, n)
    return Planned(tuple(ops), tuple(forwards), resamples, cache, peak)
