"""Identical rows found by hashing (`runtime/dedup.py`) are exactly the rows a full row sort
finds identical, collisions included; a denoise's forward keeps its window only."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from s3dsl.compiler.build import build
from s3dsl.compiler.nodes import WINDOW_ONLY, tensor_shapes
from s3dsl.compiler.passes import plan
from s3dsl.dsl.loader import parse_strategy
from s3dsl.runtime import dedup


def groups_by_sort(ids: torch.Tensor) -> list[list[int]]:
    """The definition: rows grouped by equality (torch.unique over whole rows)."""
    _, inverse = torch.unique(ids, dim=0, return_inverse=True)
    found: dict[int, list[int]] = {}
    for row, g in enumerate(inverse.tolist()):
        found.setdefault(g, []).append(row)
    return sorted(found.values())


def groups_of(ids: torch.Tensor) -> list[list[int]]:
    same = dedup.identical_rows(ids)
    if same is None:
        return [[r] for r in range(ids.shape[0])]
    first, inverse = same
    assert torch.equal(ids[first][inverse], ids)  # every row is its group's first row
    found: dict[int, list[int]] = {}
    for row, g in enumerate(inverse.tolist()):
        found.setdefault(g, []).append(row)
    for g, rows in found.items():
        assert int(first[g]) == rows[0]  # the first occurrence stands for its group
    return sorted(found.values())


@st.composite
def batches(draw):
    rows, width = draw(st.integers(1, 12)), draw(st.integers(1, 6))
    distinct = draw(st.lists(st.lists(st.integers(0, 3), min_size=width, max_size=width),
                             min_size=1, max_size=rows))
    pick = draw(st.lists(st.integers(0, len(distinct) - 1), min_size=rows, max_size=rows))
    return torch.tensor([distinct[i] for i in pick], dtype=torch.long)


@settings(max_examples=80, deadline=None)
@given(batches())
def test_identical_rows_are_the_row_sorts_groups(ids):
    assert groups_of(ids) == groups_by_sort(ids)


@settings(max_examples=40, deadline=None)
@given(batches())
def test_a_hash_collision_never_merges_different_rows(ids):
    # every row hashes alike when the weights are zero: only the row comparison can tell
    saved = dedup.row_weights
    dedup.row_weights = lambda length, device: torch.zeros(length, dtype=torch.long)
    try:
        assert groups_of(ids) == groups_by_sort(ids)
    finally:
        dedup.row_weights = saved


def test_distinct_rows_need_no_index():
    ids = torch.arange(12).view(4, 3)
    assert dedup.identical_rows(ids) is None
    assert dedup.identical_rows(ids[:1]) is None


STRATEGY = """name: t
program:
  init: expand(2)
  step: denoise | score(v)
  final: select(by=score)
verifiers: {v: task-default}
"""


def test_a_denoise_forward_keeps_its_window_only_and_a_score_forward_its_clean_prediction():
    the_plan = plan(build(parse_strategy(STRATEGY, "t.yaml"), {}, 16, "arith-heuristic"), 2)
    forwards = {s.op.name: s.node("forward") for s in the_plan.lowered.step}
    assert forwards["denoise"].get("keeps") == WINDOW_ONLY
    assert "clean" not in tensor_shapes(forwards["denoise"])
    assert forwards["score"].get("keeps") is None
    assert "clean" in tensor_shapes(forwards["score"])
