"""Task packs: benchmarks whose problems come from the user's own files (`--data`).

A pack knows a benchmark's record fields, its prompt template, how to find the final answer in a
completion and how to score it. `s3dsl run s3 --task math500 --data math500.jsonl` names the pack;
with `--data` alone the pack is detected from the first record's fields (`prompt`/`answer` lines
stay the plain data task of `s3dsl.tasks.data`). Nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from s3dsl.errors import S3DSLError, did_you_mean
from s3dsl.tasks.base import Problem
from s3dsl.tasks.records import WHOLE_FILE, Record, read_records

ID_FIELDS = ("id", "unique_id", "problem_id", "idx")
# Prompt and gold material: not copied into a problem's meta (meta is for subject, level, ...).
CONTENT_FIELDS = ("question", "problem", "answer", "solution", "choices", "answerKey")
# What a user of a pack needs to give: the pack reads their data and no model ships for it.
NEEDS_DATA_HINT = "pass --data FILE: JSONL, parquet, or a folder written by datasets' save_to_disk"


@dataclass(frozen=True)
class Pack:
    """A benchmark's file format and scoring.

    `prepare(record)` checks one record and returns (template fields, gold answer), raising
    `S3DSLError` naming `record.where`; `template` is `str.format`-ed with those fields.
    """

    name: str
    description: str
    fields: tuple[str, ...]  # what a record must have; also how the pack is detected
    template: str
    prepare: Callable[[Record], tuple[dict[str, str], str]]
    extract: Callable[[str], str | None]
    match: Callable[[str | None, str], bool]
    gen_length: int
    default_verifier: str = "math-heuristic"
    detect: Callable[[dict], bool] | None = None
    reads: str = ""  # the record fields, as `s3dsl list tasks` shows them (default: `fields`)

    def matches(self, fields: dict) -> bool:
        return self.detect(fields) if self.detect else all(f in fields for f in self.fields)


def require_text(record: Record, key: str) -> str:
    """A required string field (numbers are accepted and written as text)."""
    if key not in record.fields or record.fields[key] is None:
        present = ", ".join(sorted(record.fields)) or "none"
        raise S3DSLError(f"{record.where}: missing field '{key}'", None, f"fields: {present}")
    value = record.fields[key]
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise S3DSLError(f"{record.where}: '{key}' must be text, got {type(value).__name__}")
    return str(value)


def record_id(record: Record, index: int) -> str:
    for key in ID_FIELDS:
        value = record.fields.get(key)
        if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value):
            return str(value)
    return str(index)


@dataclass
class PackTask:
    """A pack over one file's records: the `Task` the runtime sees."""

    pack: Pack
    path: Path | None
    splits: dict[str, list[Problem]] = field(repr=False)
    template: str = ""
    name: str = ""
    gen_length: int = 0
    default_verifier: str = ""
    extractor: str = ""  # part of the results store's key

    def __post_init__(self) -> None:
        stem = self.path.stem if self.path is not None else "no data"
        self.name = self.name or f"{self.pack.name}:{stem}"
        self.gen_length = self.gen_length or self.pack.gen_length
        self.default_verifier = self.default_verifier or self.pack.default_verifier
        self.extractor = self.extractor or f"{self.pack.name}-pack"

    @property
    def default_model(self) -> str:
        """No model ships for a real benchmark: asked for one (`--model` omitted), the user is
        told how to point at a checkpoint."""
        raise S3DSLError(f"task '{self.pack.name}' needs --model", None,
                         "a checkpoint folder, e.g. --model ~/models/LLaDA-8B-Instruct "
                         "(s3dsl list models)")

    def problems(self, split: str = "test", limit: int | None = None) -> list[Problem]:
        """A file is one split (whatever `split` says); a DatasetDict folder has named ones."""
        if self.path is None:
            raise S3DSLError(f"task '{self.pack.name}' reads your data file", None,
                             NEEDS_DATA_HINT)
        if WHOLE_FILE in self.splits:
            return list(self.splits[WHOLE_FILE][:limit])
        if split not in self.splits:
            raise S3DSLError(f"{self.path}: no split '{split}'", None,
                             did_you_mean(split, self.splits) or "splits: "
                             + ", ".join(self.splits) + " (--split NAME)")
        return list(self.splits[split][:limit])

    def extract_answer(self, completion: str) -> str | None:
        return self.pack.extract(completion)

    def is_correct(self, prediction: str | None, answer: str) -> bool:
        return bool(self.pack.match(prediction, answer))


