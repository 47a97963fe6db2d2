"""A task read from a JSONL file of `{id, prompt, answer}` lines (`s3dsl run --data FILE.jsonl`).

Every line is checked when the file is loaded, so a bad line stops the run before any compute is
spent, with `FILE:LINE` and what is wrong. Nothing is skipped silently; only whitespace-only lines
(which hold no record) are ignored. A data file has no train/test split: `problems` returns every
line whatever `split` says, so tune on a different file than the one you report on.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from s3dsl.errors import S3DSLError, did_you_mean
from s3dsl.tasks.base import Problem

Extractor = Callable[[str], "str | None"]

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")
_CHOICE_AFTER_ANSWER = re.compile(r"answer\s*(?:is|:)?\s*\(?\s*([A-Ea-e])\b", re.IGNORECASE)
_CHOICE = re.compile(r"(?<![A-Za-z])\(?([A-E])\)?(?![A-Za-z])")


def extract_last_number(text: str) -> str | None:
    """The last number in the text (thousands commas dropped)."""
    found = _NUMBER.findall(text)
    return found[-1].replace(",", "") if found else None


def extract_boxed(text: str) -> str | None:
    r"""The content of the last `\boxed{...}`, nested braces balanced; None when unclosed."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 0, start + len("\\boxed")
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j].strip()
    return None


def extract_hash(text: str) -> str | None:
    """The text after the last `#` (the `#answer` convention of the shipped arith task)."""
    if "#" not in text:
        return None
    tail = text.rsplit("#", 1)[1].strip()
    return tail or None


def extract_choice(text: str) -> str | None:
    """A multiple-choice letter A-E: the one after 'answer (is|:)' if written, else the last
    standalone capital A-E."""
    m = _CHOICE_AFTER_ANSWER.findall(text)
    if m:
        return m[-1].upper()
    letters = _CHOICE.findall(text)
    return letters[-1] if letters else None


EXTRACTORS: dict[str, Extractor] = {
    "hash": extract_hash,
    "last-number": extract_last_number,
    "boxed": extract_boxed,
    "choice": extract_choice,
}
DEFAULT_EXTRACTOR = "hash"


def get_extractor(name: str | None) -> Extractor:
    key = (name or DEFAULT_EXTRACTOR).strip().lower().replace("_", "-")
    if key not in EXTRACTORS:
        raise S3DSLError(f"unknown answer extractor '{name}'", hint=did_you_mean(key, EXTRACTORS))
    return EXTRACTORS[key]


def _as_number(text: str) -> Fraction | None:
    try:
        return Fraction(text.replace(",", ""))
    except (ValueError, ZeroDivisionError):
        return None


def normalized_match(prediction: str | None, answer: str) -> bool:
    """Exact match after stripping and collapsing whitespace; numbers compare by value
    (`2.50` == `2.5` == `5/2`)."""
    if prediction is None:
        return False
    a, b = " ".join(prediction.split()), " ".join(answer.split())
    if a == b:
        return True
    x, y = _as_number(a), _as_number(b)
    return x is not None and y is not None and x == y


@dataclass
class DataTask:
    """Problems from a JSONL file; split is ignored (a file is one split)."""

    name: str
    path: Path
    extractor: str
    items: list[Problem] = field(repr=False)
    gen_length: int = 64
    default_model: str = "arith"
    default_verifier: str = "confidence"

    def problems(self, split: str = "test", limit: int | None = None) -> list[Problem]:
        """Every line of the file, in file order (`split` is ignored: a file is one split)."""
        return list(self.items[:limit])

    def extract_answer(self, completion: str) -> str | None:
        return EXTRACTORS[self.extractor](completion)

    def is_correct(self, prediction: str | None, answer: str) -> bool:
        return normalized_match(prediction, answer)


def _field_error(path: Path, line: int, message: str, hint: str | None = None) -> S3DSLError:
    return S3DSLError(f"{path}:{line}: {message}", None, hint)


def jsonl_lines(path: Path) -> list[str]:
    """The lines of a JSONL file. They end at \n only: U+2028, U+0085 and friends are legal
    inside JSON strings (`splitlines()` would cut records apart). A byte that is not UTF-8 is
    reported at its line and column."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise S3DSLError(f"cannot read data file {path}: {e.strerror or e}") from None
    try:
        return [line.removesuffix("\r") for line in data.decode("utf-8-sig").split("\n")]
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        start = data.rfind(b"\n", 0, e.start) + 1
        column = len(data[start : e.start].decode("utf-8-sig", "replace")) + 1
        raise S3DSLError(f"{path}:{line}:{column}: not UTF-8 text ({e.reason})") from None


def json_line(path: Path, line: int, text: str) -> object:
    """One line's JSON value; bad JSON and nesting too deep for the decoder are line errors."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise _field_error(path, line, f"invalid JSON ({e.msg} at column {e.colno})") from None
    except RecursionError:  # the decoder gives up cleanly on nesting past the recursion limit
        raise _field_error(path, line, "JSON nested too deeply",
                           "a record is a flat object of fields") from None


def _parse_line(path: Path, line: int, text: str) -> Problem:
    record = json_line(path, line, text)
    if not isinstance(record, dict):
        raise _field_error(path, line, f"expected a JSON object, got {type(record).__name__}")
    for key in ("prompt", "answer"):
        if key not in record:
            raise _field_error(path, line, f"missing field '{key}'",
                               "every line needs 'prompt' and 'answer' ('id' is optional)")
    prompt, answer, pid = record["prompt"], record["answer"], record.get("id", line)
    if not isinstance(prompt, str):
        raise _field_error(path, line, f"'prompt' must be a string, got {type(prompt).__name__}")
    if isinstance(answer, bool) or not isinstance(answer, (str, int, float)):
        raise _field_error(path, line,
                           f"'answer' must be a string or number, got {type(answer).__name__}")
    if isinstance(pid, bool) or not isinstance(pid, (str, int)):
        raise _field_error(path, line,
                           f"'id' must be a string or integer, got {type(pid).__name__}")
    target = record.get("target", "")
    if not isinstance(target, str):
        raise _field_error(path, line, f"'target' must be a string, got {type(target).__name__}")
    meta = {k: v for k, v in record.items() if k not in ("id", "prompt", "answer", "target")}
    return Problem(id=str(pid), prompt=prompt, answer=str(answer), target=target, meta=meta)


def load_data_task(path: Path, extractor: str | None = None) -> DataTask:
    """Read and check a JSONL file; the extractor (default `hash`) finds each answer."""
    path = Path(path)
    get_extractor(extractor)
    if not path.is_file():
        raise S3DSLError(f"no such data file: {path}")
    lines = jsonl_lines(path)
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        problem = _parse_line(path, number, text)
        if problem.id in seen:
            raise _field_error(path, number, f"duplicate id '{problem.id}'",
                               f"first used on line {seen[problem.id]}")
        seen[problem.id] = number
        problems.append(problem)
    if not problems:
        raise S3DSLError(f"{path}: no problems (the file is empty)")
    key = (extractor or DEFAULT_EXTRACTOR).strip().lower().replace("_", "-")
    return DataTask(name=path.stem, path=path, extractor=key, items=problems)
