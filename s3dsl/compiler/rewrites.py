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
    """Fuse each denoise stage's forward and commit into one fixed-shape, sync-free node; a step
    of capturable stages (`capturable_step`) becomes one captured step."""
    if capturable_step(program):
        return capture_steps(p, program)
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
                        rule=commit.get("rule"), compiled="no", shapes=fwd.get("shapes"))
        rest = tuple(n for n in stage.nodes if n.kind not in ("forward", "commit"))
        return replace(stage, nodes=(fused, *rest))

    return p.map_stages(fuse)


def compile_static(p: StepPlan, program: Program) -> StepPlan:
    p = p.map_nodes("captured-step", lambda s, n: n.replace(compiled="yes"))
    return p.map_nodes("static-step", lambda s, n: n.replace(compiled="yes"))


def static_applicable(program: Program) -> bool:
    """Static steps need steps made of unconditional `denoise` only, committing a fixed count per
    step (not `threshold`, whose data-dependent count can finish a block early), with one
    schedule for every particle (per-particle schedules commit per row; see particle_schedules).
    A fixed-shape step runs every row's forward, so it also needs masks in the block at every
    step (`masks_last_the_block`): a second denoise per step would empty blocks early."""
    if program.schedules or not program.step or any(
        op.name != "denoise" or op.schedule.when is not None for op in program.step
    ):
        return False
    if not masks_last_the_block(program, program.step):
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
    if p.has("captured-step"):
        return p  # its verifiers run on the device, inside the step: no host work to overlap
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


# -- whole steps captured as one function (s3dsl.runtime.captured) ------------------------------
CAPTURED_STAGES = ("expand", "denoise", "score", "weight", "resample")
CAPTURED_RESAMPLING = ("multinomial", "systematic", "stratified", "ssp")


def capturable_step(program: Program) -> bool:
    """A step the host can plan without reading tensors: stages from CAPTURED_STAGES with no
    `when`, one unscheduled `denoise` whose rule commits a fixed count and whose schedule keeps
    masks in the block until its last step (LLaDA's even split needs block_length >=
    steps_per_block), verifiers with a tensor form, resampling without strata by a scheme with
    a static form. Denoise-only steps keep the simpler `static-step`."""
    from s3dsl.verifiers.tensor import tensor_scorer

    step, d = program.step, program.decode
    if program.schedules or not step or all(op.name == "denoise" for op in step):
        return False  # per-particle schedules commit per row (particle_schedules)
    if any(op.name not in CAPTURED_STAGES or op.schedule.when is not None for op in step):
        return False
    denoise = [op for op in step if op.name == "denoise"]
    if not masks_last_the_block(program, denoise):
        return False
    if (denoise[0].args.get("rule") or d.commit) in ("threshold", "origin"):
        return False
    for op in step:
        verifier = program.verifiers.get(op.args.get("verifier")) if op.name == "score" else None
        if op.name == "score" and (verifier is None or tensor_scorer(verifier.terms) is None):
            return False
        if op.name == "resample" and (
            op.args["method"] not in CAPTURED_RESAMPLING or op.args["within"] == "strata"
        ):
            return False
    return True


def masks_last_the_block(program: Program, denoise: list) -> bool:
    """Every step finds masks in its block: one unscheduled `denoise` per step, on a schedule
    that keeps masks until the block's last step (LLaDA's even split needs block_length >=
    steps_per_block; Dream's linear one always does)."""
    d = program.decode
    if len(denoise) != 1 or denoise[0].schedule.at or denoise[0].schedule.every is not None:
        return False
    return getattr(d, "schedule", "even") == "linear" or d.block_length >= d.steps_per_block


def capture_steps(p: StepPlan, program: Program) -> StepPlan:
    """The whole step as one `captured-step` node (on the first step stage); the stages keep
    their nodes to say what runs inside it: forwards without dedup (fixed shapes), verifiers on
    the device."""
    names = " | ".join(op.name for op in program.step)
    head = Node.of("captured-step", stages=names, rows="all (fixed shape)", host_syncs="none",
                   compiled="no")

    def inside(node: Node) -> Node:
        if node.kind == "forward":
            return node.replace(dedup="no")
        if node.kind == "host":
            return Node.of("device", **dict(node.attrs))
        return node

    step = tuple(replace(stage, nodes=tuple(inside(n) for n in stage.nodes)) for stage in p.step)
    step = (replace(step[0], nodes=(head, *step[0].nodes)), *step[1:])
    return StepPlan(p.init, step, p.final, p.finish)
