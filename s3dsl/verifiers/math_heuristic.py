r"""`math-heuristic`: the S3 paper's four-part, reference-free verifier for free-text answers.

The S3 paper scores LLaDA's clean predictions on MATH-500, GSM8K and ARC-C with four signals:
answer structure, arithmetic consistency, the model's confidence and non-degeneracy. It does not
publish their definitions or weights; these are ours, each in [0, 1]:
- structure: 1 for a final `\boxed{...}` or a stated "The answer is ..." / "####" answer, 0.5
  for an unclosed or empty one, 0 for none;
- arithmetic: the share of the `a op b = c` statements (chains like `2 + 3 * 4 = 14` too) whose
  left side evaluates to the written right side, parsed by a small recursive-descent parser over
  exact fractions (never `eval`); `no_equations` when the text states none;
- confidence: the geometric-mean probability of the generated tokens;
- non-degeneracy: 0 for an empty text, else 1 minus the share of repeated word 4-grams beyond
  a small tolerance.
"""

from __future__ import annotations

import re
from fractions import Fraction
from functools import lru_cache

from s3dsl.tasks.answers import stated_answer
from s3dsl.verifiers.base import Candidate
from s3dsl.verifiers.confidence import geometric_mean_prob
from s3dsl.verifiers.heuristic import FourPartHeuristic, check_weight

_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+"
_RESULT = re.compile(rf"\s*(-?\s*(?:{_NUM}))(?![\d.]*\d)")
_LEFT_CHARS = frozenset("0123456789.,+-*/() ")
_SEPARATOR = re.compile(r"[.,](?:\s|$)")  # "so 4. 3 + 4 = 7": a sentence or list break
MAX_LEFT = 120  # characters of left side looked at before an `=`
_SYMBOLS = (("\\times", "*"), ("\\cdot", "*"), ("×", "*"), ("·", "*"), ("\\div", "/"),
            ("÷", "/"), ("−", "-"), ("\\left", ""), ("\\right", ""), ("\\$", ""), ("$", ""))
_TOKEN = re.compile(rf"{_NUM}|[-+*/()]")  # whitespace between tokens is skipped
_WORD = re.compile(r"\w+")
NGRAM = 4
REPEAT_TOLERANCE = 0.1  # share of repeated word 4-grams still counted as "no repetition"
MAX_DIGITS = 40  # larger literals are not checked (keeps exact arithmetic cheap)


class _Parser:
    """expr := term (('+'|'-') term)*; term := unary (('*'|'/') unary)*;
    unary := '-' unary | '(' expr ')' | number. Raises ValueError on anything else."""

    def __init__(self, text: str):
        self.tokens = _TOKEN.findall(text)
        if "".join(self.tokens) != "".join(text.split()):
            raise ValueError("unexpected character")
        self.i = 0

    def _peek(self) -> str | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def _take(self) -> str:
        tok = self._peek()
        if tok is None:
            raise ValueError("unexpected end")
        self.i += 1
        return tok

    def parse(self) -> Fraction:
        value = self._expr()
        if self._peek() is not None:
            raise ValueError("trailing input")
        return value

    def _expr(self) -> Fraction:
        value = self._term()
        while self._peek() in ("+", "-"):
            value = value + self._term() if self._take() == "+" else value - self._term()
        return value

    def _term(self) -> Fraction:
        value = self._unary()
        while self._peek() in ("*", "/"):
            op, rhs = self._take(), self._unary()
            if op == "*":
                value *= rhs
            elif rhs == 0:
                raise ValueError("division by zero")
            else:
                value /= rhs
        return value

    def _unary(self) -> Fraction:
        tok = self._take()
        if tok == "-":
            return -self._unary()
        if tok == "(":
            value = self._expr()
            if self._take() != ")":
                raise ValueError("unbalanced parenthesis")
            return value
        if tok in "+*/)":
            raise ValueError(f"unexpected {tok!r}")
        if len(tok) > MAX_DIGITS:
            raise ValueError("number too long")
        return Fraction(tok.replace(",", ""))


def evaluate(expression: str) -> Fraction:
    """The exact value of `+ - * /` arithmetic with parentheses; ValueError if not that."""
    return _Parser(expression).parse()


