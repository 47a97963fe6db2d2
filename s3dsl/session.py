"""One run, end to end: strategy file -> program -> plan -> execution on a model -> summary."""

from __future__ import annotations

import hashlib
import resource
import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from s3dsl.compiler.build import build
from s3dsl.compiler.ir import Program
from s3dsl.compiler.passes import DEFAULT_OPT_LEVEL, OPT_IN, Plan, plan
from s3dsl.errors import S3DSLError
from s3dsl.runtime.adapters.guidance import with_guidance
from s3dsl.runtime.executor import BatchedExecutor, Counters
from s3dsl.runtime.model import MaskedLM
from s3dsl.runtime.reference import ReferenceInterpreter
from s3dsl.runtime.results import ProblemResult
from s3dsl.tasks.base import Problem


@dataclass
class RunSummary:
    strategy: str
    model: str
    task: str
    opt_level: int
    seed: int
    n_problems: int
    accuracy: float
    nfe_total: int
    nfe_per_problem: float
    predicted_nfe_per_problem: int
    wall_s: float
    tokens_per_s: float  # answer tokens (gen_length per problem) per second of wall time
    peak_memory_mb: float
    per_problem: list[ProblemResult] = field(default_factory=list)
    counters: dict = field(default_factory=dict)
    approximate: list[str] = field(default_factory=list)  # opt-in passes that may change tokens
    predicted_exact: bool = False  # the cost model's count is exact, not only an upper bound

    def to_json(self) -> dict:
        out = {k: v for k, v in self.__dict__.items() if k != "per_problem"}
        out["per_problem"] = [
            {
                "id": r.id,
                "prediction": r.prediction,
                "answer": r.answer,
                "correct": r.correct,
                "nfe": r.nfe,
                "score": r.score,
                "completion": r.completion,
                "particle_answers": [p.answer for p in r.particles],
                "particle_tokens": [p.tokens for p in r.particles],
                "accepted": r.accepted,
                "proposed": r.proposed,
            }
            for r in self.per_problem
        ]
        return out


def compile_file(
    path: str | Path,
    overrides: dict[str, str] | None = None,
    gen_length: int = 32,
    task_verifier: str = "confidence",
) -> Program:
    """Parse and compile a strategy file for a task's gen_length and default verifier."""
    from s3dsl.dsl.loader import load_strategy

    return build(load_strategy(Path(path)), overrides, gen_length, task_verifier)


_PLANS: OrderedDict[tuple, Plan] = OrderedDict()  # recently planned strategies, newest last
PLAN_CACHE_SIZE = 32


def planned(
    path: str | Path,
    overrides: dict[str, str] | None,
    gen_length: int,
    task_verifier: str,
    opt_level: int = DEFAULT_OPT_LEVEL,
    disable: tuple[str, ...] = (),
    enable: tuple[str, ...] = (),
) -> Plan:
    """`plan(compile_file(...))`, parsed and planned once per process for the same file bytes
    and arguments: a caller that runs one strategy many times (a sweep, a benchmark, lm-eval's
    requests) pays the 2-40 ms of parsing and planning once. Keyed by content, so an edited file
    is planned again; a plan is never changed by running it."""
    source = Path(path)
    try:
        content = hashlib.blake2b(source.read_bytes(), digest_size=16).digest()
    except OSError:  # unreadable: the loader says so, as an S3DSLError
        return plan(compile_file(source, overrides, gen_length, task_verifier), opt_level,
                    disable, enable=enable)
    key = (str(source), content, tuple(sorted((overrides or {}).items())), gen_length,
           task_verifier, opt_level, tuple(disable), tuple(enable))
    found = _PLANS.get(key)
    if found is None:
        program = compile_file(source, overrides, gen_length, task_verifier)
        found = _PLANS[key] = plan(program, opt_level, disable, enable=enable)
        if len(_PLANS) > PLAN_CACHE_SIZE:
            _PLANS.popitem(last=False)
    _PLANS.move_to_end(key)
    return found


