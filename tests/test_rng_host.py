"""The host-side hashing (`rng.mix_int` and small uniform draws in plain integers, numpy uint64 for
more CPU keys and larger draws) gives the tensor code's bits."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from s3dsl.runtime import rng

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)


def by_tensor_ops(fn, *args):
    """`fn(*args)` with every host path of `rng` turned off: its int64 tensor ops."""
    saved, rng.ON_HOST = rng.ON_HOST, False
    try:
        return fn(*args)
    finally:
        rng.ON_HOST = saved


def tensor_mix(keys: torch.Tensor, *words) -> torch.Tensor:
    """`rng.mix` by its tensor ops, whatever the key count."""
    return by_tensor_ops(rng.mix, keys, *words)


@settings(max_examples=200, deadline=None)
@given(key=INT64, words=st.lists(st.integers(min_value=-(2**40), max_value=2**40), max_size=4))
def test_mix_int_equals_tensor_mix(key: int, words: list[int]) -> None:
    expected = tensor_mix(torch.tensor([key], dtype=torch.int64), *words)
    assert rng.mix_int(key, *words) == int(expected[0])


def test_mix_int_is_a_signed_int64() -> None:
    out = [rng.mix_int(k, 3, 7) for k in (0, -1, 2**63 - 1, -(2**63))]
    assert all(-(2**63) <= x < 2**63 for x in out)
    assert len(set(out)) == 4


@settings(max_examples=100, deadline=None)
@given(keys=st.lists(INT64, min_size=1, max_size=rng.HOST_MIX_ROWS), op=st.integers(0, 2**20),
       step=st.integers(0, 4096), data=st.data())
def test_mix_of_a_few_cpu_keys_on_the_host_equals_the_tensor_code(keys, op, step, data) -> None:
    """`mix` takes Python ints for a few CPU keys: the same bits as its tensor ops, with integer,
    0-d, one-per-key and broadcast tensor words."""
    k = torch.tensor(keys, dtype=torch.int64)
    child = torch.tensor(data.draw(st.lists(st.integers(-(2**31), 2**31), min_size=len(keys),
                                            max_size=len(keys))), dtype=torch.int64)
    word_sets = [(op,), (op, step), (op, torch.tensor(step), child), (child.view(-1, 1),), ()]
    for words in word_sets:
        host, tensor = rng.mix(k, *words), tensor_mix(k, *words)
        assert host.shape == tensor.shape and host.dtype == tensor.dtype
        assert torch.equal(host, tensor)


@settings(max_examples=60, deadline=None)
@given(keys=st.lists(INT64, min_size=rng.HOST_MIX_ROWS + 1, max_size=80),
       op=st.integers(0, 2**20), step=st.integers(0, 4096), data=st.data())
def test_mix_of_many_cpu_keys_in_numpy_equals_the_tensor_code(keys, op, step, data) -> None:
    """More CPU keys than the Python-int path takes: numpy's wrapping uint64 arithmetic, the same
    bits and broadcasting as the tensor ops."""
    k = torch.tensor(keys, dtype=torch.int64)
    child = torch.tensor(data.draw(st.lists(st.integers(-(2**31), 2**31), min_size=len(keys),
                                            max_size=len(keys))), dtype=torch.int64)
    word_sets = [(op,), (op, step), (op, torch.tensor(step), child), (child.view(-1, 1),),
                 (child.to(torch.int32),)]
    for words in word_sets:
        host, tensor = rng.mix(k, *words), tensor_mix(k, *words)
        assert host.shape == tensor.shape and host.dtype == tensor.dtype
        assert torch.equal(host, tensor)
    assert torch.equal(rng.mix(k), k)  # no words: the keys


@settings(max_examples=60, deadline=None)
@given(keys=st.lists(INT64, min_size=1, max_size=40), counter=st.integers(0, 2**40),
       width=st.integers(1, 64), offset=st.integers(0, 512), as_tensor=st.booleans())
def test_uniform_on_the_host_equals_the_tensor_code(keys, counter, width, offset, as_tensor):
    """`uniform` on CPU hashes in Python ints (up to HOST_INT_DRAWS numbers) or numpy: the same
    float64 values, shape and dtype as the tensor ops, for integer and 0-d tensor counters."""
    k = torch.tensor(keys, dtype=torch.int64)
    c = torch.tensor(counter) if as_tensor else counter
    host = rng.uniform(k, c, (width,), offset)
    tensor = by_tensor_ops(rng.uniform, k, c, (width,), offset)
    assert host.shape == tensor.shape == (len(keys), width)
    assert host.dtype == tensor.dtype == torch.float64
    assert torch.equal(host, tensor)
    assert bool(((host > 0) & (host < 1)).all())


@settings(max_examples=60, deadline=None)
@given(keys=st.lists(INT64, min_size=1, max_size=8), counter=st.integers(0, 2**40),
       width=st.integers(1, 64))
def test_uniform_of_python_int_keys_equals_the_tensor_code(keys, counter, width):
    """`host_uniform` (a batch's problem keys, held as Python ints: resampling's uniforms) gives
    `uniform`'s tensor-op bits for the same keys as a tensor."""
    host = rng.host_uniform(keys, counter, (width,))
    tensor = by_tensor_ops(rng.uniform, torch.tensor(keys, dtype=torch.int64), counter, (width,))
    assert host.shape == tensor.shape and host.dtype == tensor.dtype
    assert torch.equal(host, tensor)
