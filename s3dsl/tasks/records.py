"""Records from the files users already have: JSONL, parquet, or a `datasets` folder written by
`Dataset.save_to_disk` / `DatasetDict.save_to_disk`. Nothing is ever downloaded.

Every record carries where it came from (`FILE:LINE` for JSONL, `FILE row N` otherwise), so a bad
record is reported where the user can find it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from s3dsl.errors import S3DSLError

WHOLE_FILE = ""  # the split name of a file that has no splits (JSONL, parquet, one Dataset)
PARQUET_SUFFIXES = (".parquet", ".pq")


@dataclass(frozen=True)
class Record:
    where: str  # `file:line` or `file row N`, for error messages
    fields: dict[str, Any]


def _missing_extra(what: str, module: str) -> S3DSLError:
    return S3DSLError(f"reading {what} needs the '{module}' package",
                      hint="pip install 's3dsl[data]'")


def read_jsonl(path: Path) -> list[Record]:
    """One JSON object per non-blank line; a bad line stops the load with FILE:LINE."""
    from s3dsl.tasks.data import json_line, jsonl_lines

    out: list[Record] = []
    for number, text in enumerate(jsonl_lines(path), start=1):
        if not text.strip():
            continue
        value = json_line(path, number, text)
        if not isinstance(value, dict):
            raise S3DSLError(f"{path}:{number}: expected a JSON object, got "
                             f"{type(value).__name__}")
        out.append(Record(f"{path}:{number}", value))
    return out


def _rows(rows: list[dict[str, Any]], label: str) -> list[Record]:
    return [Record(f"{label} row {i + 1}", dict(r)) for i, r in enumerate(rows)]


def read_parquet(path: Path) -> list[Record]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise _missing_extra("parquet files", "pyarrow") from None
    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises its own error types for a broken file
        raise S3DSLError(f"{path}: not a readable parquet file ({e})") from None
    return _rows(table.to_pylist(), str(path))


def read_saved_dataset(path: Path) -> dict[str, list[Record]]:
    """A folder from `save_to_disk`: one Dataset (one split) or a DatasetDict (its splits)."""
    try:
        import datasets
    except ImportError:
        raise _missing_extra("a saved datasets folder", "datasets") from None
    try:
        loaded = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as e:
        raise S3DSLError(f"{path}: not a folder written by datasets' save_to_disk ({e})",
                         hint="or pass a .jsonl or .parquet file") from None
    if isinstance(loaded, datasets.DatasetDict):
        return {name: _rows(ds.to_list(), f"{path}[{name}]") for name, ds in loaded.items()}
    return {WHOLE_FILE: _rows(loaded.to_list(), str(path))}


def read_records(path: Path) -> dict[str, list[Record]]:
    """Split name -> records. A file is one split (`WHOLE_FILE`); a DatasetDict folder has its
    own split names."""
    path = Path(path).expanduser()
    if path.is_dir():
        return read_saved_dataset(path)
    if not path.is_file():
        raise S3DSLError(f"no such data file: {path}")
    if path.suffix.lower() in PARQUET_SUFFIXES:
        records = read_parquet(path)
    else:
        records = read_jsonl(path)
    if not records:
        raise S3DSLError(f"{path}: no records (the file is empty)")
    return {WHOLE_FILE: records}