def execute(
    the_plan: Plan,
    model: MaskedLM,
    problems: Sequence[Problem],
    extract: Callable[[str], str | None],
    is_correct: Callable[[str | None, str], bool],
    seed: int = 0,
    batch_size: int = 8,
    progress: Callable[[int], None] | None = None,
    observer: Callable[..., None] | None = None,
) -> tuple[list[ProblemResult], Counters | None]:
    """Run a plan on problems: the reference interpreter at opt level 0, else the executor.
    `observer(ctx, backend)` is called after every step (search traces); it only reads."""
    program = the_plan.program
    check_run_limits(the_plan, model, problems, seed, batch_size)
    model = with_guidance(model, program.decode.cfg_scale)  # LLaDA's cfg_scale (0 = off)
    with torch.inference_mode():
        if the_plan.reference:
            runner = ReferenceInterpreter(program, model, extract, seed, is_correct)
            runner.observer = observer
            results, counters = runner.run(problems, progress), None
        else:
            executor = BatchedExecutor(program, model, extract, seed, the_plan.flags, is_correct,
                                       the_plan.lowered)
            executor.observer = observer
            results, counters = executor.run(problems, batch_size, progress), executor.counters
    for r in results:
        r.correct = bool(is_correct(r.prediction, r.answer))
    return results, counters


# -- limits checked before the first forward ------------------------------------------------------

MAX_SEED = 2**63 - 1  # seeds are stored as SQLite integers


def check_run_options(seed: int, batch_size: int) -> None:
    """Flags that would otherwise fail deep in a run (or in the results database)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise S3DSLError(f"--batch-size must be at least 1, got {batch_size}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise S3DSLError(f"--seed must be between 0 and 2**63-1, got {seed}")


def model_max_length(model: MaskedLM) -> int | None:
    """The most positions (prompt and answer) the model takes, when it says."""
    owners = [model, getattr(model, "config", None)]
    inner = getattr(model, "model", None) or getattr(model, "module", None)
    owners.append(getattr(inner, "config", None))
    names = ("max_len", "max_position_embeddings", "max_sequence_length", "n_positions")
    for owner in owners:
        for name in (("max_length",) if owner is model else ()) + names:
            value = getattr(owner, name, None)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
    return None


def check_run_limits(
    the_plan: Plan, model: MaskedLM, problems: Sequence[Problem], seed: int = 0,
    batch_size: int = 8,
) -> None:
    """What the file, the data or a flag asks for, against the model and the machine: gen_length
    and every prompt against the model's length, and the plan's least memory against the
    device's. Checked once before any forward, so a run never fails after minutes of work."""
    from s3dsl.runtime.kv_cache import check_model as check_block_kv
    from s3dsl.runtime.scoring import encode_prompt

    check_run_options(seed, batch_size)
    check_block_kv(the_plan, model)
    gen = the_plan.program.decode.gen_length
    limit = model_max_length(model)
    prompt_lengths = [(p, len(encode_prompt(p, model.tokenizer))) for p in problems]
    longest = max((n for _, n in prompt_lengths), default=0)
    if limit is not None and gen > limit:
        room = limit - longest
        hint = (f"use --set gen_length=N with N <= {room:,} (the longest prompt takes "
                f"{longest:,} of the {limit:,} positions)" if room > 0
                else "shorten the prompts: the longest fills the model's length")
        raise S3DSLError(
            f"decode.gen_length {gen:,} does not fit model {model.name}, which takes at most "
            f"{limit:,} positions (prompt included)", None, hint,
        )
    for problem, n in prompt_lengths:
        if limit is not None and n + gen > limit:
            raise S3DSLError(
                f"problem {problem.id}: its prompt of {n:,} tokens and gen_length {gen:,} make "
                f"{n + gen:,} positions; model {model.name} takes at most {limit:,}",
                None, f"shorten the prompt or use --set gen_length=N with N <= {limit - n:,}",
            )
    in_flight = batch_size * max(1, the_plan.flags.overlap_lanes)  # the overlap pass: 2 batches
    need = least_memory_bytes(the_plan, model, longest + gen, min(in_flight, len(problems)))
    have = device_memory_bytes(model.device)
    if have and need > have:
        raise S3DSLError(
            f"the plan needs at least {need / 2**30:,.1f} GiB on {model.device.type} "
            f"(peak {the_plan.cost.peak_particles:,} particles per problem, "
            f"{min(batch_size, len(problems))} problems a batch); the device has "
            f"{have / 2**30:,.1f} GiB",
            None, "use fewer particles, a smaller --batch-size, or a shorter gen_length",
        )