def _problems(pack: Pack, records: list[Record], template: str) -> list[Problem]:
    out: list[Problem] = []
    seen: dict[str, str] = {}
    for index, record in enumerate(records, start=1):
        values, gold = pack.prepare(record)
        pid = record_id(record, index)
        if pid in seen:
            raise S3DSLError(f"{record.where}: duplicate id '{pid}'", None,
                             f"first used at {seen[pid]}")
        seen[pid] = record.where
        meta = {k: v for k, v in record.fields.items() if isinstance(v, (str, int, float, bool))
                and k not in pack.fields and k not in ID_FIELDS and k not in CONTENT_FIELDS}
        out.append(Problem(id=pid, prompt=template.format(**values), answer=gold, meta=meta))
    return out


def packs() -> dict[str, Pack]:
    """Every pack by name (imported here so each pack module stays independent)."""
    from s3dsl.tasks.arc import ARC_CHALLENGE
    from s3dsl.tasks.gsm8k import GSM8K
    from s3dsl.tasks.math500 import MATH500

    return {p.name: p for p in (GSM8K, MATH500, ARC_CHALLENGE)}


def get_pack(name: str) -> Pack:
    key = name.strip().lower().replace("-", "_")
    found = packs()
    if key not in found:
        raise S3DSLError(f"unknown task pack '{name}'", None, did_you_mean(key, found))
    return found[key]


def detect_pack(fields: dict) -> Pack | None:
    for pack in packs().values():
        if pack.matches(fields):
            return pack
    return None


def empty_pack_task(name: str) -> PackTask:
    """A pack without data: enough to compile a strategy for it (gen_length, verifier)."""
    return PackTask(get_pack(name), None, {})


def load_pack_task(path: Path, name: str | None = None, template: str | None = None) -> PackTask:
    """Read a file for the named pack, or for the pack its first record's fields point to."""
    path = Path(path).expanduser()
    splits = read_records(path)
    first = next((rs[0] for rs in splits.values() if rs), None)
    if first is None:
        raise S3DSLError(f"{path}: no records")
    if name is not None:
        pack = get_pack(name)
    else:
        pack = detect_pack(first.fields)
        if pack is None:
            present = ", ".join(sorted(first.fields)) or "none"
            raise S3DSLError(
                f"{first.where}: cannot tell which task these records are (fields: {present})",
                None, "name it with --task gsm8k|math500|arc_challenge, or write "
                "{id, prompt, answer} lines")
    text = template or pack.template
    problems = {split: _problems(pack, records, text) for split, records in splits.items()}
    return PackTask(pack, path, problems, template=text)


def is_plain_data(fields: dict) -> bool:
    """`{id, prompt, answer}` records: the plain data task, not a pack."""
    return "prompt" in fields and "answer" in fields


def load_task_file(path: Path, task: str | None = None, extractor: str | None = None):
    """What `--data FILE [--task PACK] [--extractor NAME]` runs on.

    `--task` names a pack; without it `{prompt, answer}` JSONL lines are the plain data task and
    other records are matched to a pack by their fields. `--extractor` replaces a pack's answer
    extraction (its scoring stays).
    """
    from s3dsl.tasks.data import get_extractor, load_data_task
    from s3dsl.tasks.registry import TASKS

    if task in TASKS:  # a generated task's name with --data: the file's lines are the problems
        task = None
    path = Path(path).expanduser()
    if task is None and path.is_file() and path.suffix.lower() not in (".parquet", ".pq"):
        first = _first_jsonl_object(path)
        if first is not None and is_plain_data(first):
            return load_data_task(path, extractor)
    loaded = load_pack_task(path, task)
    if extractor is not None:
        custom = get_extractor(extractor)
        key = extractor.strip().lower().replace("_", "-")
        loaded.pack = replace(loaded.pack, extract=custom)
        loaded.extractor = f"{loaded.pack.name}-pack:{key}"
    return loaded


def _first_jsonl_object(path: Path) -> dict | None:
    import json

    try:
        with path.open(encoding="utf-8-sig") as f:
            for line in f:
                if line.strip():
                    value = json.loads(line)
                    return value if isinstance(value, dict) else None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError, OSError):
        return None  # the full reader reports it with FILE:LINE
    return None
