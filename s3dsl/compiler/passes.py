"""The pass manager: plan-to-plan rewrites by name, opt levels, --disable-pass, --explain records.

The strategy says *what*; a pass rewrites the lowered plan (`s3dsl.compiler.lowered`) to say *how*,
never changing the tokens. Opt level 0 runs the reference interpreter; 1 the batched executor;
2 (the default) adds forward sharing, dedup and the exact prompt cache; 3 trades dedup for
static-shape, sync-free denoise steps that a GPU can capture, and overlaps host work (decoding,
verifiers) of one batch with the forwards of the next. An opt-in pass may change tokens
(an approximation a user asks for by name with --enable-pass); runs that used one are stored and
reported as such.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from s3dsl.compiler.cost import Cost, count
from s3dsl.compiler.ir import Program
from s3dsl.compiler.kv_rewrite import block_kv_cache
from s3dsl.compiler.lowered import StepPlan, lower
from s3dsl.compiler.rewrites import (
    Rewrite,
    compile_static,
    forward_reuse,
    keep_parent_forward,
    overlap_host,
    set_forward,
    static_applicable,
    static_steps,
)
from s3dsl.errors import S3DSLError, did_you_mean

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
    rewrite: Rewrite = field(default=lambda p, program: p, repr=False)


PASSES: tuple[Pass, ...] = (
    Pass("batch", 1, "all particles of all problems in one forward call per step",
         "per-particle calls", requires=None, rewrite=set_forward(calls="batched")),
    Pass("chunking", 1, "chunks sized from model and memory budget; halve on OOM",
         "peak memory", rewrite=set_forward(chunk="memory budget")),
    Pass("share-parent-forward", 2, "expand's children share their parent's forward",
         rewrite=keep_parent_forward),
    Pass("forward-reuse", 2, "the forward that scores a state feeds its next denoise",
         rewrite=forward_reuse),
    Pass("dedup", 2, "identical states share one forward", "forwards, at run time",
         rewrite=set_forward(dedup="yes")),
    Pass("prompt-cache", 2, "prompt encoded once; forwards cover the answer only (exact "
         "for prompt-isolated models, skipped for others)", "prompt positions",
         rewrite=set_forward(positions="answer (prompt cached)")),
    Pass("static-steps", 3, "denoise-only steps, or whole steps of capturable stages (expand, "
         "denoise, tensor verifiers, weight, resample), as one fixed-shape, sync-free function "
         "(no dedup)", "host syncs", rewrite=static_steps),
    Pass("compile-steps", 3, "torch.compile the static step (CUDA graphs on a GPU); may "
         "round differently", "kernel launches", opt_in=True, requires="static-steps",
         rewrite=compile_static),
    Pass("approx-prompt-cache", 2, "prompt cache on any built-in model: CHANGES TOKENS "
         "without prompt isolation", "prompt positions (approx.)", opt_in=True,
         rewrite=set_forward(positions="answer (prompt cached, approximate)")),
    Pass("prefix-cache", 2, "Fast-dLLM prefix KV cache: keys/values before the current block "
         "computed at block start; each step recomputes the block and what follows: CHANGES "
         "TOKENS", "positions per forward (approx.)", opt_in=True,
         rewrite=block_kv_cache("prefix")),
    Pass("dual-cache", 2, "Fast-dLLM dual KV cache: prefix and suffix cached at block start; "
         "each step recomputes only the current block: CHANGES TOKENS",
         "positions per forward (approx.)", opt_in=True, rewrite=block_kv_cache("dual")),
    Pass("overlap", 3, "two batches in flight: the host decodes and scores one while the "
         "other runs its forward (GIL-bound verifiers in a process pool)", "device idle time",
         rewrite=overlap_host),
)
OPT_IN = frozenset(p.name for p in PASSES if p.opt_in)


@dataclass(frozen=True)
class Flags:
    """A summary of what the plan's rewrites switched on (what the executor reads is the plan),
    plus the run-time sizes no pass decides: rows per call and the memory budget."""

    forward_reuse: bool = True
    share_parent_forward: bool = True
    dedup: bool = True
    prompt_cache: bool = False  # encode each prompt once (exact only for prompt-isolated models)
    approximate_prompt_cache: bool = False  # ...and also where that changes the logits (opt-in)
    static_steps: bool = False  # denoise steps as one fixed-shape, sync-free function
    compile_steps: bool = False  # ...captured by torch.compile (opt-in: rounding may differ)
    block_kv: str | None = None  # block KV cache kind, prefix | dual (opt-in, approximate)
    chunk_rows: int | None = None  # rows per forward call; None: sized from the memory budget
    memory_budget: int | None = None  # bytes for one forward call's activations and logits
    overlap_lanes: int = 1  # micro-batches in flight (the overlap pass: 2)


@dataclass
class PassRecord:
    name: str
    enabled: bool
    forwards_before: int
    forwards_after: int
    doc: str
    changed: list[tuple[str, str]] = field(default_factory=list)  # (before, after) node lines


@dataclass
class Plan:
    program: Program
    opt_level: int
    enabled: frozenset[str]
    flags: Flags
    cost: Cost
    records: list[PassRecord] = field(default_factory=list)
    lowered: StepPlan | None = None  # what the executor runs
    unoptimized: StepPlan | None = None  # the plan before any pass

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
    """Choose passes by opt level, minus `disable`, plus the opt-in passes named in `enable`,
    and apply their rewrites in order to the lowered program."""
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
    start = current = lower(program)
    cost = count(current, program)
    for p in PASSES:
        on = (p.name in enable) if p.opt_in else p.level <= opt_level
        on = on and p.name not in disable
        on = on and (p.requires is None or p.requires in enabled)
        before, changed = cost.forwards, []
        if on:
            enabled.add(p.name)
            rewritten = p.rewrite(current, program)
            changed = _changes(current, rewritten)
            if not _same_stages(current, rewritten):  # (a pass that rewrote nothing keeps the
                cost = count(rewritten, program)  # count: the walk costs ~1 ms per stage)
            current = rewritten
        records.append(PassRecord(p.name, on, before, cost.forwards, p.doc, changed))
    flags = flags_of(current, chunk_rows, memory_budget, "chunking" in enabled)
    return Plan(program, opt_level, frozenset(enabled), flags, cost, records, current, start)


def flags_of(lowered: StepPlan, chunk_rows: int | None, memory_budget: int | None,
             chunking: bool = True) -> Flags:
    forwards = lowered.nodes("forward") + lowered.nodes("static-step")
    positions = {str(n.get("positions")) for n in forwards}
    return Flags(
        forward_reuse=not lowered.has("drop-cache"),
        share_parent_forward=all(n.get("cache") == "keep" for n in lowered.nodes("gather")),
        dedup=any(n.get("dedup") == "yes" for n in lowered.nodes("forward")),
        prompt_cache=any(x.startswith("answer") for x in positions),
        approximate_prompt_cache=any("approximate" in x for x in positions),
        static_steps=lowered.has("static-step") or lowered.has("captured-step"),
        compile_steps=any(n.get("compiled") == "yes"
                          for n in lowered.nodes("static-step") + lowered.nodes("captured-step")),
        block_kv=next((n.get("kv") for n in lowered.nodes("forward") if n.get("kv")), None),
        # without the chunking pass a forward call takes every row at once
        chunk_rows=chunk_rows or (None if chunking else 1 << 30),
        memory_budget=memory_budget,
        overlap_lanes=max((int(n.get("lanes") or 1) for n in forwards), default=1),
    )


def lowered_for(program: Program, flags: Flags) -> StepPlan:
    """The plan a set of flags stands for (an executor built from flags alone runs this)."""
    chosen = {
        "batch": True, "chunking": True,
        "share-parent-forward": flags.share_parent_forward,
        "forward-reuse": flags.forward_reuse,
        "dedup": flags.dedup,
        "prompt-cache": flags.prompt_cache and not flags.approximate_prompt_cache,
        "approx-prompt-cache": flags.approximate_prompt_cache,
        "static-steps": flags.static_steps,
        "compile-steps": flags.static_steps and flags.compile_steps,
        "prefix-cache": flags.block_kv == "prefix",
        "dual-cache": flags.block_kv == "dual",
        "overlap": flags.overlap_lanes > 1,
    }
    current = lower(program)
    for p in PASSES:
        if chosen[p.name]:
            current = p.rewrite(current, program)
    return current


def _same_stages(before: StepPlan, after: StepPlan) -> bool:
    """Whether two plans run the same ops with the same nodes (so every count reads the same)."""
    old, new = list(before.stages()), list(after.stages())
    return len(old) == len(new) and all(
        a.op == b.op and a.nodes == b.nodes for a, b in zip(old, new))


def _changes(before: StepPlan, after: StepPlan) -> list[tuple[str, str]]:
    """(before, after) lines of every stage a rewrite touched: its header, then its nodes."""
    out: list[tuple[str, str]] = []
    for old, new in zip(before.stages(), after.stages()):
        if old.nodes == new.nodes:
            continue
        out.append((old.lines()[0], ""))
        out += [(f"    {n.describe()}", "") for n in old.nodes if n not in new.nodes]
        out += [("", f"    {n.describe()}") for n in new.nodes if n not in old.nodes]
    return out


__all__ = ["PASSES", "Flags", "Plan", "plan", "static_applicable"]
