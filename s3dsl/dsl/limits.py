"""Hard limits on what a strategy file may ask for, so that every input costs bounded time and
memory. Each limit is named in the error a file gets when it goes past it."""

from __future__ import annotations

from s3dsl.errors import S3DSLError
from s3dsl.spans import Span

MAX_FILE_CHARS = 200_000  # a strategy file (the built-ins are under 3,000)
MAX_NESTING = 50  # brackets, parentheses, `not`s, operators: levels of one value or expression
MAX_ALIAS_NODES = 10_000  # YAML nodes that alias references may add (no "billion laughs")
MAX_STAGES = 256  # stages in one pipeline (init, step or final)
MAX_STEPS = 16_384  # decode.steps
MAX_GEN_LENGTH = 16_384  # decode.gen_length (the model's own maximum is checked before a run)
MAX_STAGE_RUNS = 32_768  # steps x step stages: the work the compiler walks through
MAX_MAGNITUDE = 1e6  # real-valued settings (scales, weights, temperatures); log-weights stay finite
MAX_INT = 2**63 - 1  # integers beyond this fit no setting (and not SQLite's seed column)
MAX_NUMBER_CHARS = 40  # a number literal longer than this is refused before it is converted


def number_literal(text: str, span: Span | None = None) -> int | float:
    """A decimal number as written (`12`, `0.5`, `1e-3`): refused when too long to convert safely
    (Python refuses integers over 4,300 digits) or when an integer is out of every setting's range.
    """
    if len(text) > MAX_NUMBER_CHARS:
        raise S3DSLError(
            f"number {text[:12]}... is too long ({len(text):,} characters; the limit is "
            f"{MAX_NUMBER_CHARS})",
            span,
            "no setting takes a number this large or this precise",
        )
    body = text.lstrip("+")
    value: int | float = int(body) if body.lstrip("-").isdigit() else float(body)
    return check_int_range(value, text, span) if isinstance(value, int) else value


def check_int_range(value: int, text: str, span: Span | None) -> int:
    """Integers beyond 64 bits fit no setting, overflow floats and SQLite: refuse them here."""
    if abs(value) > MAX_INT:
        shown = text if len(text) <= 24 else f"{text[:12]}...({len(text)} characters)"
        raise S3DSLError(f"integer {shown} is too large (the limit is 2**63-1)", span)
    return value
