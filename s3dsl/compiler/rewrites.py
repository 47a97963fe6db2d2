"""The rewrites the passes apply: each a function from lowered plan to lowered plan."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from s3dsl.compiler.ir import Program
from s3dsl.compiler.lowered import Stage, StepPlan
from s3dsl.compiler.nodes import Node

Rewrite = Callable[[StepPlan, Program], StepPlan]


def set_forward(**attrs) -> Rewrite:
    return lambda p, program: p.map_nodes("forward", lambda s, n: n.replace(**attrs))


def keep_parent_forward(p: StepPlan, program: Program) -> StepPlan:
    return p.map_nodes("gather", lambda s, n: n.replace(cache="keep"))


def forward_reuse(p: StepPlan, program: Program) -> StepPlan:
    """Eliminate redundant forwards: the cache survives stage boundaries (no drop-cache), so a
    forward over a state some earlier forward already ran (score, then the next denoise) is free."""
    p = p.map_nodes("drop-cache", lambda s, n: None)
    return p.map_nodes("forward", lambda s, n: n.replace(cache="reuse"))


def static_steps(p: StepPlan, program: Program) -> StepPlan:
    """Fuse each denoise stage's forward and commit into one fixed-shape, sync-free node."""
    if not static_applicable(program):
        return p

    def fuse(stage: Stage) -> Stage:
        if stage.op.name != "denoise" or stage is p.finish or stage.op.uid == 0:
            return stage
        commit = stage.node("commit")
        fwd = stage.node("forward")
        assert commit is not None and fwd is not None
        fused = Node.of("static-step", rows="all (fixed shape)", window="whole block",
                        positions=fwd.get("positions"), chunk=fwd.get("chunk"),
                        rule=commit.get("rule"), compiled="no")
        rest = tuple(n for n in stage.nodes if n.kind not in ("forward", "commit"))
        return replace(stage, nodes=(fused, *rest))

    return p.map_stages(fuse)


def compile_static(p: StepPlan, program: Program) -> StepPlan:
    return p.map_nodes("static-step", lambda s, n: n.replace(compiled="yes"))


def static_applicable(program: Program) -> bool:
    """Static steps need steps made of unconditional `denoise` only, committing a fixed count per
    step (not `threshold`, whose data-dependent count can finish a block early)."""
    if not program.step or any(
        op.name != "denoise" or op.schedule.when is not None for op in program.step
    ):
        return False
    rules = {op.args.get("rule") or program.decode.commit for op in program.step}
    return "threshold" not in rules


OVERLAP_LANES = 2  # batches in flight: one in a forward while the host works on the other


def overlap_host(p: StepPlan, program: Program) -> StepPlan:
    """Two batches of problems in flight: while one runs a forward, the host decodes and scores
    the other (`s3dsl.runtime.overlap`). Forwards say `lanes=2`; verifier calls say where they
    run: `pool=process` for GIL-bound verifiers, else `inline`. Each batch runs as in the serial
    engine and problems are independent, so results are the serial engine's bit for bit. Only
    for programs that call a verifier; not with compiled steps (one capture per lane)."""
    if any(n.get("compiled") == "yes" for n in p.nodes("static-step")):
        return p
    if not any(stage_verifier(stage) for stage in p.stages()):
        return p  # no verifier: no host work worth a second batch in flight
    p = p.map_nodes("forward", lambda s, n: n.replace(lanes=OVERLAP_LANES))
    p = p.map_nodes("static-step", lambda s, n: n.replace(lanes=OVERLAP_LANES))

    def pool(stage: Stage, node: Node) -> Node:
        name = stage_verifier(stage)
        if name is None:
            return node
        return node.replace(pool="process" if verifier_gil_bound(program, name) else "inline")

    return p.map_nodes("host", pool)


def stage_verifier(stage: Stage) -> str | None:
    """The verifier a stage's host node calls (score, mh-accept with a tilted target)."""
    if stage.op.name == "score":
        return stage.op.args.get("verifier")
    target = stage.op.args.get("target")
    if stage.op.name == "mh-accept" and isinstance(target, tuple) and target[0] == "tilted":
        return target[1]["verifier"]
    return None


def verifier_gil_bound(program: Program, name: str) -> bool:
    """Whether any term of the named verifier is CPU-bound Python (its class says
    `gil_bound = True`)."""
    from s3dsl.verifiers.registry import VERIFIERS, normalize

    spec = program.verifiers.get(name)
    terms = [builtin for _, builtin, _ in spec.terms] if spec is not None else [name]
    entries = [VERIFIERS.get(normalize(b)) for b in terms]
    return any(bool(getattr(e[0], "gil_bound", False)) for e in entries if e is not None)
