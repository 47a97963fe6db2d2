"""AST -> IR: resolve params, bind and type-check arguments, check stage order, infer shapes.

Every error points at the span of what the user wrote and, where it can, says what was meant.
"""

from __future__ import annotations

import hashlib
from typing import Any

from s3dsl.compiler import primitives as prims
from s3dsl.compiler import values as checks
from s3dsl.compiler.branches import MAX_PARTICLES, infer_shapes
from s3dsl.compiler.ir import DecodeConfig, Op, Program, Schedule, VerifierSpec
from s3dsl.dsl import ast
from s3dsl.errors import S3DSLError, did_you_mean
from s3dsl.spans import Span

DECODE_DEFAULTS: dict[str, Any] = {
    "steps": None,  # default: gen_length (one token per step)
    "gen_length": None,  # default: the task's
    "block_length": None,  # default: gen_length (one block)
    "temperature": 0.0,
    "commit": "confidence",
    "threshold": 0.9,
    # the official samplers' options (see DecodeConfig and runtime/transition.py `Sampler`)
    "schedule": "even",
    "eps": 1e-3,
    "top_p": 1.0,
    "top_k": 0,
    "alg_temp": 0.0,
    "tempered_confidence": False,
    "cfg_scale": 0.0,
    "logits_eos_inf": False,
    "confidence_eos_eot_inf": False,
}
# the official samplers' names for commit rules (LLaDA `remasking`, Dream `alg`)
COMMIT_ALIASES = {"low_confidence": "confidence", "maskgit_plus": "confidence",
                  "topk_margin": "margin"}
SCHEDULES = ("even", "linear")


TASK_VERIFIER = "task-default"  # stands for the task's own verifier, so strategies stay generic


def build(
    strategy: ast.Strategy,
    overrides: dict[str, str] | None = None,
    gen_length: int = 32,
    task_verifier: str = "confidence",
) -> Program:
    """Check a parsed strategy and lower it to the IR.

    overrides: `--set key=value` texts (params, or decode settings). gen_length and task_verifier
    come from the task: decode expressions may use `${gen_length}`, and a verifier named
    `task-default` is the task's default verifier.
    """
    checks.strategy_size(strategy)
    params = _resolve_params(strategy, dict(overrides or {}))
    env = dict(params)
    decode = _resolve_decode(strategy, params, overrides or {}, gen_length)
    checks.plan_size(decode.steps, len(strategy.step.stages), strategy.step.span)
    verifiers = {v.name: _verifier_spec(v, env, task_verifier) for v in strategy.verifiers}
    builder = _OpBuilder(env, verifiers, task_verifier)
    init = [builder.op(c, "init") for c in strategy.init.stages]
    step = [builder.op(c, "step") for c in strategy.step.stages]
    final = [builder.op(c, "final") for c in strategy.final.stages]
    if not any(op.name == "denoise" for op in step):
        raise S3DSLError(
            "the step pipeline never runs denoise, so nothing is ever decoded",
            strategy.step.span,
            "add `denoise` to `program.step`",
        )
    schedules = _particle_schedules(init, step, final, decode, env)
    digest = hashlib.sha256(strategy.source.encode()).hexdigest()[:16]
    program = Program(
        strategy.name,
        strategy.description,
        params,
        decode,
        builder.verifiers,
        init,
        step,
        final,
        digest,
        strategy.span.file,
        schedules=schedules,
    )
    infer_shapes(program)
    return program


def _particle_schedules(init: list[Op], step: list[Op], final: list[Op], decode: DecodeConfig,
                        env: dict) -> tuple[DecodeConfig, ...]:
    """`expand(k, schedules=[...])`: checked, numbered (compiler/particle_schedules.py)."""
    from s3dsl.compiler import particle_schedules

    table: list[DecodeConfig] = []
    for op in (*init, *step, *final):
        raw = op.args.get("schedules")
        if op.name != "expand" or raw is None:
            continue
        if op.phase != "init":
            raise S3DSLError("schedules= only applies in init: a particle keeps its schedule "
                             "for the whole decode", op.span, "move this expand to program.init")
        ids = particle_schedules.resolve(raw.value, raw.span, decode, env, table)
        if op.args["k"] < len(ids):
            raise S3DSLError(f"expand({op.args['k']}) gives {op.args['k']} children but "
                             f"{len(ids)} schedules: some would never run", op.span,
                             f"use expand({len(ids)}, schedules=...) or a multiple of it")
        op.args["schedules"] = ids
    return tuple(table)


