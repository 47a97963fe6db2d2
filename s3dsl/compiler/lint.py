"""Compiler warnings: files that compile but do not do what they say.

Each check reads the built IR (and, where the IR has filled in a default, the AST the user wrote)
and reports a stage that is silently a no-op or a fallback: a `when="ess < x"` that can never fire,
`select(by=score)` with nothing scored, `strata=` that `by=answer` ignores, strata nobody uses, a
task's own verifier used on another task. Warnings leave the exit code at 0 unless `--strict`.

`all_errors` reports every independent error of a file (each stage, each verifier, the decode
settings), where `build` stops at the first.
"""

from __future__ import annotations

from dataclasses import dataclass

from s3dsl.compiler import primitives as prims
from s3dsl.compiler.ir import Op, Program, VerifierSpec
from s3dsl.dsl import ast
from s3dsl.errors import S3DSLError
from s3dsl.spans import Span

GENERIC_VERIFIERS = frozenset({"confidence", "oracle"})


@dataclass(frozen=True)
class LintWarning:
    message: str
    span: Span | None = None
    hint: str | None = None

    def render(self) -> str:
        where = f"{self.span}: " if self.span is not None else ""
        hint = f" (hint: {self.hint})" if self.hint else ""
        return f"{where}warning: {self.message}{hint}"

    def as_error(self) -> S3DSLError:
        return S3DSLError(f"{self.message} (a warning, an error under --strict)", self.span,
                          self.hint)


def lint(program: Program, strategy: ast.Strategy | None = None,
         task: str | None = None) -> list[LintWarning]:
    """Every warning for a compiled program. `strategy` (the AST) lets checks see what the user
    wrote rather than the filled-in defaults; `task` (a built-in task name) enables the check that
    a task-specific verifier is not used on another task."""
    ops = program.ops()
    out: list[LintWarning] = []
    out += _never_fires(program)
    out += _never_holds(program)
    out += _ess_conditions(program)
    out += _unread_weights(program)
    out += _select_by_score(ops)
    out += _strata(program, strategy)
    from s3dsl.compiler.particle_schedules import lint_block_points

    out += [LintWarning(*w) for w in lint_block_points(program)]
    if task is not None:
        out += _foreign_verifiers(program, strategy, task)
    return sorted(out, key=lambda w: (w.span.line, w.span.column) if w.span else (0, 0))


def particles_per_block(program: Program) -> list[tuple[int, int, int]]:
    """(at the block's first step, peak, after its last step) particles per problem, per block:
    the static schedule walked as the engine runs it, the most on any path its `when=` stages
    open (s3dsl.compiler.branches)."""
    from s3dsl.compiler.branches import branch, merge
    from s3dsl.compiler.schedule import edge_context, step_contexts

    paths = [1]
    for op in program.init:
        paths = merge(branch(op, edge_context(program.decode, False), paths, lambda n: n,
                             lambda n, o=op: _count_after(o, n)))
    blocks: list[tuple[int, int, int]] = []
    start = peak = max(paths)
    for ctx in step_contexts(program.decode):
        if ctx.step_in_block == 0:
            start = peak = max(paths)
        for op in program.step:
            if op.schedule.fires(ctx.step, ctx.step_in_block, ctx.steps_per_block, ctx.steps):
                paths = merge(branch(op, ctx, paths, lambda n: n,
                                     lambda n, o=op: _count_after(o, n)))
                peak = max(peak, *paths)
        if ctx.step_in_block == ctx.steps_per_block - 1:
            blocks.append((start, peak, max(paths)))
    return blocks


def _count_after(op: Op, n: int) -> int:
    prim = prims.lookup(op.name)
    return n if prim is None else prim.count(n, op.args, op.group)


def _never_fires(program: Program) -> list[LintWarning]:
    """A step stage whose static schedule (at/every/offset) matches no step of this decode."""
    from s3dsl.compiler.schedule import step_contexts

    contexts = list(step_contexts(program.decode))
    return [
        LintWarning(
            f"{op.name} [{op.schedule.describe()}] never runs: no step of {program.decode.steps} "
            f"({program.decode.steps_per_block} per block) matches its schedule",
            op.span,
            "check every/offset against decode.steps",
        )
        for op in program.step
        if not any(op.schedule.fires(c.step, c.step_in_block, c.steps_per_block, c.steps)
                   for c in contexts)
    ]


