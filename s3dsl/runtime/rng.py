"""Counter-based randomness: one stream per particle, independent of batch layout.

Every random number is a pure function of (particle key, counter, index): a splitmix64-style hash
computed with int64 tensor ops (on the CPU in Python ints for a few keys, numpy uint64 beyond: the
same bits, without a tensor op's dispatch cost per round of the hash). So the reference
interpreter (one particle at a time) and the batched executor (all particles, any chunking) draw
exactly the same numbers, and a result never depends on how particles were laid out. Keys derive
from (run seed, problem, lineage).

A token proposal (`categorical`) takes one uniform per position, not one Gumbel per vocabulary
entry: hashing is the expensive part, and LLaDA's vocabulary has 126,464 entries.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import torch

from s3dsl.shape_constants import shape_constant

# The randomness scheme, part of every stored run's key: a result drawn under another scheme is not
# served. "categorical-1": proposals by inverse CDF (`categorical`), from issue 11 item 5 on.
SCHEME = "categorical-1"

_M64 = (1 << 64) - 1
_BELOW_ONE = 1.0 - 2.0**-53  # the largest double below 1
_GOLDEN = 0x9E3779B97F4A7C15
_C1 = 0xBF58476D1CE4E5B9
_C2 = 0x94D049BB133111EB


def _signed(x: int) -> int:
    x &= _M64
    return x - (1 << 64) if x >= (1 << 63) else x


def _srl(x: torch.Tensor, s: int) -> torch.Tensor:
    """Logical right shift of int64 (torch's >> is arithmetic)."""
    return (x >> s) & ((1 << (64 - s)) - 1)


def _finalize(x: torch.Tensor) -> torch.Tensor:
    x = (x ^ _srl(x, 30)) * _signed(_C1)
    x = (x ^ _srl(x, 27)) * _signed(_C2)
    return x ^ _srl(x, 31)


def _times_golden(idx: torch.Tensor) -> torch.Tensor:
    """idx * GOLDEN mod 2^64. Under torch.compile it is four products by 16-bit pieces, shifted
    into place (the same bits, idx < 2^31): inductor folds `arange` arithmetic into integer
    index expressions, whose exact 64-bit product overflows, and its CPU vector `arange` steps
    by the multiplier in 32-bit ints."""
    if not torch.compiler.is_compiling():
        return idx * _signed(_GOLDEN)
    out = idx * (_GOLDEN & 0xFFFF)
    for shift in (16, 32, 48):
        out = out + ((idx * ((_GOLDEN >> shift) & 0xFFFF)) << shift)
    return out


def _scaled_index(n: int, offset: int, device: torch.device) -> torch.Tensor:
    """(offset + arange(n)) * GOLDEN mod 2^64, [1, n]: a per-run constant (every step of a run
    asks for the same few)."""
    def make() -> torch.Tensor:
        idx = torch.arange(n, dtype=torch.int64, device=device) + offset
        return _times_golden(idx.view(1, -1))

    return shape_constant(("rng.scaled-index", n, offset, device), make)


HOST_MIX_ROWS = 2  # up to this many CPU keys, `mix` runs in Python ints (~0.6 us per key and
# word); beyond, in numpy uint64 (a few us per word, whatever the count). Both beat int64 tensor
# ops (~18 us per word). Was 24: a step's 8-32 children mixed in Python ints ran ~2% slower in a
# whole S3 run than in numpy (interleaved, tiny-random 2x4 and best-of-K 8, gen 48)
HOST_INT_DRAWS = 24  # up to this many uniforms, `uniform` hashes in Python ints (~1.2 us a
# number); beyond, in numpy on one in-place buffer (~15 us whatever the count up to a few
# hundred, as a micro-benchmark sees it, but ~60 us inside a run, where the numpy calls' code
# and data are cold): was 6; at 24, best-of-K 2's draws (2 keys x up to 12 positions) run in
# Python ints and the whole run takes 0.97-0.99 of the time (in-process A/B over 100-150
# interleaved runs, tiny-random gen 48); S3 2x4 unchanged (1.00 paired; at 32 and 96, 1.00-1.01)
ON_HOST = True  # CPU tensors hash in numpy's uint64 (the same bits, a fraction of the dispatch
# cost of int64 tensor ops on small arrays); False: always the tensor ops (tests compare the two)


def _on_host(keys: torch.Tensor) -> bool:
    return ON_HOST and keys.device.type == "cpu" and not torch.compiler.is_compiling()


def mix(keys: torch.Tensor, *words: int | torch.Tensor) -> torch.Tensor:
    """Derive new int64 keys from keys and integers (a child index, an op id, a step)."""
    if _on_host(keys):
        mixed = _mix_host(keys, words)
        if mixed is not None:
            return torch.from_numpy(mixed)
    x = keys.to(torch.int64)
    for w in words:  # x + GOLDEN + w mod 2^64; an integer word is folded into one constant
        step = x + _signed(_GOLDEN) + w if isinstance(w, torch.Tensor) else x + _signed(_GOLDEN + w)
        x = _finalize(step)
    return x


# -- numpy uint64: the tensor code's arithmetic mod 2^64, for CPU arrays -----------------------
_U_C1, _U_C2 = np.uint64(_C1), np.uint64(_C2)
_CPU = torch.device("cpu")
_U30, _U27, _U31, _U11 = (np.uint64(s) for s in (30, 27, 31, 11))  # (a scalar made per call
# costs as much as the shift itself on a step's few dozen numbers)


def _finalize_np(x: np.ndarray) -> np.ndarray:
    """`_finalize` on a uint64 array (numpy's array arithmetic wraps mod 2^64), in place."""
    x ^= x >> _U30
    x *= _U_C1
    x ^= x >> _U27
    x *= _U_C2
    x ^= x >> _U31
    return x


def _words_np(words: tuple[int | torch.Tensor, ...]) -> list[np.ndarray | np.uint64] | None:
    """Each word plus GOLDEN mod 2^64, as numpy uint64; None if a word is not an integer on
    the CPU."""
    out: list[np.ndarray | np.uint64] = []
    for w in words:
        if not isinstance(w, torch.Tensor):
            out.append(np.uint64((_GOLDEN + w) & _M64))
        elif w.dtype.is_floating_point or w.is_complex() or w.device.type != "cpu":
            return None
        else:
            out.append(w.to(torch.int64).numpy().view(np.uint64) + np.uint64(_GOLDEN))
    return out


def _mix_host(keys: torch.Tensor, words: tuple[int | torch.Tensor, ...]) -> np.ndarray | None:
    """`mix` of CPU keys as an int64 numpy array of the keys' shape: in Python ints for a few
    keys, numpy uint64 beyond (the same bits); None where only the tensor code applies."""
    if keys.numel() <= HOST_MIX_ROWS:
        return _mix_on_host(keys, words)
    return _mix_numpy(keys, words)


def _mix_numpy(keys: torch.Tensor, words: tuple[int | torch.Tensor, ...]) -> np.ndarray | None:
    """`mix` of CPU keys in numpy uint64 (the same bits, broadcasting as the tensor code)."""
    folded = _words_np(words)
    if not folded:  # no words: the keys themselves, as the tensor code gives them
        return None
    x = keys.to(torch.int64).numpy().view(np.uint64)
    for w in folded:
        x = _finalize_np(x + w)  # `x + w` is a new array: the keys are never written
    return x.view(np.int64)


def _finalize_int(x: int) -> int:
    """`_finalize` on one unsigned 64-bit Python int (the same bits)."""
    x = ((x ^ (x >> 30)) * _C1) & _M64
    x = ((x ^ (x >> 27)) * _C2) & _M64
    return x ^ (x >> 31)


def mix_int(key: int, *words: int) -> int:
    """`mix` on a Python int, in plain integer arithmetic mod 2^64: the same bits as the tensor
    code (tests/test_rng_host.py), without a tensor op per round (a few keys per step: the
    problems' root keys, the reference interpreter's particles)."""
    x = key & _M64
    for w in words:
        x = _finalize_int((x + _GOLDEN + w) & _M64)
    return _signed(x)


def _mix_on_host(keys: torch.Tensor, words: tuple[int | torch.Tensor, ...]) -> np.ndarray | None:
    """`mix` of a few CPU keys by `mix_int` (the same bits); None where a tensor word does not
    match the keys' shape one to one (the tensor code broadcasts it). Keys and words cross to
    the host through numpy, which dispatches no tensor op."""
    flat = keys.numpy().reshape(-1).tolist()
    if all(type(w) is int for w in words):  # the common case: op ids, steps, counters
        mixed = [mix_int(k, *words) for k in flat]
    else:
        columns: list[list[int]] = []
        n = len(flat)
        for w in words:
            if not isinstance(w, torch.Tensor):
                columns.append([w] * n)
            elif w.dtype.is_floating_point or w.is_complex() or w.device.type != "cpu":
                return None
            elif w.numel() == 1 and w.dim() <= keys.dim():
                columns.append([int(w.numpy().reshape(-1)[0])] * n)
            elif w.shape == keys.shape:
                columns.append(w.numpy().reshape(-1).tolist())
            else:
                return None
        mixed = [mix_int(k, *ws) for k, *ws in zip(flat, *columns)]
    return np.array(mixed, dtype=np.int64).reshape(keys.shape)


def root_key(seed: int, problem_id: str) -> int:
    """The key of a problem's first particle: stable across machines and Python runs."""
    digest = hashlib.blake2b(f"{seed}\x00{problem_id}".encode(), digest_size=8).digest()
    return _signed(int.from_bytes(digest, "little"))


def uniform(
    keys: torch.Tensor, counter: int | torch.Tensor, shape: tuple[int, ...], offset: int = 0
) -> torch.Tensor:
    """Uniforms in (0, 1), float64, of shape [len(keys), *shape].

    Element e of row r is hash(keys[r], counter, offset + flat index of e), so a slice of a larger
    draw (a window of positions) equals the same slice drawn alone when `offset` says where it is.
    """
    n = 1
    for s in shape:
        n *= s
    if _on_host(keys):  # no tensor op dispatched between the keys and the uniforms
        if type(counter) is int and keys.numel() * n <= HOST_INT_DRAWS:
            return host_uniform(keys.numpy().reshape(-1).tolist(), counter, shape, offset)
        base = _mix_host(keys, (counter,))
        if base is not None:
            return _uniform_np(base, shape, n, offset)
    base = mix(keys.to(torch.int64), counter).view(-1, 1)
    bits = _finalize(base + _scaled_index(n, offset, keys.device))
    mantissa = _srl(bits, 11).to(torch.float64)
    u = (mantissa + 0.5) * (2.0**-53)
    return u.view(len(keys), *shape)


def _uniform_np(base: np.ndarray, shape: tuple[int, ...], n: int, offset: int) -> torch.Tensor:
    """`uniform`'s hash and mantissa in numpy uint64, from keys already mixed with the counter
    (int64 or uint64; the same bits as the tensor code), in place on one buffer."""
    scaled = _scaled_index(n, offset, _CPU).numpy().view(np.uint64)
    bits = _finalize_np(base.reshape(-1, 1).view(np.uint64) + scaled)
    bits >>= _U11
    u = bits.astype(np.float64)
    u += 0.5  # (m + 0.5) * 2^-53 as the tensor code rounds it
    u *= 2.0**-53
    return torch.from_numpy(u.reshape(base.size, *shape))


def _uniform_ints(bases: list[int], shape: tuple[int, ...], n: int, offset: int) -> torch.Tensor:
    """`uniform`'s hash and mantissa in Python ints, from keys already mixed with the counter
    (the same bits as the tensor code; `(bits >> 11) + 0.5` is exact in a float64)."""
    scale = 2.0**-53
    u = [((_finalize_int((b + i * _GOLDEN) & _M64) >> 11) + 0.5) * scale
         for b in bases for i in range(offset, offset + n)]
    return torch.from_numpy(np.array(u, dtype=np.float64)).view(len(bases), *shape)


def host_uniform(keys: list[int], counter: int, shape: tuple[int, ...],
                 offset: int = 0) -> torch.Tensor:
    """`uniform(torch.tensor(keys), counter, shape, offset)` for keys held as Python ints (a
    batch's problems' keys, or a small draw's): the same bits, hashed in Python ints up to
    HOST_INT_DRAWS numbers, in numpy beyond."""
    n = math.prod(shape)
    bases = [mix_int(k, counter) for k in keys]
    if len(keys) * n <= HOST_INT_DRAWS:
        return _uniform_ints(bases, shape, n, offset)
    return _uniform_np(np.array(bases, dtype=np.int64), shape, n, offset)


def gumbel(
    keys: torch.Tensor, counter: int | torch.Tensor, shape: tuple[int, ...], offset: int = 0
) -> torch.Tensor:
    """Standard Gumbel noise, float64 (as LLaDA does its Gumbel-max in float64)."""
    return -torch.log(-torch.log(uniform(keys, counter, shape, offset)))


def categorical(
    keys: torch.Tensor,
    counter: int | torch.Tensor,
    log_weights: torch.Tensor,
    offset: int = 0,
    temperature: float = 1.0,
    exclude: int | None = None,
) -> torch.Tensor:
    """One draw per row and position from softmax(log_weights / temperature) over the last dim.

    log_weights [R, W, V] -> indices [R, W] long. The same distribution as Gumbel-max, drawn by
    inverse CDF from one uniform per position (`uniform(keys, counter, (W,), offset)`, so a window
    of positions drawn alone equals the same window of a larger draw). Entries at -inf and
    `exclude` are never drawn; a position whose weights are all -inf gets index 0. The arithmetic
    is float64 and row-local, so a row's draw does not depend on the rows beside it.
    """
    width = log_weights.shape[1]
    u = uniform(keys, counter, (width, 1), offset)  # [R, W, 1] in (0, 1): the (W,) draw's bits
    x = log_weights.to(torch.float64, copy=True)
    if temperature != 1.0:
        x.div_(temperature)
    if exclude is not None:
        x.select(-1, exclude).fill_(-math.inf)
    # all -inf: -inf - -inf is nan, total nan, and `total > 0` below picks index 0
    cdf = x.sub_(x.amax(dim=-1, keepdim=True)).exp_().cumsum_(dim=-1)  # in place: one buffer
    total = cdf.narrow(-1, cdf.shape[-1] - 1, 1)
    # the first entry whose cdf exceeds u * total, kept below total (so the index is below the
    # vocabulary size): total >= 1 (the largest weight is exp(0)), and for u <= 1 - 2^-53 the
    # product rounds to at most total * (1 - 2^-53), the double just below total. u is below 1
    # except where the mantissa's + 0.5 rounds up to 1.0 (2^-53 of draws), hence the clamp: the
    # same bits as min(u * total, nextafter(total, 0)), in two ops instead of four
    target = u.clamp_(max=_BELOW_ONE).mul_(total)
    index = torch.searchsorted(cdf, target, right=True)
    return torch.where(total > 0, index, 0).squeeze(-1)
