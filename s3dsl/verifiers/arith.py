"""`arith-heuristic`: the S3-style reference-free verifier for arithmetic chains.

A gold completion for `23+7*4-5=` is `7*4=28;23+28=51;51-5=46#46`. The verifier rewards the
shape of such a chain, its arithmetic, the model's confidence and the absence of loops. It reads
the prompt's numbers to check that the chain starts from them, but it never evaluates the prompt
(operator precedence is not checked), so it is a heuristic, not an oracle.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

from s3dsl.tasks.arith import OPS
from s3dsl.verifiers._text import repeated_ngram_share
from s3dsl.verifiers.base import Candidate
from s3dsl.verifiers.confidence import geometric_mean_prob
from s3dsl.verifiers.heuristic import FourPartHeuristic

_INT = r"-?\d{1,30}"
_EQUATION = re.compile(rf"\s*({_INT})\s*([+\-*/])\s*({_INT})\s*=\s*({_INT})\s*")
_ANSWER = re.compile(rf"\s*({_INT})\s*")
# The expression right before the final `=` of the prompt (a prompt may carry a preamble).
REPEAT_TOLERANCE = 0.15  # share of repeated 12-grams still counted as "no repetition"
_EXPRESSION = re.compile(r"(-?\d+(?:\s*[+\-*/]\s*-?\d+)*)\s*=\s*$")


@dataclass(frozen=True)
class PromptInfo:
    numbers: tuple[int, ...]

    @property
    def n_ops(self) -> int:
        return max(len(self.numbers) - 1, 0)


@dataclass(frozen=True)
class Signals:
    """The three text signals of one completion, each in [0, 1] (confidence is per candidate)."""

    structure: float
    arithmetic: float
    nondegenerate: float


@lru_cache(maxsize=4096)
def parse_prompt(prompt: str) -> PromptInfo:
    """The integer literals of the prompt's expression (a leading `-` is a sign)."""
    m = _EXPRESSION.search(prompt.strip())
    expr = m.group(1) if m else prompt
    numbers: list[int] = []
    for tok in re.finditer(r"\d+", expr):
        start = tok.start()
        before = expr[:start].rstrip()
        negative = before.endswith("-") and (
            len(before) == 1 or before[:-1].rstrip()[-1:] in ("+", "-", "*", "/", "")
        )
        numbers.append(-int(tok.group()) if negative else int(tok.group()))
    return PromptInfo(tuple(numbers))


def _apply(a: int, op: str, b: int) -> int | None:
    if op in OPS:
        return OPS[op](a, b)
    if b != 0 and a % b == 0:  # "/" : exact integer division only
        return a // b
    return None


def _share(flags: list[bool]) -> float:
    return sum(flags) / len(flags) if flags else 0.0


@lru_cache(maxsize=65536)
def text_signals(prompt: str, completion: str) -> Signals:
    """Structure, arithmetic and non-degeneracy of one completion (cached: clean predictions of
    sibling candidates are often identical)."""
    info = parse_prompt(prompt)
    text = "".join(completion.split())  # subword tokenizers may decode `7 * 4 = 28`
    if not text:
        return Signals(0.0, 0.0, 0.0)

    chain, answer_text = text.rsplit("#", 1) if "#" in text else (text, None)
    ans_match = _ANSWER.fullmatch(answer_text) if answer_text is not None else None
    answer = int(ans_match.group(1)) if ans_match else None
    chunks = chain.split(";") if chain else []

    # arithmetic bookkeeping: each equation should draw its operands from the pool of unused
    # prompt numbers and earlier results (the chain connects to the prompt)
    pool = Counter(info.numbers)
    eqs: list[tuple[int, int | None]] = []  # (written result, true result or None) per equation
    correct: list[bool] = []
    connected: list[bool] = []
    seen: set[str] = set()
    bad_repeats = 0  # a chunk repeated without being a fresh, connected step (a loop)
    for chunk in chunks:
        m = _EQUATION.fullmatch(chunk)
        ok = False
        if m:
            a, op, b, c = int(m[1]), m[2], int(m[3]), int(m[4])
            true = _apply(a, op, b)
            need = Counter((a, b))
            ok = all(pool[k] >= v for k, v in need.items())
            if ok:
                pool.subtract(need)
                pool[c] += 1
            eqs.append((c, true))
            correct.append(true == c)
            connected.append(ok)
        if chunk in seen and not ok:
            bad_repeats += 1
        seen.add(chunk)

    # structure: an integer answer after `#`, well-formed chunks, answer = last written result
    if chunks:
        wellformed = len(eqs) / len(chunks)
    else:
        wellformed = 1.0 if info.n_ops == 0 else 0.0
    last_written = eqs[-1][0] if eqs else (info.numbers[0] if len(info.numbers) == 1 else None)
    links = answer is not None and last_written is not None and answer == last_written
    structure = (float(answer is not None) + wellformed + float(links)) / 3.0

    # arithmetic: correct connected equations, enough of them to reduce the whole expression,
    # and an answer equal to the true value of the last equation
    if info.n_ops == 0:
        arithmetic = float(answer is not None and not eqs and answer == last_written)
    elif not eqs:
        arithmetic = 0.0
    else:
        sound = [x and y for x, y in zip(correct, connected, strict=True)]
        complete = min(sum(connected), info.n_ops) / info.n_ops
        final = answer is not None and answer == eqs[-1][1] and connected[-1] and complete == 1.0
        arithmetic = 0.4 * _share(sound) + 0.2 * _share(connected) + 0.2 * complete + 0.2 * final

    # non-degeneracy: no looping chunks, no long repeated substrings (gold chains such as
    # `7*1=7;7*1=7;...` legitimately repeat a little, hence the tolerance)
    loops = bad_repeats / len(chunks) if chunks else 0.0
    repeats = max(0.0, repeated_ngram_share(text) - REPEAT_TOLERANCE) / (1 - REPEAT_TOLERANCE)
    nondegenerate = 1.0 - max(loops, repeats)
    return Signals(structure, arithmetic, nondegenerate)


class ArithHeuristic(FourPartHeuristic):
    """Weighted sum of structure, arithmetic, confidence and non-degeneracy, each in [0, 1].

    Score range: [0, structure + arithmetic + confidence + nondegenerate], [0, 4] by default;
    a correct, confident, loop-free chain scores close to the maximum.
    """

    name = "arith-heuristic"

    def __init__(
        self,
        structure: float = 1.0,
        arithmetic: float = 2.0,
        confidence: float = 0.5,
        nondegenerate: float = 0.5,
    ):
        super().__init__(structure, arithmetic, confidence, nondegenerate)

    def signals(self, candidate: Candidate) -> tuple[float, float, float, float]:
        """(structure, arithmetic, confidence, nondegenerate) of one candidate."""
        s = text_signals(candidate.prompt, candidate.completion)
        conf = geometric_mean_prob(candidate.token_logprobs)
        return s.structure, s.arithmetic, conf, s.nondegenerate
