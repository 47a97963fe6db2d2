"""The compiler's measured payoff: what the plan's passes buy over the reference interpreter.

    python benchmarks/compiler_bench.py [--quick] [--out DIR] [--device cpu|cuda]

Rows (all pairs measured side by side in this one process, interleaved chunk by chunk so that a
busy machine slows both sides alike; see benchmarks/README.md for what each row means):
  1. forward passes, S3 compiled (opt level 2) vs the reference interpreter (opt level 0), with
     identical outputs, plus per-pass attribution (opt level 1, opt level 2 minus one pass);
  2. wall time of the same runs;
  3. 16 particles batched (best_of_k, k=16) vs 16 sequential single-particle decodes;
  4. the share of wall time spent outside model forward calls on a ~100M-parameter random model;
  5. GPU rows (8B-shaped model, bf16): only with --device cuda; UNTESTED (no GPU was available
     when this was written);
  6. the prompt cache: S3 on sudoku with and without it (positions through the model, wall time);
  7. static sync-free steps (opt 3) vs opt 2, and whether torch.compile captures a step whole.
The model forward is timed by a proxy around the model (`TimedModel`) so the library stays as is.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from s3dsl.catalog import resolve_strategy
from s3dsl.compiler.ir import Program
from s3dsl.compiler.passes import plan
from s3dsl.dsl.errors import S3DSLError
from s3dsl.models.config import ModelConfig
from s3dsl.models.registry import build_random_model, load_model
from s3dsl.runtime.model import MaskedLM
from s3dsl.runtime.results import ProblemResult
from s3dsl.session import compile_file, execute
from s3dsl.tasks.base import Problem
from s3dsl.tasks.registry import get_task

sys.path.insert(0, str(Path(__file__).parent))
from timed_model import TimedModel  # noqa: E402

H100_BF16_DENSE_FLOPS = 989e12
TASK = "arith"  # every row runs the arith task (the default model's)
NOT_MEASURED = "not measured (no GPU in this run)"
ATTRIBUTION = ("forward-reuse", "share-parent-forward", "dedup")

# ~99M parameters in the built-in layout (tokenizer-sized vocabulary, so almost all of it is in
# the blocks): 14 x (4 d^2 + 3 d d_ff) with d=768, d_ff=2048.
# The shipped models' options (absolute positions, prompt isolation) are on in every shape.
SHIPPED_OPTIONS = {"abs_positions": True, "isolate_prompt": True}
CPU_100M = ModelConfig(
    d_model=768,
    n_layers=14,
    n_heads=12,
    d_ff=2048,
    max_len=128,
    name="rand-100m",
    **SHIPPED_OPTIONS,
)
CPU_10M = ModelConfig(
    d_model=384, n_layers=6, n_heads=6, d_ff=1024, max_len=128, name="rand-10m", **SHIPPED_OPTIONS
)
# LLaDA-8B's shape (d 4096, 32 layers, 32 heads, SwiGLU 12288, 126464-token vocabulary); the
# char tokenizer uses only the first rows of the vocabulary, the rest is realistic dead weight.
GPU_8B = ModelConfig(
    vocab_size=126464,
    d_model=4096,
    n_layers=32,
    n_heads=32,
    d_ff=12288,
    max_len=256,
    name="rand-8b-shape",
    **SHIPPED_OPTIONS,
)
# `bash benchmarks/gpu.sh --rehearse` runs the GPU branch's commands on the CPU to catch a broken
# command before a lent device's minutes are spent: the same layout at a tiny shape, named so.
if os.environ.get("S3DSL_BENCH_8B_SHAPE") == "tiny":
    GPU_8B = ModelConfig(vocab_size=512, d_model=32, n_layers=2, n_heads=2, d_ff=64, max_len=256,
                         name="rand-8b-layout-TINY-rehearsal", **SHIPPED_OPTIONS)


@dataclass
class Settings:
    """Everything a run depends on; `--quick` shrinks the sizes, never the code path."""

    model: str = "arith"
    task: str = TASK
    strategy: str = "s3"
    n: int = 24  # held-out problems for rows 1-2 (the reference takes ~1.5-2 min on them)
    chunk: int = 8  # problems per interleaved chunk (= the executor's batch size)
    seed: int = 0
    threads: int = 1
    batching_problems: int = 4  # row 3
    batching_k: int = 16
    overhead_config: ModelConfig = CPU_100M  # row 4
    overhead_problems: int = 2
    overhead_gen_length: int = 16
    device: str = "cpu"
    gpu_problems: int = 8
    gpu_gen_length: int | None = None  # None: the task's
    quick: bool = False


@dataclass
class Row:
    """One line of the table: a measured pair, its ratio and the target it is held to."""

    key: str
    metric: str
    setup: str
    compiled: str
    baseline: str
    ratio: str
    target: str
    met: bool | None  # None: no target, or not measured
    data: dict[str, Any] = field(default_factory=dict)


# -- running ---------------------------------------------------------------------------------------
@dataclass
class Measured:
    """One execution: its results, forward count (rows through the model) and wall time."""

    results: list[ProblemResult]
    forwards: int
    forward_calls: int
    wall_s: float
    forward_s: float  # time inside model forward calls (nan unless the model is a TimedModel)
    tokens: int = 0  # token positions through the model (0 unless the model is a TimedModel)


def run_once(
    program: Program,
    opt_level: int,
    model: MaskedLM,
    problems: Sequence[Problem],
    seed: int,
    disable: tuple[str, ...] = (),
    batch_size: int = 8,
    progress: Callable[[int], None] | None = None,
    task_name: str = TASK,
) -> Measured:
    """Plan and execute like `run_strategy`, timing only the execution (not the compile)."""
    task = get_task(task_name)
    the_plan = plan(program, opt_level, disable)
    if isinstance(model, TimedModel):
        model.reset()
    start = time.perf_counter()
    results, counters = execute(
        the_plan, model, problems, task.extract_answer, task.is_correct, seed, batch_size, progress
    )
    wall = time.perf_counter() - start
    forwards = sum(r.nfe for r in results)
    calls = counters.forward_calls if counters is not None else forwards
    timed = isinstance(model, TimedModel)
    forward_s = model.forward_s if timed else float("nan")
    return Measured(results, forwards, calls, wall, forward_s, model.tokens if timed else 0)


def warm_then_time(
    program: Program,
    timed: TimedModel,
    problems: Sequence[Problem],
    seed: int,
    advance: Callable[[int], None],
) -> Measured:
    """One warm-up run on a problem (allocator, kernels), then all problems in one batch."""
    run_once(program, 2, timed, problems[:1], seed)
    timed.reset()
    return run_once(program, 2, timed, problems, seed, batch_size=len(problems), progress=advance)


def completions(results: Sequence[ProblemResult]) -> list[tuple[str, list[str]]]:
    """What must not change under a plan: every problem's particles' completions, in order."""
    return [(r.id, [p.completion for p in r.particles]) for r in results]


def mismatches(a: Sequence[ProblemResult], b: Sequence[ProblemResult]) -> list[str]:
    """Ids of problems whose particle completions differ between two runs."""
    return [x[0] for x, y in zip(completions(a), completions(b)) if x != y] + (
        ["<count differs>"] if len(a) != len(b) else []
    )


def load_bench_model(name: str, device: str) -> tuple[MaskedLM, str]:
    """The requested model; a missing shipped model falls back to tiny-random, said loudly."""
    try:
        return load_model(name, device=device), name
    except S3DSLError as err:
        return load_model("tiny-random", device=device), f"tiny-random (FALLBACK: {err})"


def program_for(strategy: str, task: Any, overrides: dict[str, str] | None = None) -> Program:
    """The strategy compiled for the task: its gen_length and its own verifier (`task-default`
    is `arith-heuristic` on arith, `sudoku-constraints` on sudoku), as `s3dsl run` does."""
    return compile_file(resolve_strategy(strategy), overrides, task.gen_length,
                        task.default_verifier)


def verifier_label(program: Program) -> str:
    """What scored the particles, for every row that says what ran."""
    if not program.verifiers:
        return "no verifier"
    return "verifier " + ", ".join(f"{spec.describe()}" for spec in program.verifiers.values())


# -- rows 1 and 2 ----------------------------------------------------------------------------------
def rows_forward_and_wall(s: Settings, model: MaskedLM, model_label: str, progress: Progress):
    """S3 at opt level 2 vs the reference (and the attribution plans), chunk by chunk.

    Every configuration runs on every chunk. The reference runs one problem at a time anyway, so
    it is split around the batched runs (first half of the chunk's problems before them, second
    half after), and the batched configurations rotate order per chunk: load drift on the
    machine then hits the reference and the plans alike.
    """
    task = get_task(s.task)
    problems = task.problems("test", s.n)
    program = program_for(s.strategy, task)
    configs: list[tuple[str, int, tuple[str, ...]]] = [
        ("reference (opt 0)", 0, ()),
        ("compiled (opt 2)", 2, ()),
        ("opt 1 (batched, no sharing)", 1, ()),
        *[(f"opt 2 without {p}", 2, (p,)) for p in ATTRIBUTION],
    ]
    chunks = [problems[i : i + s.chunk] for i in range(0, len(problems), s.chunk)]
    job = progress.add_task("rows 1-2: S3 reference vs plans", total=len(problems) * len(configs))
    per: dict[str, list[Measured]] = {c[0]: [] for c in configs}
    advance: Callable[[int], None] = lambda k: progress.advance(job, k)  # noqa: E731
    plans = configs[1:]
    for ci, chunk in enumerate(chunks):
        half = (len(chunk) + 1) // 2
        before = run_once(program, 0, model, chunk[:half], s.seed, (), 1, advance)
        order = plans[ci % len(plans) :] + plans[: ci % len(plans)]
        for label, level, disable in order:
            m = run_once(program, level, model, chunk, s.seed, disable, s.chunk, advance)
            per[label].append(m)
        after = run_once(program, 0, model, chunk[half:], s.seed, (), 1, advance)
        per[configs[0][0]].append(_concat([before, after]))
    progress.update(job, description="rows 1-2: done")

    def total(label: str) -> Measured:
        return _concat(per[label])

    ref, comp = total("reference (opt 0)"), total("compiled (opt 2)")
    bad = mismatches(comp.results, ref.results)
    identical = not bad
    fwd_ratio = comp.forwards / max(ref.forwards, 1)
    setup = (f"{s.strategy}, {verifier_label(program)}, model {model_label}, {task.name} test "
             f"N={len(problems)}, seed {s.seed}")
    rows = [
        Row(
            "forwards",
            "1. Forward passes (S3 compiled vs reference)",
            setup + f"; outputs identical: {'yes' if identical else 'no'}",
            f"{comp.forwards} ({comp.forwards / len(problems):.0f}/problem, "
            f"{comp.forward_calls} calls)",
            f"{ref.forwards} ({ref.forwards / len(problems):.0f}/problem)",
            f"{fwd_ratio:.3f}x",
            "<= 0.5x and identical",
            fwd_ratio <= 0.5 and identical,
            {
                "compiled_forwards": comp.forwards,
                "compiled_forward_calls": comp.forward_calls,
                "reference_forwards": ref.forwards,
                "ratio": fwd_ratio,
                "identical": identical,
                "mismatched_problems": bad,
                "n_problems": len(problems),
                "accuracy_compiled": _accuracy(comp.results),
                "accuracy_reference": _accuracy(ref.results),
            },
        )
    ]
    for label, _, disable in configs[2:]:
        m = total(label)
        bad_m = mismatches(m.results, ref.results)
        rows.append(
            Row(
                "attribution:" + (disable[0] if disable else "opt1"),
                f"1{'abcd'[len(rows) - 1]}. {label}",
                f"same problems, {verifier_label(program)}; identical to reference: "
                f"{'yes' if not bad_m else 'no'}",
                f"{m.forwards} ({m.forward_calls} calls, {m.wall_s:.1f} s)",
                f"{ref.forwards} (ref) / {comp.forwards} (opt 2)",
                f"{m.forwards / max(ref.forwards, 1):.3f}x ref, "
                f"{m.forwards / max(comp.forwards, 1):.2f}x opt 2",
                "-",
                None,
                {
                    "forwards": m.forwards,
                    "forward_calls": m.forward_calls,
                    "wall_s": m.wall_s,
                    "forward_s": m.forward_s,
                    "ratio_vs_reference": m.forwards / max(ref.forwards, 1),
                    "ratio_vs_opt2": m.forwards / max(comp.forwards, 1),
                    "identical": not bad_m,
                    "mismatched_problems": bad_m,
                    "disabled": list(disable),
                },
            )
        )
    pairs = zip(per["reference (opt 0)"], per["compiled (opt 2)"])
    per_chunk = [r.wall_s / c.wall_s for r, c in pairs]
    speedup = ref.wall_s / comp.wall_s
    rows.append(
        Row(
            "wall",
            "2. Wall time (S3 compiled vs reference, CPU)",
            setup + f"; {s.threads} torch thread(s); {len(chunks)} interleaved chunk(s)",
            f"{comp.wall_s:.1f} s",
            f"{ref.wall_s:.1f} s",
            f"{speedup:.2f}x faster (chunk median {statistics.median(per_chunk):.2f}x)",
            ">= 2x faster",
            speedup >= 2.0,
            {
                "compiled_wall_s": comp.wall_s,
                "reference_wall_s": ref.wall_s,
                "speedup": speedup,
                "per_chunk_speedup": per_chunk,
                "per_config_wall_s": {k: sum(m.wall_s for m in v) for k, v in per.items()},
                "per_config_forward_s": {k: sum(m.forward_s for m in v) for k, v in per.items()},
            },
        )
    )
    out_c, out_r = 1 - comp.forward_s / comp.wall_s, 1 - ref.forward_s / ref.wall_s
    rows.append(
        Row(
            "overhead:rows1-2",
            "4c. Wall share outside model forwards (S3, row-1 model)",
            setup + ", gen " + str(task.gen_length) + ", from the row 1-2 runs",
            f"{out_c * 100:.1f}% outside (opt 2)",
            f"{out_r * 100:.1f}% outside (reference)",
            f"forward {comp.forward_s:.1f} s of {comp.wall_s:.1f} s (opt 2)",
            "- (target is row 4a)",
            None,
            {
                "compiled_share_outside_forward": out_c,
                "reference_share_outside_forward": out_r,
                "compiled_forward_s": comp.forward_s,
                "reference_forward_s": ref.forward_s,
            },
        )
    )
    return rows


def _concat(ms: Sequence[Measured]) -> Measured:
    """Several executions as one: results in order, counts and times summed."""
    return Measured(
        [r for m in ms for r in m.results],
        sum(m.forwards for m in ms),
        sum(m.forward_calls for m in ms),
        sum(m.wall_s for m in ms),
        sum(m.forward_s for m in ms),
        sum(m.tokens for m in ms),
    )


def _accuracy(results: Sequence[ProblemResult]) -> float:
    return sum(r.correct for r in results) / max(len(results), 1)


# -- row 3 -----------------------------------------------------------------------------------------
def row_batching(s: Settings, model: MaskedLM, model_label: str, progress: Progress) -> Row:
    """best_of_k (k=16, one problem per executor batch) vs 16 one-particle decodes, seeds 0..15.

    Both sides run the batched executor at opt level 2 on the same problem with the same decode
    (temperature 1.0, confidence commits); only the number of particles per forward call differs.
    Throughput = particle decodes (each gen_length answer tokens) per second of wall time.
    """
    task = get_task(s.task)
    problems = task.problems("test", s.batching_problems)
    k = s.batching_k
    batched_prog = program_for("best_of_k", task, {"k": str(k)})
    single_prog = program_for("best_of_k", task, {"k": "1"})
    job = progress.add_task("row 3: batched vs sequential", total=2 * len(problems))
    batched, sequential, ratios = [], [], []
    b_fwd = q_fwd = 0
    for i, problem in enumerate(problems):
        for side in (0, 1) if i % 2 == 0 else (1, 0):
            if side == 0:
                m = run_once(batched_prog, 2, model, [problem], s.seed, batch_size=1)
                batched.append(m.wall_s)
                b_fwd += m.forward_calls
            else:
                walls = []
                for seed in range(k):
                    m = run_once(single_prog, 2, model, [problem], s.seed + seed, batch_size=1)
                    walls.append(m.wall_s)
                    q_fwd += m.forward_calls
                sequential.append(sum(walls))
            progress.advance(job)
        ratios.append(sequential[-1] / batched[-1])
    tps_b = k * len(problems) * task.gen_length / sum(batched)
    tps_q = k * len(problems) * task.gen_length / sum(sequential)
    return Row(
        "batching",
        f"3. {k} particles batched vs {k} sequential single decodes",
        f"best_of_k k={k} (1 call/step) vs {k}x best_of_k k=1 (seeds {s.seed}..{s.seed + k - 1}), "
        f"opt 2, {verifier_label(batched_prog)}, model {model_label}, {len(problems)} "
        f"problem(s), gen {task.gen_length}, CPU",
        f"{tps_b:.0f} tok/s ({b_fwd} calls)",
        f"{tps_q:.0f} tok/s ({q_fwd} calls)",
        f"{tps_b / tps_q:.2f}x throughput (median/problem {statistics.median(ratios):.2f}x)",
        "-",
        None,
        {
            "batched_wall_s": sum(batched),
            "sequential_wall_s": sum(sequential),
            "batched_tokens_per_s": tps_b,
            "sequential_tokens_per_s": tps_q,
            "throughput_ratio": tps_b / tps_q,
            "per_problem_ratio": ratios,
            "batched_forward_calls": b_fwd,
            "sequential_forward_calls": q_fwd,
        },
    )


# -- row 4 -----------------------------------------------------------------------------------------
def rows_overhead(s: Settings, progress: Progress) -> list[Row]:
    """Share of wall time outside model forwards on a ~100M random model, S3 and single.

    A short generation (`overhead_gen_length`) keeps the CPU run to a couple of minutes; the
    runtime work per step (sampling, scoring, resampling) does not shrink with the model, the
    forward does not shrink with the generation, so this is the honest ratio for that size.
    """
    task = get_task(s.task)
    cfg = s.overhead_config
    timed = TimedModel(build_random_model(cfg, seed=0))
    params = timed.num_parameters()
    problems = task.problems("test", s.overhead_problems)
    rows = []
    job = progress.add_task("row 4: overhead outside forwards", total=2 * len(problems))
    for strategy in ("s3", "single"):
        program = program_for(strategy, task, {"gen_length": str(s.overhead_gen_length)})
        m = warm_then_time(program, timed, problems, s.seed, lambda k: progress.advance(job, k))
        share = 1.0 - timed.forward_s / m.wall_s
        rows.append(
            Row(
                f"overhead:{strategy}",
                f"4{'ab'[len(rows)]}. Wall share outside model forwards ({strategy})",
                f"random {cfg.name} ({params / 1e6:.0f}M params), {strategy} opt 2, "
                f"{verifier_label(program)}, "
                f"{len(problems)} problems batched, gen {s.overhead_gen_length}, "
                f"{s.threads} thread(s), CPU",
                f"{share * 100:.1f}% outside",
                f"forward {timed.forward_s:.1f} s of {m.wall_s:.1f} s wall",
                f"{timed.calls} calls, {timed.rows} rows",
                "<= 10%",
                share <= 0.10,
                {
                    "share_outside_forward": share,
                    "forward_s": timed.forward_s,
                    "wall_s": m.wall_s,
                    "forward_calls": timed.calls,
                    "forward_rows": timed.rows,
                    "forward_tokens": timed.tokens,
                    "params": params,
                    "config": asdict(cfg),
                },
            )
        )
    return rows


# -- rows 6 and 7: the prompt cache and static steps ---------------------------------------------
def _side_by_side(
    configs: Sequence[tuple[str, int, tuple[str, ...]]],
    program: Program,
    model: MaskedLM,
    problems: Sequence[Problem],
    s: Settings,
    task_name: str,
    advance: Callable[[int], None],
) -> dict[str, Measured]:
    """Each config on each problem chunk, alternating which goes first (drift hits both)."""
    per: dict[str, list[Measured]] = {c[0]: [] for c in configs}
    for ci, start in enumerate(range(0, len(problems), s.chunk)):
        chunk = problems[start : start + s.chunk]
        for label, level, disable in configs[ci % 2 :] + configs[: ci % 2]:
            m = run_once(program, level, model, chunk, s.seed, disable, s.chunk, advance, task_name)
            per[label].append(m)
    return {label: _concat(ms) for label, ms in per.items()}


def row_prompt_cache(s: Settings, progress: Progress) -> Row:
    """S3 on sudoku (prompt = 82 of 166 positions) at opt 2 with and without `prompt-cache`."""
    task = get_task("sudoku")
    model = TimedModel(load_bench_model("sudoku", "cpu")[0])
    problems = task.problems("test", s.n)
    program = program_for("s3", task)
    job = progress.add_task("row 6: prompt cache", total=2 * len(problems))
    on, off = "opt 2", "opt 2 without prompt-cache"
    runs = _side_by_side(
        [(on, 2, ()), (off, 2, ("prompt-cache",))],
        program,
        model,
        problems,
        s,
        "sudoku",
        lambda k: progress.advance(job, k),
    )
    a, b = runs[on], runs[off]
    same = not mismatches(a.results, b.results)
    return Row(
        "prompt-cache",
        "6. Prompt cache (S3, sudoku: 82-token prompt, 84-token answer)",
        f"s3 opt 2 vs opt 2 --disable-pass prompt-cache, {verifier_label(program)}, model sudoku, "
        f"test N={len(problems)}; "
        f"identical outputs: {'yes' if same else 'NO'}",
        f"{a.tokens:,} positions, {a.wall_s:.1f} s",
        f"{b.tokens:,} positions, {b.wall_s:.1f} s",
        f"{a.tokens / max(b.tokens, 1):.3f}x positions, {b.wall_s / a.wall_s:.2f}x faster",
        "identical",
        same,
        {"with": asdict_measured(a), "without": asdict_measured(b), "identical": same},
    )


def row_static_steps(s: Settings, model: MaskedLM, model_label: str, progress: Progress) -> Row:
    """best_of_k (16 particles) at opt 3 (static, sync-free steps) vs opt 2, and whether
    `torch.compile(fullgraph=True)` captures a step whole (it fails on any host sync)."""
    from s3dsl.runtime import static
    from s3dsl.runtime.executor import BatchedExecutor

    task = get_task(s.task)
    problems = task.problems("test", s.batching_problems)
    program = program_for("best_of_k", task, {"k": str(s.batching_k)})
    job = progress.add_task("row 7: static steps", total=2 * len(problems))
    runs = _side_by_side(
        [("opt 3", 3, ()), ("opt 2", 2, ())],
        program,
        model,
        problems,
        s,
        s.task,
        lambda k: progress.advance(job, k),
    )
    a, b = runs["opt 3"], runs["opt 2"]
    same = not mismatches(a.results, b.results)
    plain = model.inner if isinstance(model, TimedModel) else model  # the timer is Python
    executor = BatchedExecutor(program, plain, task.extract_answer, s.seed, plan(program, 3).flags)
    executor.step_fn = torch.compile(static.denoise_step, fullgraph=True, backend="eager")
    try:
        with torch.inference_mode():
            captured = not mismatches(executor.run(problems[:1]), a.results[:1])
        capture = "captured whole, same tokens" if captured else "captured, TOKENS DIFFER"
    except Exception as err:  # a graph break names the sync that caused it
        captured, capture = False, f"NOT captured: {type(err).__name__}"
    return Row(
        "static-steps",
        "7. Static sync-free steps (opt 3) vs opt 2",
        f"best_of_k k={s.batching_k}, {verifier_label(program)}, model {model_label}, "
        f"{len(problems)} problem(s), CPU eager; "
        f"identical outputs: {'yes' if same else 'NO'}; torch.compile(fullgraph): {capture}",
        f"{a.wall_s:.1f} s ({a.forwards} forwards)",
        f"{b.wall_s:.1f} s ({b.forwards} forwards)",
        f"{b.wall_s / a.wall_s:.2f}x faster",
        "identical, captured",
        same and captured,
        {"opt3": asdict_measured(a), "opt2": asdict_measured(b), "captured": captured},
    )


def asdict_measured(m: Measured) -> dict[str, Any]:
    return {
        "forwards": m.forwards,
        "calls": m.forward_calls,
        "wall_s": m.wall_s,
        "forward_s": m.forward_s,
        "tokens": m.tokens,
    }


# -- row 5 (GPU) -----------------------------------------------------------------------------------
def build_on_device(cfg: ModelConfig, device: str, dtype: torch.dtype) -> MaskedLM:
    """A random model built directly on the device (PyTorch's default init: fast for 8B).

    `build_random_model` initialises on the CPU in float32 first (32 GB and minutes for 8B);
    throughput does not depend on the values, so the module's default initialisation is used.
    """
    from s3dsl.models.transformer import MaskPredictor
    from s3dsl.models.wrapper import DiffusionLM

    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # allocate in bf16 directly: no 32 GB float32 detour
    try:
        with torch.device(device):
            module = MaskPredictor(cfg)
    finally:
        torch.set_default_dtype(previous)
    return DiffusionLM(module.to(device=device, dtype=dtype))


GPU_ROWS = (("s3", "5a. GPU 8B-shape: S3 compiled"), ("single", "5b. GPU 8B-shape: single"))
GPU_S3_32 = {"particles": "8", "candidates": "4"}  # 32 particles in every denoise forward


def rows_gpu(s: Settings, progress: Progress) -> list[Row]:
    """The GPU rows with --device cuda (UNTESTED on a GPU), else rows that say why not."""
    if s.device != "cuda" or not torch.cuda.is_available():
        why = NOT_MEASURED if s.device != "cuda" else "not measured (--device cuda, none found)"
        labels = [*GPU_ROWS, ("compile-steps", "5c. GPU 8B-shape: single, compiled static steps")]
        return [Row(f"gpu:{k}", lab, "-", why, "-", "-", "-", None) for k, lab in labels]
    rows = measure_gpu_rows(s, progress, GPU_8B, "cuda", torch.bfloat16)
    return [*rows, row_compiled_steps(s, build_on_device(GPU_8B, "cuda", torch.bfloat16), None)]


def measure_gpu_rows(
    s: Settings, progress: Progress, cfg: ModelConfig, device: str, dtype: torch.dtype
) -> list[Row]:
    """Tokens/s, forwards/s and MFU of S3 and single on a random `cfg` model built on `device`.

    MFU = 2 * params * (tokens through the model) / wall / 989e12 (H100 bf16 dense peak). Only
    ever run on CUDA with the 8B shape by the benchmark; the smoke test runs it on the CPU with a
    tiny shape so that at least the code path is exercised.
    """
    task = get_task(s.task)
    gen_length = s.gpu_gen_length or task.gen_length
    timed = TimedModel(build_on_device(cfg, device, dtype))
    params = timed.num_parameters()
    problems = task.problems("test", s.gpu_problems)
    cuda = device == "cuda"
    where = torch.cuda.get_device_name() if cuda else f"{device} (NOT a GPU measurement)"
    rows = []
    job = progress.add_task("row 5: GPU", total=2 * len(problems))
    for strategy, label in GPU_ROWS:
        overrides = {"gen_length": str(gen_length), **(GPU_S3_32 if strategy == "s3" else {})}
        program = program_for(strategy, task, overrides)
        m = warm_then_time(program, timed, problems, s.seed, lambda k: progress.advance(job, k))
        flops = 2.0 * params * timed.tokens
        mfu_fwd = flops / timed.forward_s / H100_BF16_DENSE_FLOPS
        mfu = flops / m.wall_s / H100_BF16_DENSE_FLOPS
        tps = len(problems) * gen_length / m.wall_s
        rows.append(
            Row(
                f"gpu:{strategy}",
                label,
                f"{cfg.name} ({params / 1e9:.2f}B params, {dtype}), {strategy} opt 2, "
                f"{verifier_label(program)}"
                f"{' (8 particles x 4 candidates = 32)' if strategy == 's3' else ''}, "
                f"{len(problems)} problems, gen {gen_length}, {where}",
                f"{tps:.0f} answer tok/s, {timed.rows / m.wall_s:.0f} forwards/s",
                f"MFU {mfu * 100:.1f}% (forward-only {mfu_fwd * 100:.1f}%)",
                f"{(1 - timed.forward_s / m.wall_s) * 100:.1f}% outside forwards",
                "-",
                None,
                {
                    "tokens_per_s": tps,
                    "forwards_per_s": timed.rows / m.wall_s,
                    "forward_calls": timed.calls,
                    "mfu": mfu,
                    "mfu_forward_only": mfu_fwd,
                    "wall_s": m.wall_s,
                    "forward_s": timed.forward_s,
                    "params": params,
                    "peak_memory_mb": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
                    "untested_code_path": True,
                },
            )
        )
    return rows


def row_compiled_steps(s: Settings, model: MaskedLM, backend: str | None) -> Row:
    """single at opt 3 with its static step under torch.compile vs eager static steps (opt 3).

    On CUDA the step is compiled with mode="reduce-overhead" (CUDA graphs) by `static.compiled`;
    `backend` overrides that (the smoke test passes "eager" to exercise the code on a CPU). The
    first run of each side is a warm-up, so compilation is not timed. UNTESTED on a GPU.
    """
    from s3dsl.runtime import static
    from s3dsl.runtime.executor import BatchedExecutor

    task = get_task(s.task)
    gen_length = s.gpu_gen_length or task.gen_length
    problems = task.problems("test", s.gpu_problems)
    program = program_for("single", task, {"gen_length": str(gen_length)})
    flags = plan(program, 3).flags
    walls, outs = {}, {}
    for side in ("eager", "compiled"):
        ex = BatchedExecutor(program, model, task.extract_answer, s.seed, flags)
        if side == "compiled":
            ex.step_fn = (
                static.compiled(static.denoise_step, model.device)
                if backend is None
                else torch.compile(static.denoise_step, fullgraph=True, backend=backend)
            )
        with torch.inference_mode():
            ex.run(problems[:1], batch_size=1)  # warm-up / compile
            if model.device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            outs[side] = ex.run(problems, batch_size=len(problems))
            if model.device.type == "cuda":
                torch.cuda.synchronize()
            walls[side] = time.perf_counter() - start
    tps = {k: len(problems) * gen_length / w for k, w in walls.items()}
    same = not mismatches(outs["compiled"], outs["eager"])
    return Row(
        "gpu:compile-steps",
        "5c. GPU 8B-shape: single, compiled static steps",
        f"single opt 3, {verifier_label(program)}, torch.compile of the static step "
        f"({backend or 'CUDA graphs'}) vs eager, "
        f"{len(problems)} problems, gen {gen_length}, {model.device}; same tokens: "
        f"{'yes' if same else 'no (compiled kernels round differently)'}",
        f"{tps['compiled']:.0f} answer tok/s",
        f"{tps['eager']:.0f} answer tok/s (eager)",
        f"{tps['compiled'] / tps['eager']:.2f}x",
        "-",
        None,
        {"tokens_per_s": tps, "wall_s": walls, "same_tokens": same, "untested_code_path": True},
    )


# -- output ----------------------------------------------------------------------------------------
COLUMNS = ("Row", "Setup", "Compiled / measured", "Baseline / detail", "Ratio", "Target", "Met")


def _met(v: bool | None) -> str:
    return "-" if v is None else ("yes" if v else "NO")


def rich_table(rows: Sequence[Row], title: str) -> Table:
    table = Table(title=title, show_lines=True)
    for c in COLUMNS:
        table.add_column(c, overflow="fold")
    for r in rows:
        table.add_row(r.metric, r.setup, r.compiled, r.baseline, r.ratio, r.target, _met(r.met))
    return table


def markdown(rows: Sequence[Row], meta: dict[str, Any]) -> str:
    def cell(x: str) -> str:
        return x.replace("|", "\\|")

    lines = [
        f"Measured {meta['date']} on {meta['machine']}, torch {meta['torch']}, "
        f"{meta['threads']} thread(s), commit {meta['commit']}"
        + (" (--quick)" if meta["quick"] else "")
        + f". Rows 1-3: model `{meta['model']}`, N={meta['settings']['n']} held-out problems.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    for r in rows:
        values = (r.metric, r.setup, r.compiled, r.baseline, r.ratio, r.target, _met(r.met))
        lines.append("| " + " | ".join(cell(v) for v in values) + " |")
    return "\n".join(lines) + "\n"


def meta_info(s: Settings, model_label: str) -> dict[str, Any]:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()} CPU x{os.cpu_count()}"
        + (f" + {torch.cuda.get_device_name()}" if s.device == "cuda" else ""),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": s.threads,
        "commit": commit,
        "model": model_label,
        "quick": s.quick,
        "settings": {
            k: (asdict(v) if isinstance(v, ModelConfig) else v) for k, v in asdict(s).items()
        },
    }


# -- entry point -----------------------------------------------------------------------------------
def _row_order(row: Row) -> tuple[int, str]:
    """'1.' < '1a.' < '2.' < '4c.': the number, then the letter of a metric's label."""
    label = row.metric.split(".", 1)[0]
    return int(label.rstrip("abcdefgh")), label.lstrip("0123456789")


def settings_from(args: argparse.Namespace) -> Settings:
    s = Settings(model=args.model, device=args.device, threads=args.threads, seed=args.seed)
    if args.quick:
        s.quick, s.n, s.chunk = True, 2, 2
        s.batching_problems, s.overhead_problems, s.overhead_gen_length = 1, 1, 8
        s.overhead_config, s.gpu_problems = CPU_10M, 2
    if args.n is not None:
        s.n = args.n
        s.chunk = min(s.chunk, args.n)
    return s


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run every row, print the table, write JSON + Markdown; returns the JSON document."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (~1 min), same code path")
    ap.add_argument("--out", type=Path, default=None, help="write compiler_bench.{json,md} here")
    ap.add_argument("--model", default="arith", help="model for rows 1-3 (default: arith)")
    ap.add_argument("--n", type=int, default=None, help="problems for rows 1-2 (default 24)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    ap.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default="cpu",
        help="cuda adds the GPU rows (8B-shaped bf16 model; untested)",
    )
    args = ap.parse_args(argv)
    s = settings_from(args)
    torch.set_num_threads(s.threads)
    console = Console(width=max(Console().width, 150))
    inner, model_label = load_bench_model(s.model, "cpu")
    model = TimedModel(inner)
    rows: list[Row] = []
    started = time.perf_counter()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        rows += rows_forward_and_wall(s, model, model_label, progress)
        rows.append(row_batching(s, model, model_label, progress))
        rows += rows_overhead(s, progress)
        rows.append(row_prompt_cache(s, progress))
        rows.append(row_static_steps(s, model, model_label, progress))
        rows += rows_gpu(s, progress)
    # 4c comes out of the row 1-2 runs but reads best next to 4a/4b
    rows.sort(key=_row_order)
    meta = meta_info(s, model_label)
    meta["bench_wall_s"] = time.perf_counter() - started
    console.print(rich_table(rows, f"s3dsl compiler benchmark ({meta['date']})"))
    doc = {"meta": meta, "rows": [asdict(r) for r in rows]}
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "compiler_bench.json").write_text(json.dumps(doc, indent=2) + "\n")
        (args.out / "compiler_bench.md").write_text(markdown(rows, meta))
        console.print(f"wrote {args.out / 'compiler_bench.json'} and compiler_bench.md")
    return doc


if __name__ == "__main__":
    main(sys.argv[1:])