# -- params and decode --------------------------------------------------------------------------


def _literal(arg: ast.Arg, env: dict[str, Any]) -> Any:
    if isinstance(arg.value, ast.Expr):
        from s3dsl.dsl.expr import evaluate

        return evaluate(arg.value.text, env, arg.span)
    return arg.value


def _parse_override(text: str, default: Any, key: str) -> Any:
    kind = type(default)
    try:
        if kind is bool:
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(text)
            return text.lower() in ("true", "1", "yes")
        if kind in (int, float):
            return checks.override_number(text, kind, key, default)
    except ValueError:
        raise S3DSLError(
            f"--set {key}={text}: expected {kind.__name__}", None, f"the default is {default!r}"
        ) from None
    return text


def _resolve_params(strategy: ast.Strategy, overrides: dict[str, str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for setting in strategy.params:
        value = _literal(setting.value, params)
        if setting.name in overrides:
            value = _parse_override(overrides.pop(setting.name), value, setting.name)
        params[setting.name] = value
    known = set(params) | set(DECODE_DEFAULTS)
    for key in overrides:
        if key not in known:
            raise S3DSLError(f"--set {key}: no such param", None, did_you_mean(key, known))
    return params


def _resolve_decode(
    strategy: ast.Strategy, params: dict, overrides: dict[str, str], task_gen_length: int
) -> DecodeConfig:
    """Decode settings: a `--set` override wins, then the strategy's value, then the default.
    Expressions see the params and `gen_length` (so `block_length: ${gen_length // 4}`)."""
    given = {s.name: s for s in strategy.decode}
    for setting in strategy.decode:
        if setting.name not in DECODE_DEFAULTS:
            raise S3DSLError(
                f"unknown decode setting '{setting.name}'",
                setting.span,
                did_you_mean(setting.name, DECODE_DEFAULTS),
            )
    spans: dict[str, Span] = {k: s.value.span for k, s in given.items()}
    values = dict(DECODE_DEFAULTS)
    env = dict(params)
    for key in ("gen_length", *[k for k in DECODE_DEFAULTS if k != "gen_length"]):
        if key in overrides and key not in params:
            default = DECODE_DEFAULTS[key] if DECODE_DEFAULTS[key] is not None else 0
            values[key] = _parse_override(overrides[key], default, key)
        elif key in given:
            values[key] = _literal(given[key].value, env)
        if key == "gen_length":
            env["gen_length"] = task_gen_length if values["gen_length"] is None else values[
                "gen_length"]
    steps, gen, block, temperature, threshold = checks.decode_settings(
        values, spans, strategy.span, task_gen_length, set(overrides) - set(params)
    )
    raw = values["commit"]
    commit = COMMIT_ALIASES.get(raw, raw) if isinstance(raw, str) else raw
    rules = (*prims.COMMIT_RULES, "origin", *COMMIT_ALIASES)
    if not isinstance(commit, str) or commit not in (*prims.COMMIT_RULES, "origin"):
        raise S3DSLError(
            f"unknown commit rule {checks.shown(commit)}",
            spans.get("commit", strategy.span),
            did_you_mean(str(commit), rules),
        )
    sampler = _sampler_settings(values, spans, strategy.span)
    if commit == "origin" and sampler["schedule"] != "linear":
        raise S3DSLError("commit rule 'origin' needs schedule: linear (Dream's timesteps)",
                         spans.get("commit", strategy.span), "set decode.schedule: linear")
    return DecodeConfig(steps, gen, block, temperature, commit, threshold, **sampler)


def _sampler_settings(values: dict, spans: dict, where: Span) -> dict[str, Any]:
    """The official samplers' decode options, checked (each error points at its setting)."""

    def fail(key: str, what: str) -> S3DSLError:
        return S3DSLError(f"decode.{key} {what}, got {checks.shown(values[key])}",
                          spans.get(key, where))

    out: dict[str, Any] = {}
    if values["schedule"] not in SCHEDULES:
        raise S3DSLError(f"unknown schedule {checks.shown(values['schedule'])}",
                         spans.get("schedule", where),
                         did_you_mean(str(values["schedule"]), SCHEDULES))
    out["schedule"] = values["schedule"]
    for key, low, high in (("eps", 0.0, 1.0), ("top_p", 0.0, 1.0)):
        value = values[key]
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or not low < value <= high:
            raise fail(key, f"must be a number in ({low:g}, {high:g}]")
        out[key] = float(value)
    for key in ("alg_temp", "cfg_scale"):  # finite, >= 0, at most 1e6
        out[key] = float(checks.number(values[key], f"decode.{key}", spans.get(key, where),
                                       low=0.0))
    top_k = values["top_k"]
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
        raise fail("top_k", "must be an integer >= 0 (0 = off)")
    out["top_k"] = top_k
    for key in ("tempered_confidence", "logits_eos_inf", "confidence_eos_eot_inf"):
        if not isinstance(values[key], bool):
            raise fail(key, "must be true or false")
        out[key] = values[key]
    return out


def _verifier_spec(v: ast.VerifierDef, env: dict, task_verifier: str) -> VerifierSpec:
    from s3dsl.verifiers.registry import VERIFIERS, get_verifier

    terms = []
    for term in v.terms:
        builtin = task_verifier if term.builtin == TASK_VERIFIER else term.builtin
        options = tuple((o.name, _literal(o.value, env)) for o in term.options)
        options = checks.verifier_options(builtin, options, term.span)
        try:
            get_verifier(builtin, **dict(options))
        except S3DSLError as err:
            hint = err.hint
            if "unknown verifier" in err.message:
                hint = did_you_mean(builtin, [*VERIFIERS, TASK_VERIFIER])
            raise S3DSLError(err.message, term.span, hint) from None
        weight = checks.weight(_literal(term.weight, env), builtin, term.weight.span)
        terms.append((weight, builtin, options))
    return VerifierSpec(v.name, tuple(terms))


# -- stages -------------------------------------------------------------------------------------


class _OpBuilder:
    def __init__(self, env: dict[str, Any], verifiers: dict[str, VerifierSpec], task_verifier: str):
        self.env = env
        self.task_verifier = task_verifier
        self.verifiers = dict(verifiers)
        self.uid = 0

    def op(self, call: ast.Call, phase: str) -> Op:
        prim = prims.lookup(call.name)
        if prim is None:
            raise S3DSLError(
                f"unknown primitive '{call.name}'",
                call.span,
                did_you_mean(prims.canonical(call.name), prims.all_names()),
            )
        if phase not in prim.phases:
            raise S3DSLError(
                f"{prim.name} cannot run in {phase}",
                call.span,
                f"{prim.name} belongs in: {', '.join(prim.phases)}",
            )
        bound = self._bind(prim, call)
        schedule = self._schedule(prim, bound, call, phase)
        args = {p.name: self._typed(prim, p, bound.get(p.name), call) for p in prim.params}
        self.uid += 1
        return Op(prim.name, args, schedule, call.span, self.uid, phase)

    def _bind(self, prim: prims.Primitive, call: ast.Call) -> dict[str, ast.Arg]:
        bound: dict[str, ast.Arg] = {}
        if len(call.args) > len(prim.params):
            raise S3DSLError(
                f"{prim.name} takes at most {len(prim.params)} positional argument(s), "
                f"got {len(call.args)}",
                call.args[len(prim.params)].span,
                f"signature: {signature(prim)}",
            )
        for param, arg in zip(prim.params, call.args):
            bound[param.name] = arg
        names = [p.name for p in prim.params] + list(prims.SCHEDULE_KEYS)
        for key, arg in call.kwargs:
            if key not in names:
                raise S3DSLError(
                    f"{prim.name} has no argument '{key}'",
                    arg.span,
                    did_you_mean(key, names) or f"signature: {signature(prim)}",
                )
            if key in bound:
                raise S3DSLError(f"argument '{key}' given twice", arg.span)
            bound[key] = arg
        return bound

    def _typed(self, prim: prims.Primitive, p: prims.Param, arg: ast.Arg | None, call: ast.Call):
        if arg is None:
            if p.default is prims.REQUIRED:
                raise S3DSLError(
                    f"{prim.name} needs argument '{p.name}'",
                    call.span,
                    f"signature: {signature(prim)}",
                )
            return p.default
        if p.kind == "target":
            return self._target(arg)
        if p.kind == "schedules":  # resolved against the decode by `_particle_schedules`
            from s3dsl.compiler.particle_schedules import Unresolved

            return Unresolved(arg.value, arg.span)
        value = _literal(arg, self.env)
        if p.kind == "verifier":
            return self._verifier_name(checks.verifier_ref(prim, p, value, arg.span), arg.span)
        return _check_value(prim, p, value, arg.span)

    def _verifier_name(self, name: str, span: Span) -> str:
        if name in self.verifiers:
            return name
        from s3dsl.verifiers.registry import VERIFIERS

        normalized = name.replace("_", "-").lower()
        if normalized == TASK_VERIFIER:
            normalized = self.task_verifier
        if normalized in VERIFIERS:
            self.verifiers.setdefault(name, VerifierSpec(name, ((1.0, normalized, ()),)))
            return name
        raise S3DSLError(
            f"unknown verifier '{name}'",
            span,
            did_you_mean(name, [*self.verifiers, *VERIFIERS, TASK_VERIFIER]),
        )

    def _target(self, arg: ast.Arg) -> tuple[str, dict]:
        call = arg.value
        if isinstance(call, str) and call in ("power", "tilted"):
            raise S3DSLError(
                f"target {call} needs its arguments", arg.span, "write power(4.0) or tilted(v, 0.5)"
            )
        if not isinstance(call, ast.Call) or call.name not in ("power", "tilted"):
            raise S3DSLError(
                "target must be power(alpha) or tilted(verifier, beta)",
                arg.span,
                "e.g. target=power(4.0)",
            )
        values = [_literal(a, self.env) for a in call.args]
        values += [_literal(a, self.env) for _, a in call.kwargs]
        if call.name == "power":
            if len(values) != 1:
                raise S3DSLError("power takes one number, alpha", call.span, "e.g. power(4.0)")
            return ("power", {"alpha": float(checks.number(values[0], "power(alpha)", call.span))})
        if len(values) != 2 or not isinstance(values[0], str):
            raise S3DSLError("tilted takes a verifier and beta > 0", call.span, "tilted(v, 0.5)")
        beta = float(checks.number(values[1], "tilted(beta)", call.span, low=1e-9))
        return ("tilted", {"verifier": self._verifier_name(values[0], call.span), "beta": beta})

    def _schedule(self, prim: prims.Primitive, bound: dict, call: ast.Call, phase: str) -> Schedule:
        present = {k: bound[k] for k in prims.SCHEDULE_KEYS if k in bound}
        if not present:
            return Schedule()
        static = [k for k in ("at", "every", "offset") if k in present]
        if static and phase != "step":
            raise S3DSLError(
                f"'{static[0]}' only applies in the step pipeline", present[static[0]].span
            )
        at = every = None
        offset = 0
        if "at" in present:
            at = _literal(present["at"], self.env)
            if not isinstance(at, str) or at not in prims.AT_CHOICES:
                raise S3DSLError(
                    f"unknown schedule point {checks.shown(at)}",
                    present["at"].span,
                    did_you_mean(str(at), prims.AT_CHOICES),
                )
        if "every" in present:
            every = _literal(present["every"], self.env)
            if isinstance(every, bool) or not isinstance(every, int) or every < 1:
                raise S3DSLError("every must be a positive integer", present["every"].span)
        if "offset" in present:
            offset = _literal(present["offset"], self.env)
            if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
                raise S3DSLError("offset must be a non-negative integer", present["offset"].span)
            if every is None:
                raise S3DSLError("offset needs every", present["offset"].span)
        when = when_text = None
        if "when" in present:
            if not prim.takes_when:
                raise S3DSLError(
                    f"{prim.name} cannot take a runtime condition",
                    present["when"].span,
                    "drop when=",
                )
            from s3dsl.dsl.expr import compile_condition

            raw = present["when"].value
            if not isinstance(raw, (str, ast.Expr)):
                raise S3DSLError(f"when= must be a condition string, got {checks.shown(raw)}",
                                 present["when"].span, 'e.g. when="ess < 0.5"')
            when_text = raw.text if isinstance(raw, ast.Expr) else raw
            when = compile_condition(
                when_text, prims.CONDITION_NAMES, present["when"].span, params=self.env
            )
        return Schedule(at, every, offset, when, when_text)


def _check_value(prim: prims.Primitive, p: prims.Param, value: Any, span: Span) -> Any:
    return checks.check_arg(prim, p, value, span)


def signature(prim: prims.Primitive) -> str:
    parts = []
    for p in prim.params:
        parts.append(p.name if p.default is prims.REQUIRED else f"{p.name}={p.default!r}")
    return f"{prim.name}({', '.join(parts)})"


# -- shapes and order: every path of the schedule (s3dsl.compiler.branches) ------------------

__all__ = ["MAX_PARTICLES", "build", "infer_shapes", "signature"]
