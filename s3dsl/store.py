"""The results store: an embedded SQLite database of runs and per-problem results.

A result is keyed by its *configuration* (strategy content hash, resolved params, decode config,
verifiers, task, model fingerprint, seed, opt level) and by its problem (id, prompt, answer).
Randomness is per problem (`rng.root_key(seed, problem.id)`) and does not depend on batch layout,
so a stored result is exactly what recomputing it would give: re-running skips finished problems,
a killed run loses only its batch in flight, and a run over more problems (a larger `--limit`)
reuses what a smaller one computed. A *run* is a configuration on an ordered list of problems.
WAL mode lets `s3dsl runs` read while a run writes; each batch is one transaction.

A store the user cannot write (a shared results file, chmod 444, a read-only folder or medium)
is opened read-only and served: `report`, `runs`, and `run` / `compare` whose results are all
stored work from it. What would need a new result refuses before computing anything
(`require_writable`), with the hint to pass another --db or --no-db: a run computed without a
place to keep it would be lost, and a read-only file is usually someone else's to keep.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from s3dsl.errors import S3DSLError
from s3dsl.runtime.results import ProblemResult
from s3dsl.runtime.scoring import ParticleOutcome
from s3dsl.tasks.base import Problem

DEFAULT_DB = Path("s3dsl-runs.db")
MEMORY = ":memory:"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    config_key TEXT NOT NULL,
    strategy TEXT NOT NULL,
    task TEXT NOT NULL,
    model TEXT NOT NULL,
    seed INTEGER NOT NULL,
    opt_level INTEGER NOT NULL,
    data_hash TEXT NOT NULL,
    config TEXT NOT NULL,
    problem_keys TEXT NOT NULL,
    meta TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS results (
    config_key TEXT NOT NULL,
    problem_key TEXT NOT NULL,
    problem_id TEXT NOT NULL,
    result TEXT NOT NULL,
    particle_correct TEXT NOT NULL,
    wall_s REAL NOT NULL,
    peak_mb REAL NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (config_key, problem_key)
);
"""


_COLUMNS = {
    "runs": ["id", "key", "config_key", "strategy", "task", "model", "seed", "opt_level",
             "data_hash", "config", "problem_keys", "meta", "created"],
    "results": ["config_key", "problem_key", "problem_id", "result", "particle_correct", "wall_s",
                "peak_mb", "created"],
}


def _writable(path: Path) -> bool:
    """Whether SQLite can write the database: the file and (WAL mode writes -wal and -shm files
    next to it) its folder."""
    import os

    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)


def _check_writable(path: Path, hint: str) -> None:
    """SQLite opens a read-only file without complaint and fails at the first write (after the
    run's compute); say so before. A new database needs a folder it can be created in."""
    import os

    if path.exists():
        return  # an existing one that cannot be written is opened read-only (Store)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError:
        pass
    if not os.access(path.parent, os.W_OK):
        raise S3DSLError(f"the folder of the results database {path} is read-only", hint=hint)


def _read_only_uri(path: Path, immutable: bool) -> str:
    """An SQLite URI that never writes: mode=ro; immutable=1 also skips the -shm file that
    reading a WAL database needs when the folder is read-only (the file must not change
    meanwhile: used only when mode=ro cannot open it)."""
    from urllib.parse import quote

    return f"file:{quote(str(path.resolve()))}?mode=ro" + ("&immutable=1" if immutable else "")


def digest(obj: Any) -> str:
    """A stable hex digest of JSON-able data (sorted keys)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def problem_key(p: Problem) -> str:
    return digest([p.id, p.prompt, p.answer])[:32]


def data_hash(problems: Sequence[Problem]) -> str:
    """The hash of the problems' ids, prompts and answers, in order."""
    return digest([problem_key(p) for p in problems])[:32]


@dataclass
class StoredResult:
    """One finished problem: its result, which particles were right, and what it cost."""

    result: ProblemResult
    particle_correct: list[bool]
    wall_s: float
    peak_mb: float


@dataclass
class RunRecord:
    id: int
    key: str
    config_key: str
    strategy: str
    task: str
    model: str
    seed: int
    opt_level: int
    data_hash: str
    config: dict
    problem_keys: list[str]
    meta: dict = field(default_factory=dict)
    created: float = 0.0

    @property
    def short(self) -> str:
        return self.key[:8]


