"""The pass manager: named plan passes, opt levels, --disable-pass, and a record for --explain.

The strategy says *what*; a pass changes *how* the plan runs it, never the tokens. Each pass is
a name, the lowest opt level that turns it on, what it does, and the executor flag it sets.
Opt level 0 runs the reference interpreter; 1 the batched executor; 2 adds forward sharing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from s3dsl.compiler.cost import Cost, predict
from s3dsl.compiler.ir import Program
from s3dsl.dsl.errors import S3DSLError, did_you_mean
from s3dsl.runtime.executor import Flags

MAX_OPT_LEVEL = 2


@dataclass(frozen=True)
class Pass:
    name: str
    level: int
    doc: str


PASSES: tuple[Pass, ...] = (
    Pass("batch", 1, "run all particles of all problems in single forward calls (chunked)"),
    Pass("chunking", 1, "size forward chunks from the model and a memory budget; halve on OOM"),
    Pass("share-parent-forward", 2, "expand's k children share their parent's forward pass"),
    Pass("forward-reuse", 2, "the forward that scores a state feeds its next denoise"),
    Pass("dedup", 2, "identical particle states share one forward pass"),
)


@dataclass
class PassRecord:
    name: str
    enabled: bool
    forwards_before: int
    forwards_after: int
    doc: str


@dataclass
class Plan:
    program: Program
    opt_level: int
    enabled: frozenset[str]
    flags: Flags
    cost: Cost
    records: list[PassRecord] = field(default_factory=list)

    @property
    def reference(self) -> bool:
        return "batch" not in self.enabled


def plan(
    program: Program,
    opt_level: int = MAX_OPT_LEVEL,
    disable: tuple[str, ...] = (),
    chunk_rows: int | None = None,
    memory_budget: int | None = None,
) -> Plan:
    if not 0 <= opt_level <= MAX_OPT_LEVEL:
        raise S3DSLError(f"--opt-level must be between 0 and {MAX_OPT_LEVEL}, got {opt_level}")
    names = [p.name for p in PASSES]
    for name in disable:
        if name not in names:
            raise S3DSLError(
                f"--disable-pass {name}: no such pass", None, did_you_mean(name, names)
            )
    enabled: set[str] = set()
    records = []
    current = predict(program, reuse=False, share_parent=False)
    for p in PASSES:
        on = p.level <= opt_level and p.name not in disable
        if p.name != "batch" and "batch" not in enabled:
            on = False  # every other pass transforms the batched plan
        before = current.forwards
        if on:
            enabled.add(p.name)
            current = predict(
                program,
                reuse="forward-reuse" in enabled,
                share_parent="share-parent-forward" in enabled,
            )
        records.append(PassRecord(p.name, on, before, current.forwards, p.doc))
    flags = Flags(
        forward_reuse="forward-reuse" in enabled,
        share_parent_forward="share-parent-forward" in enabled,
        dedup="dedup" in enabled,
        # without the chunking pass a forward call takes every row at once
        chunk_rows=chunk_rows or (None if "chunking" in enabled else 1 << 30),
        memory_budget=memory_budget,
    )
    return Plan(program, opt_level, frozenset(enabled), flags, current, records)
