"""Read a strategy from a file or a string, choosing the YAML or the text form."""

from __future__ import annotations

import re
from pathlib import Path

from s3dsl.dsl.ast import Strategy
from s3dsl.dsl.limits import MAX_FILE_CHARS
from s3dsl.dsl.text import parse_text_strategy
from s3dsl.dsl.yaml_form import parse_yaml_strategy
from s3dsl.errors import S3DSLError
from s3dsl.spans import Span

YAML_SUFFIXES = (".yaml", ".yml")
TEXT_SUFFIXES = (".s3",)
_TEXT_START = re.compile(
    r"(?:strategy|param|decode|verifier)[ \t]|(?:init|step|final)[ \t]*:(?![ \t]*$)"
)


def detect_form(text: str, filename: str) -> str:
    """'yaml' or 'text': by extension, else by the first significant line (for `-` and strings).

    Text-form files start with a statement keyword (`strategy s3`, `param x = 1`, `step: ...`);
    in YAML, `step:` only appears nested under `program:`, so the two cannot be confused.
    """
    suffix = Path(filename).suffix.lower()
    if suffix in YAML_SUFFIXES:
        return "yaml"
    if suffix in TEXT_SUFFIXES:
        return "text"
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            return "text" if _TEXT_START.match(stripped) else "yaml"
    return "yaml"


def parse_strategy(text: str, filename: str = "<string>", form: str | None = None) -> Strategy:
    """Parse a strategy given as text; `form` ('yaml' or 'text') overrides detection."""
    if len(text) > MAX_FILE_CHARS:
        _too_long(len(text), filename)
    chosen = form or detect_form(text, filename)
    if chosen == "yaml":
        return parse_yaml_strategy(text, filename)
    if chosen == "text":
        return parse_text_strategy(text, filename)
    raise ValueError(f"unknown strategy form {form!r}")


def load_strategy(path: str | Path) -> Strategy:
    """Read and parse a `.yaml`/`.yml` (YAML form) or `.s3` (text form) strategy file."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in YAML_SUFFIXES + TEXT_SUFFIXES:
        raise S3DSLError(
            f"unknown strategy file type '{suffix or path.name}'",
            Span(str(path), 1, 1),
            "strategy files end in .yaml, .yml (YAML form) or .s3 (text form)",
        )
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise S3DSLError(f"no such strategy file: {path}") from None
    except OSError as exc:
        raise S3DSLError(f"cannot read strategy file {path}: {exc.strerror or exc}") from None
    return parse_strategy(decode_source(data, str(path)), str(path))


def decode_source(data: bytes, filename: str) -> str:
    """UTF-8 text (a BOM tolerated); a bad byte is reported at its line and column."""
    if len(data) > 4 * MAX_FILE_CHARS:  # refuse before decoding: no character is over 4 bytes
        _too_long(len(data), filename)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        start = exc.start
        line_start = data.rfind(b"\n", 0, start) + 1
        line = data.count(b"\n", 0, start) + 1
        column = len(data[line_start:start].decode("utf-8-sig", "replace")) + 1
        raise S3DSLError(
            f"the file is not UTF-8 text (byte 0x{data[start]:02x} cannot start a character)",
            Span(filename, line, column),
            "save the file as UTF-8",
        ) from None


def _too_long(size: int, filename: str) -> None:
    raise S3DSLError(
        f"strategy file too long ({size:,} characters; the limit is {MAX_FILE_CHARS:,})",
        Span(filename, 1, 1),
        "a strategy is a few lines: generate long pipelines with params, not text",
    )
