"""ARC-Challenge from the user's file: `question`, `choices` {text, label}, `answerKey`.

Choices are shown as letters A, B, C, ... in file order whatever their labels (some ARC items
label them 1-4); the gold answer is the letter of `answerKey`'s choice.
"""

from __future__ import annotations

import string

from s3dsl.errors import S3DSLError
from s3dsl.tasks.data import extract_choice
from s3dsl.tasks.packs import Pack, require_text
from s3dsl.tasks.records import Record

TEMPLATE = (
    "{question}\n{options}\n"
    "Think it through, then finish with \"The answer is X\" where X is the letter of the "
    "correct choice."
)
LETTERS = string.ascii_uppercase[:5]  # what `extract_choice` reads


def prepare(record: Record) -> tuple[dict[str, str], str]:
    question = require_text(record, "question")
    key = require_text(record, "answerKey").strip()
    choices = record.fields.get("choices")
    if not isinstance(choices, dict) or not isinstance(choices.get("text"), list):
        raise S3DSLError(f"{record.where}: 'choices' must be {{text: [...], label: [...]}}")
    texts = [str(t) for t in choices["text"]]
    labels = [str(lab) for lab in choices.get("label") or LETTERS[: len(texts)]]
    if not 2 <= len(texts) <= len(LETTERS) or len(labels) != len(texts):
        raise S3DSLError(f"{record.where}: need 2-{len(LETTERS)} choices with one label each")
    if key not in labels:
        raise S3DSLError(f"{record.where}: answerKey '{key}' is not a choice label", None,
                         "labels: " + ", ".join(labels))
    options = "\n".join(f"{LETTERS[i]}. {t}" for i, t in enumerate(texts))
    return {"question": question.strip(), "options": options}, LETTERS[labels.index(key)]


def match(prediction: str | None, gold: str) -> bool:
    return prediction is not None and prediction.strip().upper() == gold


ARC_CHALLENGE = Pack(
    name="arc_challenge",
    description="grade-school science, multiple choice; the letter after 'The answer is'",
    fields=("question", "choices", "answerKey"),
    template=TEMPLATE,
    prepare=prepare,
    extract=extract_choice,
    match=match,
    gen_length=128,
)
