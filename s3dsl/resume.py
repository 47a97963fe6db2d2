"""Resumable execution: run a plan batch by batch, committing each batch to the results store.

`execute` is called once per batch (not once for all problems) so that every finished batch is
in the database before the next starts: a kill loses at most the batch in flight. Problems
already stored for the same configuration are skipped; since randomness is per problem, the
union is what one uninterrupted run gives.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

import s3dsl
from s3dsl.compiler.ir import Program
from s3dsl.compiler.passes import OPT_IN, Plan
from s3dsl.distributed import SINGLE, World
from s3dsl.errors import S3DSLError
from s3dsl.runtime import rng
from s3dsl.runtime.model import MaskedLM
from s3dsl.session import check_run_options, execute, peak_memory_mb
from s3dsl.store import RunRecord, Store, StoredResult, problem_key
from s3dsl.tasks.base import Problem, Task

_HASH_WEIGHTS_UP_TO = 50_000_000  # parameters; bigger models are identified by name and size


def model_fingerprint(model: MaskedLM) -> dict[str, Any]:
    """Name, size and (for models small enough to hash quickly) a hash of the weights, so results
    of retrained weights under the same name are never mixed up with the old ones."""
    out: dict[str, Any] = {"name": model.name, "parameters": int(model.num_parameters())}
    module = getattr(model, "module", None) or getattr(model, "model", None)
    if module is not None and out["parameters"] <= _HASH_WEIGHTS_UP_TO:
        h = hashlib.sha256()
        for name, tensor in sorted(module.state_dict().items()):
            h.update(name.encode())
            h.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
        out["weights"] = h.hexdigest()[:32]
    return out


def run_config(
    the_plan: Plan, model: MaskedLM, task: Task, seed: int, disable: Sequence[str] = ()
) -> dict[str, Any]:
    """Everything a result depends on: the store's key for it."""
    program = the_plan.program
    return {
        "strategy": program.name,
        "source_hash": program.source_hash,
        "params": program.params,
        "decode": asdict(program.decode),
        "verifiers": {n: s.describe() for n, s in sorted(program.verifiers.items())},
        "task": task.name,
        "extractor": getattr(task, "extractor", None),
        "model": model_fingerprint(model),
        "seed": seed,
        "opt_level": the_plan.opt_level,
        "disabled": sorted(disable),
        "version": s3dsl.__version__,
        "rng": rng.SCHEME,
    } | approximations(the_plan)


def approximations(the_plan: Plan) -> dict[str, Any]:
    """The opt-in (token-changing) passes a plan used; empty for exact plans, so their keys stay."""
    used = sorted(the_plan.enabled & OPT_IN)
    return {"approximate": used} if used else {}


def single_decode_nfe(program: Program) -> int:
    """Forward passes of one plain decode with this program's schedule (one per step): the unit
    in which compute-matched K is counted."""
    return max(1, program.decode.steps)


def run_meta(the_plan: Plan, task: Task, split: str, n_problems: int) -> dict[str, Any]:
    program = the_plan.program
    return {
        "params": program.params,
        "gen_length": program.decode.gen_length,
        "steps": program.decode.steps,
        "predicted_nfe": the_plan.cost.forwards,
        "single_nfe": single_decode_nfe(program),
        "split": split,
        "n_problems": n_problems,
        "source": program.file,
    }


