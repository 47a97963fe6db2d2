"""GSM8K from the user's file: `question`, and `answer` = worked solution ending in `#### N`."""

from __future__ import annotations

import re

from s3dsl.errors import S3DSLError
from s3dsl.tasks.answers import final_number
from s3dsl.tasks.data import normalized_match
from s3dsl.tasks.packs import Pack, require_text
from s3dsl.tasks.records import Record

_GOLD = re.compile(r"####\s*(.+?)\s*$", re.DOTALL)

TEMPLATE = (
    "{question}\n"
    "Solve it step by step. End with the final answer as a number in \\boxed{{}}."
)


def gold_number(solution: str) -> str | None:
    """The number after `####`, thousands commas dropped."""
    m = _GOLD.search(solution)
    return m.group(1).replace(",", "").replace("$", "").strip() if m else None


def prepare(record: Record) -> tuple[dict[str, str], str]:
    question = require_text(record, "question")
    solution = require_text(record, "answer")
    gold = gold_number(solution)
    if gold is None:
        raise S3DSLError(f"{record.where}: 'answer' has no '#### N' final answer", None,
                         "GSM8K answers end with '#### <number>'")
    return {"question": question.strip()}, gold


def match(prediction: str | None, gold: str) -> bool:
    """Numbers compare by value (`18.00` == `18`)."""
    return prediction is not None and normalized_match(prediction.rstrip("."), gold)


GSM8K = Pack(
    name="gsm8k",
    description="grade-school math word problems; numeric answer, exact by value",
    fields=("question", "answer"),
    template=TEMPLATE,
    prepare=prepare,
    extract=final_number,
    match=match,
    gen_length=256,
    detect=lambda f: "question" in f and "####" in str(f.get("answer", "")),
)
