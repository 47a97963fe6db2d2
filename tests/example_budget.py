"""How many examples the generated-program tests draw. CI draws a fixed set (derandomized and
without an example database, so a run never flakes and every checkout tests the same programs).
`S3DSL_EXPLORE=N` asks for N times as many, new ones, seeded by pytest's `--hypothesis-seed`:
a bug outside the fixed set is found by a long run, then kept as an `@example`.

    S3DSL_EXPLORE=5 python -m pytest tests/test_equivalence.py --hypothesis-seed=1
"""

from __future__ import annotations

import os

from hypothesis import settings

EXPLORE = int(os.environ.get("S3DSL_EXPLORE") or 0)


def examples(n: int, **kwargs) -> settings:
    """Settings for n examples (n x S3DSL_EXPLORE, freshly drawn, when exploring)."""
    kwargs.setdefault("deadline", None)
    if EXPLORE > 0:
        return settings(max_examples=n * EXPLORE, derandomize=False, database=None, **kwargs)
    return settings(max_examples=n, derandomize=True, database=None, **kwargs)