def _close(value: Fraction, written: str) -> bool:
    """Equal up to the precision the result is written with (`10/3 = 3.33` is consistent)."""
    target = Fraction(written.replace(",", "").replace(" ", ""))
    decimals = len(written.split(".", 1)[1]) if "." in written else 0
    return abs(value - target) <= Fraction(1, 2 * 10**decimals) if decimals else value == target


def _left_side(text: str, eq: int) -> str | None:
    """The arithmetic right before the `=` at `eq`: the longest run of number/operator
    characters, trimmed to start at a number or `(`; None without an operator in it."""
    start = eq
    while start > 0 and eq - start < MAX_LEFT and text[start - 1] in _LEFT_CHARS:
        start -= 1
    left = _SEPARATOR.split(text[start:eq])[-1].strip().lstrip("+*/,.) ").strip()
    body = left.lstrip("-(").replace(" ", "")
    if not left or not any(op in body.lstrip("0123456789.,") for op in "+-*/"):
        return None
    return left


def statements(text: str) -> list[tuple[str, str]]:
    """The `(left side, written result)` pairs of the arithmetic statements in a text."""
    for old, new in _SYMBOLS:
        text = text.replace(old, new)
    out = []
    for eq in (i for i, ch in enumerate(text) if ch == "="):
        result = _RESULT.match(text, eq + 1)
        left = _left_side(text, eq) if result else None
        if left is not None and result is not None:
            out.append((left, result.group(1)))
    return out


def arithmetic_consistency(text: str) -> tuple[int, int]:
    """(consistent, checked) statement counts; statements that do not parse are not counted."""
    good = checked = 0
    for left, right in statements(text):
        try:
            value = evaluate(left)
        except (ValueError, ZeroDivisionError):
            continue
        checked += 1
        good += _close(value, right)
    return good, checked


def structure_signal(text: str) -> float:
    start = text.rfind("\\boxed{")
    if start >= 0:
        from s3dsl.tasks.data import extract_boxed

        return 1.0 if extract_boxed(text[start:]) else 0.5
    if stated_answer(text):
        return 1.0
    return 0.5 if re.search(r"answer\s*(?:is|:)|####", text, re.IGNORECASE) else 0.0


def repeated_share(text: str, n: int = NGRAM) -> float:
    """Share of the word n-grams that already occurred earlier in the text."""
    words = _WORD.findall(text.lower())
    total = len(words) - n + 1
    if total <= 1:
        return 0.0
    seen: set[tuple[str, ...]] = set()
    repeats = 0
    for i in range(total):
        gram = tuple(words[i : i + n])
        repeats += gram in seen
        seen.add(gram)
    return repeats / total


@lru_cache(maxsize=65536)
def text_signals(completion: str, no_equations: float) -> tuple[float, float, float]:
    """(structure, arithmetic, non-degeneracy) of one text (cached: siblings often agree)."""
    text = completion.strip()
    if not text:
        return 0.0, 0.0, 0.0
    good, checked = arithmetic_consistency(text)
    arithmetic = good / checked if checked else no_equations
    excess = max(0.0, repeated_share(text) - REPEAT_TOLERANCE) / (1 - REPEAT_TOLERANCE)
    return structure_signal(text), arithmetic, 1.0 - excess


class MathHeuristic(FourPartHeuristic):
    """structure * s + arithmetic * a + confidence * c + nondegenerate * n, each signal in
    [0, 1]; range [0, sum of weights] ([0, 3] by default). `no_equations` is the arithmetic
    signal of a text with no statement to check (neutral by default)."""

    name = "math-heuristic"

    def __init__(
        self,
        structure: float = 1.0,
        arithmetic: float = 1.0,
        confidence: float = 0.5,
        nondegenerate: float = 0.5,
        no_equations: float = 0.5,
    ):
        super().__init__(structure, arithmetic, confidence, nondegenerate)
        self.no_equations = check_weight("no_equations", no_equations)
        if self.no_equations > 1:
            raise ValueError(f"no_equations must be in [0, 1], got {no_equations}")

    def signals(self, candidate: Candidate) -> tuple[float, float, float, float]:
        """(structure, arithmetic, confidence, nondegenerate) of one candidate."""
        s, a, n = text_signals(candidate.completion, self.no_equations)
        c = geometric_mean_prob(candidate.token_logprobs) if candidate.completion.strip() else 0.0
        return s, a, c, n
