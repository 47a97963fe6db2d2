"""Host work overlapped with device work: what the `overlap` pass's plan nodes (`lanes=2`, and
`pool=` on verifier calls) ask of the batched executor.

Consecutive batches of problems are in flight together, each lane (a thread with its own
executor) running every `lanes`-th batch through the one `drive` loop every backend shares. A
`DeviceTurn` lets one lane at a time issue device work (the prompt encode, a forward and its
reduction, a fused static step), so what overlaps is the host work of one lane (decoding
candidates, verifiers, resampling, bookkeeping) with the forward of the other. Verifiers marked
GIL-bound run in a process pool (`host_pool`), where they cannot hold the GIL the other lane's
forward needs; torch kernels release it. On CUDA each lane issues its work on its own stream, so
one lane's wait for its results never waits for the other's kernels.

Every batch is exactly the batch the serial engine runs (its rows, in the same forward calls of
the same shapes), and problems are independent (randomness per problem, resampling within a
problem), so tokens, scores, weights and every counter are bit for bit the serial engine's. A run
of one batch has nothing to overlap and runs serially.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import fields

import torch

from s3dsl.runtime import host_pool
from s3dsl.runtime.executor import BatchedExecutor
from s3dsl.runtime.results import ProblemResult
from s3dsl.runtime.scoring import run_verifier
from s3dsl.tasks.base import Problem
from s3dsl.verifiers.base import Candidate

POOL_WORKERS: int | None = None  # verifier processes; None: one per lane (benchmarks vary it)


class DeviceTurn:
    """One lane at a time issues device work: the device is one resource, and on a CPU run this
    keeps the overlap honest (two forwards never share the cores)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    @contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            yield


class LaneExecutor(BatchedExecutor):
    """The batched executor of one micro-batch: the same stages, with device work taken in turn
    and verifier calls sent where the plan says."""

    def __init__(self, base: BatchedExecutor, turn: DeviceTurn, workers: int):
        super().__init__(base.program, base.model, base.extract, base.seed, base.flags,
                         lowered=base.lowered)
        self.verifiers, self.step_fn = base.verifiers, base.step_fn
        self.chunk_rows = base.chunk_rows
        self.turn, self.workers = turn, workers
        self.observer = getattr(base, "observer", None)
        self.shippable = {n: host_pool.can_ship(v) for n, v in self.verifiers.items()}

    def begin(self, batch: list[Problem]) -> None:
        with self.turn():
            super().begin(batch)

    def forward(self, *args, **kwargs):
        with self.turn():
            return super().forward(*args, **kwargs)

    def static_denoise(self, op, ctx) -> None:
        with self.turn():
            super().static_denoise(op, ctx)

    def verify(self, name: str, cands: list[Candidate], gold: Sequence[str]) -> torch.Tensor:
        host = self.stage.node("host")
        if host is None or host.get("pool") != "process" or not self.shippable[name]:
            return super().verify(name, cands, gold)
        # the distinct candidates only, as in place (identical rows share one Candidate)
        return run_verifier(self.verifiers[name], cands, gold,
                            lambda v, c, g: host_pool.score(self.workers, v, c, g))


def lanes_of(executor: BatchedExecutor) -> int:
    """Micro-batches in flight the plan asks for (1: the serial engine)."""
    nodes = executor.lowered.nodes("forward") + executor.lowered.nodes("static-step")
    return max((int(n.get("lanes") or 1) for n in nodes), default=1)


def run_lanes(base: BatchedExecutor, problems: Sequence[Problem], batch_size: int,
              progress: Callable[[int], None] | None = None) -> list[ProblemResult]:
    """`BatchedExecutor.run` with consecutive batches in flight together: lane k runs batches
    k, k + lanes, ... Each batch is exactly the batch the serial engine runs (the same rows in
    the same forward calls), so results and counters are bit for bit the serial engine's."""
    batches = [list(problems[s : s + batch_size]) for s in range(0, len(problems), batch_size)]
    lanes = min(lanes_of(base), len(batches))
    turn = DeviceTurn()
    observer, advance = _serialized(getattr(base, "observer", None)), _serialized(progress)
    executors = [LaneExecutor(base, turn, POOL_WORKERS or lanes) for _ in range(lanes)]
    streams = _streams(base.device, lanes)
    out: list[list[ProblemResult]] = [[] for _ in batches]
    failed = threading.Event()  # one lane's error stops the others at their next batch

    def lane(k: int) -> None:
        ex = executors[k]
        ex.observer = observer
        for b in range(k, len(batches), lanes):
            if failed.is_set():
                return
            try:
                out[b] = _run_batch(ex, batches[b], streams[k])
            except BaseException:
                failed.set()
                raise
            if advance is not None:
                advance(len(batches[b]))

    with ThreadPoolExecutor(max_workers=lanes, thread_name_prefix="s3dsl-lane") as threads:
        for job in [threads.submit(lane, k) for k in range(lanes)]:
            job.result()
    for ex in executors:
        _add_counters(base, ex)
    chunks = [ex.chunk_rows for ex in executors if ex.chunk_rows is not None]
    base.chunk_rows = min(chunks) if chunks else base.chunk_rows
    return [r for batch in out for r in batch]


def _run_batch(ex: LaneExecutor, batch: list[Problem], stream) -> list[ProblemResult]:
    # inference mode and the current stream are per thread
    on_stream = torch.cuda.stream(stream) if stream is not None else nullcontext()
    with torch.inference_mode(), on_stream:
        return ex.run_batch(batch)


def _streams(device: torch.device, n: int) -> list:
    if device.type != "cuda":
        return [None] * n
    current = torch.cuda.current_stream(device)
    streams = [torch.cuda.Stream(device) for _ in range(n)]
    for s in streams:
        s.wait_stream(current)  # the weights and inputs were made on the current stream
    return streams


def _add_counters(base: BatchedExecutor, lane: BatchedExecutor) -> None:
    for f in fields(base.counters):
        setattr(base.counters, f.name,
                getattr(base.counters, f.name) + getattr(lane.counters, f.name))


def _serialized(fn):
    """`fn` called by one lane at a time (a trace recorder, a progress bar)."""
    if fn is None:
        return None
    lock = threading.Lock()

    def call(*args) -> None:
        with lock:
            fn(*args)

    return call
