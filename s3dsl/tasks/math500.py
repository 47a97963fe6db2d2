r"""MATH-500 (or any MATH-style file): `problem`, `answer` (else the `\boxed{}` of `solution`);
scored by mathematical equivalence through math-verify."""

from __future__ import annotations

from s3dsl.errors import S3DSLError
from s3dsl.tasks.answers import final_answer
from s3dsl.tasks.data import extract_boxed
from s3dsl.tasks.mathcheck import math_equal
from s3dsl.tasks.packs import Pack, require_text
from s3dsl.tasks.records import Record

TEMPLATE = (
    "{problem}\n"
    "Please reason step by step, and put your final answer within \\boxed{{}}."
)


def prepare(record: Record) -> tuple[dict[str, str], str]:
    problem = require_text(record, "problem")
    fields = record.fields
    if fields.get("answer") not in (None, ""):
        gold = require_text(record, "answer")
    elif fields.get("solution") not in (None, ""):
        gold = extract_boxed(require_text(record, "solution")) or ""
    else:
        raise S3DSLError(f"{record.where}: missing field 'answer' (or a 'solution')")
    if not gold.strip():
        raise S3DSLError(f"{record.where}: no gold answer", None,
                         "give 'answer', or a 'solution' with \\boxed{...}")
    return {"problem": problem.strip()}, gold.strip()


MATH500 = Pack(
    name="math500",
    description="competition math (MATH-500); \\boxed{} answer, equivalence by math-verify",
    fields=("problem",),
    template=TEMPLATE,
    prepare=prepare,
    extract=final_answer,
    match=math_equal,
    gen_length=512,
    detect=lambda f: "problem" in f and ("answer" in f or "solution" in f),
    reads="problem, answer (or solution)",
)
