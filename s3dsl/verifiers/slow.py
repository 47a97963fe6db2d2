"""`slow`: a verifier that costs a set time per candidate, for benchmarks and tests of the overlap
pass only. It is not a built-in: `register()` adds it to the registry where wanted.

`mode=burn` spins in Python with the GIL held (a parser, a checker written in Python);
`mode=sleep` waits without using a core (a reward-model server, a proof checker in a subprocess).

Its score is the wrapped verifier's, so a search run with it is a real search; only its cost is
artificial, standing in for heavy host-side verifiers (a parser, a checker, a reward model
called from Python).
"""

from __future__ import annotations

import time

from s3dsl.verifiers.base import Candidate

NAME = "slow"


class SlowVerifier:
    """`inner`'s score after `ms` milliseconds per candidate, busy (`burn`) or waiting."""

    name = NAME
    needs_gold = False
    gil_bound = True

    def __init__(self, ms: float = 1.0, inner: str = "arith-heuristic", mode: str = "burn"):
        from s3dsl.verifiers.registry import get_verifier

        if ms < 0:
            raise ValueError("ms must be >= 0")
        if mode not in ("burn", "sleep"):
            raise ValueError("mode must be burn or sleep")
        self.ms, self.inner_name, self.mode = float(ms), inner, mode
        self.inner = get_verifier(inner)
        if self.inner.needs_gold:
            raise ValueError("inner must not need the gold answer")

    def score(self, candidates: list[Candidate], gold: list[str] | None = None) -> list[float]:
        seconds = self.ms / 1000.0 * len(candidates)
        if self.mode == "sleep":
            time.sleep(seconds)
        else:
            burn(seconds)
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