def least_memory_bytes(the_plan: Plan, model: MaskedLM, length: int, batch: int) -> int:
    """A lower bound of a run's memory: the weights, and the per-particle state every plan keeps
    (tokens, and the cached window of log-probs); forwards are chunked, so one row of logits."""
    program = the_plan.program
    particles = the_plan.cost.peak_particles * max(batch, 1)
    vocab = int(model.vocab_size)
    window = program.decode.block_length
    weights = int(model.num_parameters()) * 2  # at least 16-bit weights
    cached = window * vocab * 4 if the_plan.flags.forward_reuse else 0
    state = particles * (length * 8 + cached)
    from s3dsl.runtime.kv_cache import cache_bytes

    return weights + state + length * vocab * 4 + cache_bytes(the_plan, model, length, batch)


def device_memory_bytes(device: torch.device) -> int | None:
    import os

    try:
        if device.type == "cuda":
            return int(torch.cuda.get_device_properties(device).total_memory)
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError, RuntimeError):
        return None


def summarize(
    the_plan: Plan,
    model: MaskedLM,
    task: str,
    results: list[ProblemResult],
    wall_s: float,
    seed: int,
    counters: Counters | None,
) -> RunSummary:
    program = the_plan.program
    n = max(len(results), 1)
    nfe = sum(r.nfe for r in results)
    return RunSummary(
        strategy=program.name,
        model=model.name,
        task=task,
        opt_level=the_plan.opt_level,
        seed=seed,
        n_problems=len(results),
        accuracy=sum(r.correct for r in results) / n,
        nfe_total=nfe,
        nfe_per_problem=nfe / n,
        predicted_nfe_per_problem=the_plan.cost.forwards,
        wall_s=wall_s,
        tokens_per_s=len(results) * program.decode.gen_length / max(wall_s, 1e-9),
        peak_memory_mb=peak_memory_mb(model.device),
        per_problem=results,
        counters=dict(counters.__dict__) if counters else {},
        approximate=sorted(the_plan.enabled & OPT_IN),
        predicted_exact=the_plan.cost.exact,
    )


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10


def run_strategy(
    strategy: str | Path,
    model: MaskedLM | str | None = None,
    task: str = "sudoku",
    split: str = "test",
    limit: int | None = None,
    seed: int = 0,
    overrides: dict[str, str] | None = None,
    opt_level: int = DEFAULT_OPT_LEVEL,
    batch_size: int = 8,
    disable: tuple[str, ...] = (),
    enable: tuple[str, ...] = (),
    problems: Sequence[Problem] | None = None,
) -> RunSummary:
    """The Python entry point behind `s3dsl run`: a strategy (path or built-in name) on a task."""
    from s3dsl.catalog import resolve_strategy
    from s3dsl.models.registry import load_model
    from s3dsl.tasks.registry import get_task

    the_task = get_task(task)
    if model is None or isinstance(model, str):
        model = load_model(model or the_task.default_model)
    the_plan = planned(resolve_strategy(str(strategy)), overrides, the_task.gen_length,
                       the_task.default_verifier, opt_level, tuple(disable), tuple(enable))
    if problems is None:
        problems = the_task.problems(split, limit)
    start = time.perf_counter()
    results, counters = execute(
        the_plan, model, problems, the_task.extract_answer, the_task.is_correct, seed, batch_size
    )
    return summarize(the_plan, model, task, results, time.perf_counter() - start, seed, counters)
