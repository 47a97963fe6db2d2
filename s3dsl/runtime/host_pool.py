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
import warnings
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from s3dsl.verifiers.base import Candidate, Verifier

_pools: dict[int, ProcessPoolExecutor] = {}
_lock = threading.Lock()


_broken: list[str] = []  # why the pool cannot be used, once it failed


def usable() -> bool:
    return not _broken


def score(workers: int, verifier: Verifier, candidates: list[Candidate],
          gold: list[str] | None) -> list[float]:
    """Scores from a worker; in place (the same numbers) if the pool cannot run: a spawned
    worker re-imports the main script, which fails unless it is guarded by
    `if __name__ == "__main__":`."""
    if usable():
        try:
            return submit(workers, verifier, candidates, gold).result()
        except BrokenProcessPool as err:
            if not _broken:
                _broken.append(str(err))
                warnings.warn("s3dsl: the verifier process pool could not start; verifiers run "
                              "in place (a script running s3dsl at -O3 needs an "
                              "`if __name__ == \"__main__\":` guard)", RuntimeWarning,
                              stacklevel=2)
    return _score(verifier, candidates, gold)


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
