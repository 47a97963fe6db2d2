"""`slow`: a verifier that burns CPU (GIL held) per candidate, for benchmarks and tests of the
overlap pass only. It is not a built-in: `register()` adds it to the registry where wanted.

Its score is the wrapped verifier's, so a search run with it is a real search; only its cost is
artificial, standing in for heavy host-side verifiers (a parser, a checker, a reward model
called from Python).
"""

from __future__ import annotations

import time

from s3dsl.verifiers.base import Candidate

NAME = "slow"


class SlowVerifier:
    """`inner`'s score after `ms` milliseconds of busy Python per candidate."""

    name = NAME
    needs_gold = False
    gil_bound = True

    def __init__(self, ms: float = 1.0, inner: str = "arith-heuristic"):
        from s3dsl.verifiers.registry import get_verifier

        if ms < 0:
            raise ValueError("ms must be >= 0")
        self.ms, self.inner_name = float(ms), inner
        self.inner = get_verifier(inner)
        if self.inner.needs_gold:
            raise ValueError("inner must not need the gold answer")

    def score(self, candidates: list[Candidate], gold: list[str] | None = None) -> list[float]:
        for _ in candidates:
            burn(self.ms / 1000.0)
        return self.inner.score(candidates)


def burn(seconds: float) -> int:
    """Spin in Python (holding the GIL, as parsing code does) for `seconds` of CPU time."""
    end = time.thread_time() + seconds
    spins = 0
    while time.thread_time() < end:
        spins += 1
    return spins


def register() -> None:
    """Make `slow` a verifier name (benchmarks and tests call this; users never see it)."""
    from s3dsl.verifiers.registry import VERIFIERS

    VERIFIERS.setdefault(NAME, (SlowVerifier, "test/benchmark only: burns ms of CPU per "
                                              "candidate, then scores with inner"))