def _never_holds(program: Program) -> list[LintWarning]:
    """A stage whose `when=` is false wherever it is reached, as the static signals (n, step,
    block, steps) of every path decide it: e.g. `denoise(when="n == 1")` after an `expand`."""
    from s3dsl.compiler.branches import branch, fires, merge, schedule

    reached: set[int] = set()
    paths = [1]
    for op, ctx in schedule(program):
        if op is None:
            continue
        if any(fires(op, ctx, n) is not False for n in paths):
            reached.add(op.uid)
        paths = merge(branch(op, ctx, paths, lambda n: n, lambda n, o=op: _count_after(o, n)))
    return [
        LintWarning(
            f'{op.name}(..., when="{op.schedule.when_text}") never runs: its condition is false '
            "at every point it is reached, on every path",
            op.span,
            "check the n / step / block parts of the condition",
        )
        for op in program.ops()
        if op.schedule.when is not None and op.uid not in reached
        and any(op.schedule.fires(c.step, c.step_in_block, c.steps_per_block, c.steps)
                for c in _contexts(program, op))
    ]


def _contexts(program: Program, op: Op) -> list:
    from s3dsl.compiler.schedule import edge_context, step_contexts

    if op.phase == "step":
        return list(step_contexts(program.decode))
    return [edge_context(program.decode, op.phase == "final")]


def _ess_conditions(program: Program) -> list[LintWarning]:
    """`when` conditions on `ess` read the ESS of the log-weights, which only `weight` moves."""
    out = []
    has_weight = any(op.name == "weight" for op in program.ops())
    for op in program.ops():
        cond = op.schedule.when
        if cond is None or "ess" not in getattr(cond, "names", ()):
            continue
        text = f'when="{op.schedule.when_text}"'
        if not has_weight:
            out.append(LintWarning(
                f"{op.name}(..., {text}) reads the ESS of the log-weights, which no `weight` "
                "stage ever changes: the ESS stays 1 and the condition has the same value at "
                "every step",
                op.span,
                "add weight(by=...) before it, or read score_ess (the ESS of exp(score / beta))",
            ))
        elif op.name == "resample" and _resample_source(program, op) == "score":
            out.append(LintWarning(
                f"resample(..., {text}) draws by exp(score / beta) but its condition reads the "
                "ESS of the log-weights, not of those score weights",
                op.span,
                "write when=\"score_ess < ...\" (the ESS of the weights it draws by), or use "
                "weights=logw with weight(by=score|diff|max)",
            ))
    return out


def _unread_weights(program: Program) -> list[LintWarning]:
    """`weight` stages whose log-weights nothing reads: no resample draws by them, no condition
    reads their ESS."""
    ops = program.ops()
    read = any(o.name == "resample" and _resample_source(program, o) == "logw" for o in ops)
    read = read or any(o.schedule.when is not None
                       and "ess" in getattr(o.schedule.when, "names", ()) for o in ops)
    if read:
        return []
    return [
        LintWarning(
            "weight updates log-weights that nothing reads: no resample draws by them "
            "(weights=logw) and no when= condition reads their ESS",
            op.span,
            "add weights=logw to a resample, or drop weight",
        )
        for op in ops
        if op.name == "weight"
    ]


def _resample_source(program: Program, op: Op) -> str:
    """What a resample draws by: `score` or `logw` (`auto` is score once anything is scored)."""
    source = op.args.get("weights", "auto")
    if source != "auto":
        return source
    scored = any(o.name == "score" for o in (*program.init, *program.step))
    return "score" if scored else "logw"


def _select_by_score(ops: list[Op]) -> list[LintWarning]:
    if any(o.name == "score" for o in ops):
        return []
    return [
        LintWarning(
            "select(by=score) but no stage scores the particles: every score is missing and the "
            "choice falls back to the lowest NLL (by=logprob)",
            op.span,
            "add score(v) before select in final, or write select(by=logprob)",
        )
        for op in ops
        if op.name == "select" and op.args.get("by") == "score"
    ]


def _written(strategy: ast.Strategy | None, op: Op) -> ast.Call | None:
    if strategy is None:
        return None
    calls = (*strategy.init.stages, *strategy.step.stages, *strategy.final.stages)
    return next((c for c in calls if c.span == op.span), None)


