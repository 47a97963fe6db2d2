"""Multi-step integer arithmetic with a written chain of intermediate equations.

A prompt is `23+7*4-5=`; the gold completion (`Problem.target`) is the evaluation written one
binary operation at a time, `7*4=28;23+28=51;51-5=46#46`: all `*` first, left to right, then `+`
and `-` left to right. Writing the chain gives a small model intermediate results to condition on
and gives a verifier something to check (each step is independently verifiable).
"""

from __future__ import annotations

import hashlib
import operator
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

from s3dsl.tasks.base import Problem, split_problems

_INT = re.compile(r"-?\d+")
_STEP = re.compile(r"^(-?\d+)([+\-*])(-?\d+)=(-?\d+)$")


OPS: dict[str, Callable[[int, int], int]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
}


def _apply(a: int, op: str, b: int) -> int:
    if op not in OPS:
        raise ValueError(f"unknown operator {op!r}")
    return OPS[op](a, b)


def solve_chain(numbers: list[int], ops: list[str]) -> tuple[list[str], int]:
    """The intermediate equations and the value of `n0 op0 n1 op1 ...` with usual precedence."""
    if len(numbers) != len(ops) + 1:
        raise ValueError("need exactly one more number than operators")
    nums, rest = list(numbers), list(ops)
    steps: list[str] = []
    for level in ("*", "+-"):
        i = 0
        while i < len(rest):
            if rest[i] in level:
                value = _apply(nums[i], rest[i], nums[i + 1])
                steps.append(f"{nums[i]}{rest[i]}{nums[i + 1]}={value}")
                nums[i : i + 2] = [value]
                del rest[i]
            else:
                i += 1
    return steps, nums[0]


def parse_expression(expr: str) -> tuple[list[int], list[str]]:
    """`23+7*4-5` -> ([23, 7, 4, 5], ['+', '*', '-']); non-negative integer literals only."""
    parts = re.split(r"([+\-*])", expr.replace(" ", "").rstrip("="))
    numbers = [int(p) for p in parts[0::2]]
    return numbers, parts[1::2]


def check_chain(completion: str) -> bool:
    """True when every written step `a op b = c` is arithmetically right (format checks only)."""
    body = completion.split("#", 1)[0]
    steps = [s for s in body.split(";") if s]
    for step in steps:
        m = _STEP.match(step)
        if m is None or _apply(int(m[1]), m[2], int(m[3])) != int(m[4]):
            return False
    return bool(steps)


@dataclass(frozen=True)
class ArithTask:
    """Integer expressions over `+ - *`.

    Operands of `+`/`-` have up to `digits` digits; operands that take part in a product have up to
    `mul_digits` digits, which keeps products within what a tiny model can learn. The test split
    draws the operator count from `ops`, the train split from the (wider or equal) `train_ops`.
    """

    ops: tuple[int, int] = (2, 3)
    train_ops: tuple[int, int] = (1, 3)
    digits: int = 1
    mul_digits: int = 1
    mul_prob: float = 0.35
    test_size: int = 200
    test_seed: int = 20260101
    name: str = "arith"
    gen_length: int = 48
    default_model: str = "arith"
    default_verifier: str = "arith-heuristic"

    def generate(self, rng: random.Random, ops: tuple[int, int]) -> tuple[list[int], list[str]]:
        """One random expression with ops[0]..ops[1] operators, as numbers and operators."""
        n_ops = rng.randint(*ops)
        chosen = [("*" if rng.random() < self.mul_prob else rng.choice("+-")) for _ in range(n_ops)]
        numbers = []
        for i in range(n_ops + 1):
            in_product = (i > 0 and chosen[i - 1] == "*") or (i < n_ops and chosen[i] == "*")
            d = self.mul_digits if in_product else self.digits
            numbers.append(rng.randint(1 if in_product else 0, 10**d - 1))
        return numbers, chosen

    def make_problem(self, numbers: list[int], ops: list[str], pid: str) -> Problem:
        expr = str(numbers[0]) + "".join(f"{o}{n}" for o, n in zip(ops, numbers[1:], strict=False))
        steps, value = solve_chain(numbers, ops)
        target = ";".join(steps) + f"#{value}"
        return Problem(id=pid, prompt=expr + "=", answer=str(value), target=target)

    @cached_property
    def _test(self) -> list[Problem]:
        rng = random.Random(self.test_seed)
        out: list[Problem] = []
        seen: set[str] = set()
        while len(out) < self.test_size:
            p = self.make_problem(*self.generate(rng, self.ops), pid=f"arith-test-{len(out)}")
            if p.prompt not in seen and len(p.target) < self.gen_length:
                seen.add(p.prompt)
                out.append(p)
        return out

    @cached_property
    def test_prompts(self) -> frozenset[str]:
        return frozenset(p.prompt for p in self._test)

    def train_stream(self, seed: int = 0):
        """An endless stream of train problems; never yields a test prompt."""
        rng = random.Random(f"arith-train-{seed}")
        i = 0
        while True:
            p = self.make_problem(
                *self.generate(rng, self.train_ops), pid=f"arith-train-{seed}-{i}"
            )
            if p.prompt in self.test_prompts or len(p.target) >= self.gen_length:
                continue
            i += 1
            yield p

    def problems(self, split: str = "test", limit: int | None = None) -> list[Problem]:
        """'test': the fixed held-out split; 'train': the first `limit` (default 1000) of seed 0."""
        return split_problems(self._test, self.train_stream(0), split, limit)

    def extract_answer(self, completion: str) -> str | None:
        """The integer after the last `#`, or None when there is no `#` or it is no integer."""
        if "#" not in completion:
            return None
        tail = completion.rsplit("#", 1)[1].strip()
        if not _INT.fullmatch(tail):
            return None
        return str(int(tail))

    def is_correct(self, prediction: str | None, answer: str) -> bool:
        if prediction is None:
            return False
        try:
            return int(prediction) == int(answer)
        except ValueError:
            return False


def split_fingerprint(problems: list[Problem]) -> str:
    """A short hash of the prompts, to pin a split in tests."""
    return hashlib.sha256("\n".join(p.prompt for p in problems).encode()).hexdigest()[:16]
