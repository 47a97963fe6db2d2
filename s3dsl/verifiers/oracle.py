"""`oracle`: exact-match against the gold answer, for analysis and upper-bound curves only."""

from __future__ import annotations

from collections.abc import Callable

from s3dsl.verifiers._text import answer_after_hash
from s3dsl.verifiers.base import Candidate

Extractor = Callable[[str], "str | None"]
Matcher = Callable[["str | None", str], bool]


def _exact(prediction: str | None, answer: str) -> bool:
    return prediction is not None and prediction.strip() == answer.strip()


class Oracle:
    """1.0 if the completion's extracted answer equals the gold, else 0.0.

    It reads the gold answer (`needs_gold = True`), so it is NOT a test-time verifier: use it only
    for analysis and upper-bound curves (what search could reach with a perfect verifier).
    `extract` defaults to "text after the last `#`, else the stripped completion"; the runtime
    passes the task's extractor, and may pass the task's `is_correct` as `match`.
    """

    name = "oracle"
    needs_gold = True

    def __init__(self, extract: Extractor | None = None, match: Matcher | None = None):
        self.extract = extract or answer_after_hash
        self.match = match or _exact

    def score(self, candidates: list[Candidate], gold: list[str] | None = None) -> list[float]:
        if gold is None or len(gold) != len(candidates):
            raise ValueError("oracle needs one gold answer per candidate")
        return [
            1.0 if self.match(self.extract(c.completion), g) else 0.0
            for c, g in zip(candidates, gold, strict=True)
        ]
