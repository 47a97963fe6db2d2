r"""Where a free-text completion states its final answer: `\boxed{...}`, "The answer is ...",
`#### ...`. Shared by the math task packs and the `math-heuristic` verifier's structure signal.
"""

from __future__ import annotations

import re

from s3dsl.tasks.data import extract_boxed, extract_last_number

# "The answer is 42." / "Final answer: $\frac{1}{2}$" / "#### 42" (up to the end of the line)
_STATED = re.compile(
    r"(?:(?:final\s+)?answer\s*(?:is|:)|####)\s*[:=]?\s*([^\n]+)", re.IGNORECASE
)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")


def stated_answer(text: str) -> str | None:
    """The text after the last "answer is" / "answer:" / "####", up to the end of its line and
    without a trailing period; None when the completion states no answer that way."""
    found = _STATED.findall(text)
    if not found:
        return None
    answer = found[-1].strip().rstrip(".").strip()
    boxed = extract_boxed(answer)
    return (boxed if boxed else answer) or None


def final_answer(text: str) -> str | None:
    r"""The last `\boxed{}`, else a stated answer, else None."""
    boxed = extract_boxed(text)
    if boxed:
        return boxed
    return stated_answer(text)


def final_number(text: str) -> str | None:
    """A number for GSM8K-style answers: the number in the final answer, else the last number in
    the text (thousands commas, `$` and a trailing period dropped)."""
    answer = final_answer(text)
    if answer is not None:
        numbers = _NUMBER.findall(answer.replace("\\$", "").replace("$", ""))
        if numbers:
            return numbers[-1].replace(",", "")
    return extract_last_number(text)
