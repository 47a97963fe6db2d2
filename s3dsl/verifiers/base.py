"""What a verifier sees and returns.

A verifier scores a candidate's *clean prediction*: the sequence with every still-masked position
filled with the model's argmax. It never sees the gold answer, except the `oracle`, which says so
with `needs_gold = True` and exists for analysis only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Candidate:
    """One clean prediction.

    completion: decoded generated region, cut at the first end-of-sequence token.
    token_logprobs: one per generated position (before the cut): for committed tokens the
        log-probability they had when committed, for filled tokens that of the argmax now.
    filled: one per generated position, True where the token is a fill (still masked).
    """

    prompt: str
    completion: str
    token_logprobs: tuple[float, ...]
    filled: tuple[bool, ...]


class Verifier(Protocol):
    name: str
    needs_gold: bool

    def score(self, candidates: list[Candidate], gold: list[str] | None = None) -> list[float]:
        """One float per candidate, higher is better. `gold` is passed only if `needs_gold`."""
        ...


# A verifier class may say `gil_bound = True` when its `score` is CPU-bound Python (text parsing):
# the overlap pass (`s3dsl.runtime.overlap`) then runs it in a process pool, where it cannot hold
# the GIL the forwards of the other micro-batch need. Without the attribute it runs in place.
