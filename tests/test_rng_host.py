"""The host-side key mixing (`rng.mix_int`, plain integers) gives the tensor code's bits."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from s3dsl.runtime import rng

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)


@settings(max_examples=200, deadline=None)
@given(key=INT64, words=st.lists(st.integers(min_value=-(2**40), max_value=2**40), max_size=4))
def test_mix_int_equals_tensor_mix(key: int, words: list[int]) -> None:
    expected = rng.mix(torch.tensor([key], dtype=torch.int64), *words)
    assert rng.mix_int(key, *words) == int(expected[0])


def test_mix_int_is_a_signed_int64() -> None:
    out = [rng.mix_int(k, 3, 7) for k in (0, -1, 2**63 - 1, -(2**63))]
    assert all(-(2**63) <= x < 2**63 for x in out)
    assert len(set(out)) == 4