def result_from_json(d: dict) -> ProblemResult:
    particles = [ParticleOutcome(**p) for p in d.get("particles", [])]
    fields = {k: v for k, v in d.items() if k != "particles"}
    return ProblemResult(**fields, particles=particles)


class Store:
    """Runs and results in one SQLite file (or in memory, for `--no-db`). `read_only`: None
    decides from the file's permissions; True opens it read-only whatever they are."""

    def __init__(self, path: Path | str = DEFAULT_DB, read_only: bool | None = None):
        self.path = str(path)
        hint = "pass another --db PATH, or --no-db"
        file = Path(self.path)
        if read_only is None:
            read_only = self.path != MEMORY and file.exists() and not _writable(file)
        self.read_only = read_only
        try:
            if read_only:
                self.db = self._connect_read_only(file)
            else:
                if self.path != MEMORY:
                    _check_writable(file, hint)
                self.db = sqlite3.connect(self.path, timeout=30.0)
                _while_locked(self._set_up)
            self._check_schema(hint)
        except (sqlite3.DatabaseError, OSError) as e:
            raise S3DSLError(f"cannot open the results database {self.path}: {e}",
                             hint=hint) from None

    def _connect_read_only(self, file: Path) -> sqlite3.Connection:
        if not file.is_file():
            raise S3DSLError(f"no results database at {file} to read", hint="s3dsl run and "
                             "s3dsl compare store runs; pass --db PATH of one")
        try:
            db = sqlite3.connect(_read_only_uri(file, False), uri=True, timeout=30.0)
            db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            return db
        except sqlite3.OperationalError:  # a WAL file whose -shm cannot be made here
            db = sqlite3.connect(_read_only_uri(file, True), uri=True, timeout=30.0)
            db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            return db

    def require_writable(self, why: str) -> None:
        """Refuse, before any compute, what would need a new result in a read-only store."""
        if self.read_only:
            raise S3DSLError(f"the results database {self.path} is read-only and {why}",
                             hint="pass another --db PATH (a copy of it keeps what it holds), "
                             "or --no-db")

    def _set_up(self) -> None:
        if self.path != MEMORY:
            self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)

    def _check_schema(self, hint: str) -> None:
        """A file of the same name made by another program is refused, not written into."""
        for table, columns in _COLUMNS.items():
            found = [row[1] for row in self.db.execute(f"PRAGMA table_info({table})")]
            if found != columns:
                raise S3DSLError(
                    f"{self.path} is not an s3dsl results database (its table '{table}' has "
                    f"columns {', '.join(found)})", hint=hint)

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """One transaction; a write the database refuses (locked too long, read-only, full disk)
        is the user's error with the path, not a crash."""
        try:
            with self.db:
                yield
        except sqlite3.OperationalError as e:
            raise S3DSLError(f"cannot write the results database {self.path}: {e}",
                             hint="pass another --db PATH, or --no-db") from None

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- runs ---------------------------------------------------------------------------------
    def open_run(self, config: dict, problems: Sequence[Problem], meta: dict) -> RunRecord:
        """The run of this configuration on these problems, created if new (meta refreshed)."""
        config_key = digest(config)[:32]
        dhash = data_hash(problems)
        key = digest([config_key, dhash])[:32]
        if self.read_only:  # served as stored (meta not refreshed); results decide the rest
            if self.db.execute("SELECT 1 FROM runs WHERE key=?", (key,)).fetchone() is None:
                # not recorded (e.g. fewer problems than a stored run): its results may be
                # stored all the same; a record that lives only in this process
                return RunRecord(0, key, config_key, config["strategy"], config["task"],
                                 config["model"]["name"], config["seed"], config["opt_level"],
                                 dhash, json.loads(json.dumps(config, sort_keys=True)),
                                 [problem_key(p) for p in problems], meta, time.time())
            return self.get_run(key)
        with self._writing():
            if self.db.execute("UPDATE runs SET meta=? WHERE key=?",
                               (json.dumps(meta), key)).rowcount:
                return self.get_run(key)
            self.db.execute(
                "INSERT INTO runs (key, config_key, strategy, task, model, seed, opt_level,"
                " data_hash, config, problem_keys, meta, created)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (key, config_key, config["strategy"], config["task"], config["model"]["name"],
                 config["seed"], config["opt_level"], dhash, json.dumps(config, sort_keys=True),
                 json.dumps([problem_key(p) for p in problems]), json.dumps(meta), time.time()),
            )
        return self.get_run(key)

    def runs(self) -> list[RunRecord]:
        rows = self.db.execute(f"SELECT {_RUN_COLS} FROM runs ORDER BY id").fetchall()
        return [_run(r) for r in rows]

    def get_run(self, ref: str) -> RunRecord:
        """A run by its number (`3`) or a prefix of its key (`3fa2b1c0`)."""
        ref = str(ref).strip()
        if ref.isdigit():
            row = self.db.execute(f"SELECT {_RUN_COLS} FROM runs WHERE id=?",
                                  (int(ref),)).fetchone()
            if row is not None:
                return _run(row)
        rows = self.db.execute(
            f"SELECT {_RUN_COLS} FROM runs WHERE key LIKE ? ORDER BY id", (ref + "%",)
        ).fetchall() if ref else []
        if len(rows) == 1:
            return _run(rows[0])
        if len(rows) > 1:
            raise S3DSLError(f"run '{ref}' is ambiguous ({len(rows)} runs match)",
                             hint="give more characters of the key")
        raise S3DSLError(f"no run '{ref}' in {self.path}", hint="list runs with: s3dsl runs")

    # -- results ------------------------------------------------------------------------------
    def finished(self, config_key: str, keys: Iterable[str]) -> dict[str, StoredResult]:
        """The stored results of this configuration among these problem keys."""
        wanted = list(keys)
        out: dict[str, StoredResult] = {}
        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.db.execute(
                "SELECT problem_key, result, particle_correct, wall_s, peak_mb FROM results"
                f" WHERE config_key=? AND problem_key IN ({marks})", (config_key, *chunk),
            ).fetchall()
            for pk, result, correct, wall, peak in rows:
                out[pk] = StoredResult(result_from_json(json.loads(result)), json.loads(correct),
                                       wall, peak)
        return out

    def add(self, config_key: str, items: Sequence[tuple[Problem, StoredResult]]) -> None:
        """Store a batch of finished problems in one transaction (all or nothing)."""
        self.require_writable("cannot keep new results")
        now = time.time()
        with self._writing():
            self.db.executemany(
                "INSERT OR REPLACE INTO results VALUES (?,?,?,?,?,?,?,?)",
                [(config_key, problem_key(p), p.id, json.dumps(s.result.to_json()),
                  json.dumps(s.particle_correct), s.wall_s, s.peak_mb, now) for p, s in items],
            )

    def run_results(self, run: RunRecord) -> list[StoredResult]:
        """The run's finished problems, in the run's problem order."""
        done = self.finished(run.config_key, run.problem_keys)
        return [done[k] for k in run.problem_keys if k in done]

    def count_done(self, run: RunRecord) -> int:
        return len(self.finished(run.config_key, run.problem_keys))

    def delete_runs(self, runs: Sequence[RunRecord]) -> int:
        """Delete runs; their results go too unless another run of the same configuration keeps
        them. The number of result rows deleted."""
        self.require_writable("runs cannot be deleted from it")
        removed = 0
        with self._writing():
            for run in runs:
                self.db.execute("DELETE FROM runs WHERE key=?", (run.key,))
                others = self.db.execute("SELECT COUNT(*) FROM runs WHERE config_key=?",
                                         (run.config_key,)).fetchone()[0]
                if not others:
                    removed += self.db.execute("DELETE FROM results WHERE config_key=?",
                                               (run.config_key,)).rowcount
                    if self.has_table("traces"):  # s3dsl.trace's table, once used
                        self.db.execute("DELETE FROM traces WHERE config_key=?",
                                        (run.config_key,))
        return removed

    def has_table(self, name: str) -> bool:
        return self.db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?",
                               (name,)).fetchone() is not None


_RUN_COLS = ("id, key, config_key, strategy, task, model, seed, opt_level, data_hash, config,"
             " problem_keys, meta, created")


def _run(row: tuple) -> RunRecord:
    (id_, key, ck, strategy, task, model, seed, opt, dh, config, pkeys, meta, created) = row
    return RunRecord(id_, key, ck, strategy, task, model, seed, opt, dh, json.loads(config),
                     json.loads(pkeys), json.loads(meta), created)


def _while_locked(step: Callable[[], None], patience_s: float = 30.0) -> None:
    """Run `step`, retrying while another writer holds the file: switching to WAL and creating
    the tables need a lock that SQLite refuses at once (no busy wait) when two runs open one
    new database together."""
    deadline = time.monotonic() + patience_s
    delay = 0.01
    while True:
        try:
            step()
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