def _reset_peak(device: torch.device) -> None:
    """Start a fresh high-water mark, so each batch's peak is its own, not the process's."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:
        with open("/proc/self/clear_refs", "w") as f:  # Linux: "5" resets VmHWM
            f.write("5")
    except OSError:
        pass


def _read_peak(device: torch.device) -> float:
    if device.type != "cuda":
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 1024
        except (OSError, ValueError, IndexError):
            pass
    return peak_memory_mb(device)


@dataclass
class StoredRun:
    run: RunRecord | None  # None on ranks other than 0 of a sharded run
    results: list[StoredResult]
    resumed: int  # problems found finished in the store
    counters: dict[str, int] = field(default_factory=dict)

    @property
    def wall_s(self) -> float:
        return sum(s.wall_s for s in self.results)

    @property
    def peak_mb(self) -> float:
        return max((s.peak_mb for s in self.results), default=0.0)


def run_stored(
    the_plan: Plan,
    model: MaskedLM,
    task: Task,
    problems: Sequence[Problem],
    seed: int,
    batch_size: int,
    store: Store,
    split: str = "test",
    disable: Sequence[str] = (),
    advance: Callable[[int], None] | None = None,
    on_open: Callable[[int, int], None] | None = None,
    world: World = SINGLE,
    trace: bool = False,
) -> StoredRun:
    """Run the plan on the problems not yet in the store, committing after every batch.
    `on_open(done, total)` is told what was already finished before any compute starts.
    Under torchrun (`world.size > 1`) the pending problems are sharded over ranks and only rank
    0's `store` is read and written; the other ranks return an empty `StoredRun`. With `trace`,
    every problem's search trace is stored too (problems finished without one are run again:
    tracing does not change results, so they come out the same)."""
    check_run_options(seed, batch_size)
    config = run_config(the_plan, model, task, seed, disable)
    keys = [problem_key(p) for p in problems]
    run, done, pending_idx = None, {}, []
    refused: S3DSLError | None = None
    if world.is_main:
        run = store.open_run(config, problems, run_meta(the_plan, task, split, len(problems)))
        done = store.finished(run.config_key, keys)
        if trace:
            from s3dsl.trace import load_traces

            traced = load_traces(store, run)
            done = {k: v for k, v in done.items() if k in traced}
        pending_idx = [i for i, k in enumerate(keys) if k not in done]
        if pending_idx:  # a read-only store serves stored runs; new results it refuses here
            try:
                store.require_writable(f"{len(pending_idx)} of {len(problems)} problems of "
                                       "this run are not stored")
            except S3DSLError as e:
                refused = e
    pending_idx = world.broadcast(None if refused else pending_idx)  # every rank stops together
    if refused is not None:
        raise refused
    if pending_idx is None:
        raise S3DSLError("rank 0 cannot store new results: its --db is read-only",
                         hint="pass another --db PATH, or --no-db")
    resumed = len(problems) - len(pending_idx)
    if world.is_main and on_open is not None:
        on_open(resumed, len(problems))
    if world.is_main and advance is not None and resumed:
        advance(resumed)
    counters: dict[str, int] = {}
    # the overlap pass keeps `overlap_lanes` batches in flight: a round feeds them all
    per_round = batch_size * max(1, the_plan.flags.overlap_lanes)
    # sharded by whole rounds: every batch holds the problems one process would batch together,
    # so forwards run the same shapes and results agree bit for bit under any world size
    rounds = [pending_idx[s : s + per_round] for s in range(0, len(pending_idx), per_round)]
    mine = [[problems[i] for i in chunk] for chunk in world.shard(rounds)]
    for r in range(world.rounds(len(rounds), 1)):
        batch = mine[r] if r < len(mine) else []
        shares = world.gather(_run_batch(the_plan, model, task, batch, seed, batch_size, trace))
        if not world.is_main:
            continue
        items = [item for share, _, _ in shares for item in share]
        for _, c, _ in shares:
            for k, v in c.items():
                counters[k] = counters.get(k, 0) + v
        if items:
            store.add(run.config_key, items)
        if trace and items:
            from s3dsl.trace import save_traces

            traces = {pid: t for _, _, share in shares for pid, t in share.items()}
            save_traces(store, run.config_key, [(p, traces.get(p.id, [])) for p, _ in items])
        done.update({problem_key(p): s for p, s in items})
        if advance is not None:
            advance(len(items))
    if not world.is_main:
        return StoredRun(None, [], resumed, counters)
    return StoredRun(run, [done[k] for k in keys], resumed, counters)


def _run_batch(
    the_plan: Plan, model: MaskedLM, task: Task, batch: Sequence[Problem], seed: int,
    batch_size: int, trace: bool = False,
) -> tuple[list[tuple[Problem, StoredResult]], dict[str, int], dict[str, list]]:
    """One batch, executed and paired with what the store keeps of each problem (and, with
    `trace`, each problem's search trace by problem id)."""
    if not batch:
        return [], {}, {}
    _reset_peak(model.device)
    t0 = time.perf_counter()
    traces: dict[str, list] = {}
    if trace:
        from s3dsl.trace import execute_traced

        results, c, traces = execute_traced(
            the_plan, model, batch, task.extract_answer, task.is_correct, seed, batch_size
        )
    else:
        results, c = execute(
            the_plan, model, batch, task.extract_answer, task.is_correct, seed, batch_size
        )
    wall = time.perf_counter() - t0
    peak = _read_peak(model.device)
    items = []
    for p, r in zip(batch, results):
        if r.id != p.id:
            raise RuntimeError(f"result for {r.id} where {p.id} was expected")
        flags = [bool(task.is_correct(o.answer, r.answer)) for o in r.particles]
        items.append((p, StoredResult(r, flags, wall / len(batch), peak)))
    return items, dict(c.__dict__) if c else {}, traces
