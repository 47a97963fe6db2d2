"""The pass manager: named plan passes, opt levels, --disable-pass, and a record for --explain.

The strategy says *what*; a pass changes *how* the plan runs it, never the tokens. Each pass is
a name, the lowest opt level that turns it on, what it does, and the executor flag it sets.
Opt level 0 runs the reference interpreter; 1 the batched executor; 2 (the default) adds forward
sharing and the exact prompt cache; 3 trades dedup for static-shape, sync-free denoise steps that
a GPU can capture. An opt-in pass may change tokens (an approximation a user asks for by
name with --enable-pass); runs that used one are stored and reported as such.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from s3dsl.compiler.cost import Cost, predict
from s3dsl.compiler.ir import Program
from s3dsl.dsl.errors import S3DSLError, did_you_mean
from s3dsl.runtime.executor import Flags

MAX_OPT_LEVEL = 3
DEFAULT_OPT_LEVEL = 2


@dataclass(frozen=True)
class Pass:
    """A plan pass. `saves` says what it cuts when that is not forward passes; an `opt_in` pass
    may change tokens, so no opt level turns it on: only `--enable-pass` does."""

    name: str
    level: int
    doc: str
    saves: str = ""
    opt_in: bool = False
    requires: str | None = "batch"  # the pass it transforms; every pass but batch needs batch


PASSES: tuple[Pass, ...] = (
    Pass("batch", 1, "all particles of all problems in one forward call per step",
         "per-particle calls", requires=None),
    Pass("chunking", 1, "chunks sized from model and memory budget; halve on OOM",
         "peak memory"),
    Pass("share-parent-forward", 2, "expand's children share their parent's forward"),
    Pass("forward-reuse", 2, "the forward that scores a state feeds its next denoise"),
    Pass("dedup", 2, "identical states share one forward", "forwards, at run time"),
    Pass("prompt-cache", 2, "prompt encoded once; forwards cover the answer only (exact "
         "for prompt-isolated models, skipped for others)", "prompt positions"),
    Pass("static-steps", 3, "denoise-only steps as one fixed-shape, sync-free function "
         "(no dedup)", "host syncs"),
    Pass("compile-steps", 3, "torch.compile the static step (CUDA graphs on a GPU); may "
         "round differently", "kernel launches", opt_in=True, requires="static-steps"),
    Pass("approx-prompt-cache", 2, "prompt cache on any built-in model: CHANGES TOKENS "
         "without prompt isolation", "prompt positions (approx.)", opt_in=True),
)
OPT_IN = frozenset(p.name for p in PASSES if p.opt_in)


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
    opt_level: int = DEFAULT_OPT_LEVEL,
    disable: tuple[str, ...] = (),
    chunk_rows: int | None = None,
    memory_budget: int | None = None,
    enable: tuple[str, ...] = (),
) -> Plan:
    """Choose passes by opt level, minus `disable`, plus the opt-in passes named in `enable`."""
    if not 0 <= opt_level <= MAX_OPT_LEVEL:
        raise S3DSLError(f"--opt-level must be between 0 and {MAX_OPT_LEVEL}, got {opt_level}")
    names = [p.name for p in PASSES]
    for flag, chosen in (("--disable-pass", disable), ("--enable-pass", enable)):
        for name in chosen:
            if name not in names:
                raise S3DSLError(f"{flag} {name}: no such pass", None, did_you_mean(name, names))
    for name in enable:
        if name not in OPT_IN:
            raise S3DSLError(
                f"--enable-pass {name}: only opt-in passes are enabled by name",
                None,
                f"opt-in passes: {', '.join(sorted(OPT_IN))}; others follow --opt-level",
            )
    enabled: set[str] = set()
    records = []
    current = predict(program, reuse=False, share_parent=False)
    for p in PASSES:
        on = (p.name in enable) if p.opt_in else p.level <= opt_level
        on = on and p.name not in disable
        on = on and (p.requires is None or p.requires in enabled)
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
        prompt_cache=bool({"prompt-cache", "approx-prompt-cache"} & enabled),
        approximate_prompt_cache="approx-prompt-cache" in enabled,
        static_steps="static-steps" in enabled and static_applicable(program),
        compile_steps="compile-steps" in enabled,
        # without the chunking pass a forward call takes every row at once
        chunk_rows=chunk_rows or (None if "chunking" in enabled else 1 << 30),
        memory_budget=memory_budget,
    )
    return Plan(program, opt_level, frozenset(enabled), flags, current, records)


def static_applicable(program: Program) -> bool:
    """Static steps need steps made of unconditional `denoise` only, committing a fixed count per
    step (not `threshold`, whose data-dependent count can finish a block early)."""
    if not program.step or any(
        op.name != "denoise" or op.schedule.when is not None for op in program.step
    ):
        return False
    rules = {op.args.get("rule") or program.decode.commit for op in program.step}
    return "threshold" not in rules
