"""The process pool GIL-bound verifiers run in under the overlap pass.

Kept free of torch (and of the rest of the runtime) so a worker starts in a fraction of a second:
it imports only the verifier it unpickles. Workers are spawned, never forked: the parent holds
torch's threads, and a fork of a threaded process can deadlock.
"""

from __future__ import annotations

import atexit
import multiprocessing
import pickle
import threading
from concurrent.futures import Future, ProcessPoolExecutor

from s3dsl.verifiers.base import Candidate, Verifier

_pools: dict[int, ProcessPoolExecutor] = {}
_lock = threading.Lock()


def pool(workers: int) -> ProcessPoolExecutor:
    """One pool per worker count for the life of the process (spawning costs ~0.1-1 s)."""
    with _lock:
        if workers not in _pools:
            context = multiprocessing.get_context("spawn")
            _pools[workers] = ProcessPoolExecutor(max_workers=workers, mp_context=context)
        return _pools[workers]


def can_ship(verifier: Verifier) -> bool:
    """Whether the verifier pickles (one built from plain options does; one closing over a
    lambda runs in place instead)."""
    try:
        pickle.dumps(verifier)
    except (pickle.PicklingError, TypeError, AttributeError):
        return False
    return True


def submit(workers: int, verifier: Verifier, candidates: list[Candidate],
           gold: list[str] | None) -> Future:
    """Score in a worker; the future's result is one float per candidate."""
    return pool(workers).submit(_score, verifier, candidates, gold)


def _score(verifier: Verifier, candidates: list[Candidate], gold: list[str] | None) -> list[float]:
    return [float(x) for x in verifier.score(candidates, gold)]


@atexit.register
def shutdown() -> None:
    with _lock:
        for p in _pools.values():
            p.shutdown(wait=True, cancel_futures=True)
        _pools.clear()