def _strata(program: Program, strategy: ast.Strategy | None) -> list[LintWarning]:
    out = []
    ops = program.ops()
    used = any(o.name == "resample" and o.args.get("within") == "strata" for o in ops)
    for op in ops:
        if op.name != "stratify":
            continue
        call = _written(strategy, op)
        gave_strata = call is not None and (call.kwarg("strata") is not None or len(call.args) > 0)
        if op.args.get("by") == "answer" and gave_strata:
            out.append(LintWarning(
                "stratify(strata=..., by=answer): strata= is ignored, by=answer makes one stratum "
                "per distinct answer",
                op.span,
                "drop strata=, or use by=score for score bins",
            ))
        if not used:
            out.append(LintWarning(
                "stratify assigns strata but no resample(within=strata) uses them",
                op.span,
                "add within=strata to a later resample, or drop stratify",
            ))
    return out


def _task_of_verifiers() -> dict[str, str]:
    """Built-in verifier -> the task it was written for (a built-in task's default verifier)."""
    from s3dsl.tasks.registry import TASKS, get_task

    owners = {}
    for name in TASKS:
        verifier = get_task(name).default_verifier
        if verifier not in GENERIC_VERIFIERS:
            owners[verifier] = name
    return owners


def _foreign_verifiers(program: Program, strategy: ast.Strategy | None,
                       task: str) -> list[LintWarning]:
    """A verifier written for one built-in task, used on another: it scores the wrong format."""
    from s3dsl.tasks.registry import TASKS

    if task not in TASKS:
        return []  # a data file: its domain is unknown
    owners = _task_of_verifiers()
    spans: dict[str, Span] = {}
    if strategy is not None:
        for v in strategy.verifiers:
            for term in v.terms:
                spans.setdefault(f"{v.name}/{prims.canonical(term.builtin)}", term.span)
    for op in program.ops():
        if op.name == "score":
            spans.setdefault(f"{op.args['verifier']}/", op.span)
    out = []
    for name, spec in program.verifiers.items():
        for _, builtin, _ in spec.terms:
            owner = owners.get(builtin)
            if owner is None or owner == task:
                continue
            span = spans.get(f"{name}/{builtin}") or spans.get(f"{name}/")
            out.append(LintWarning(
                f"verifier '{name}' uses {builtin}, written for the {owner} task, on {task}",
                span,
                "use task-default (the task's own verifier) or a generic one (confidence)",
            ))
    return out


# -- every error of a file --------------------------------------------------------------------


def all_errors(strategy: ast.Strategy, overrides: dict[str, str] | None, gen_length: int,
               task_verifier: str) -> list[S3DSLError]:
    """Every error of a parsed strategy whose errors are independent: the decode settings, each
    verifier and each stage are checked on their own; order and shape errors (which depend on
    every stage being valid) come from `build` once those pass. Empty when the file compiles."""
    from s3dsl.compiler import build as b
    from s3dsl.compiler import decode, stages

    try:
        b.build(strategy, overrides, gen_length, task_verifier)
        return []
    except S3DSLError as first:
        primary = first
    try:
        params = decode.resolve_params(strategy, dict(overrides or {}))
    except S3DSLError as err:
        return [err]
    errors: list[S3DSLError] = []

    def attempt(fn, *args) -> object:
        try:
            return fn(*args)
        except S3DSLError as err:
            errors.append(err)
            return None

    try:
        attempt(decode.resolve_decode, strategy, params, overrides or {}, gen_length)
        verifiers = {}
        for v in strategy.verifiers:
            spec = attempt(stages.verifier_spec, v, dict(params), task_verifier)
            # a broken verifier is reported once, not again at every stage that names it
            verifiers[v.name] = spec or VerifierSpec(v.name, ((1.0, "confidence", ()),))
        builder = stages.OpBuilder(dict(params), verifiers, task_verifier)
        for phase, pipeline in (("init", strategy.init), ("step", strategy.step),
                                ("final", strategy.final)):
            for call in pipeline.stages:
                attempt(builder.op, call, phase)
    except (AttributeError, TypeError):
        return [primary]
    if not errors:
        return [primary]
    seen: set[str] = set()
    unique = []
    for err in sorted(errors, key=_position):
        if err.render() not in seen:
            seen.add(err.render())
            unique.append(err)
    return unique


def _position(err: S3DSLError) -> tuple[int, int]:
    return (err.span.line, err.span.column) if err.span is not None else (0, 0)
