"""Stages: bind a call's arguments to its primitive's signature, type-check them, read its schedule.

Every error points at the span of what the user wrote and, where it can, says what was meant.
"""

from __future__ import annotations

from typing import Any

from s3dsl.compiler import primitives as prims
from s3dsl.compiler import values as checks
from s3dsl.compiler.decode import literal
from s3dsl.compiler.ir import Op, Schedule, VerifierSpec
from s3dsl.dsl import ast
from s3dsl.errors import S3DSLError, did_you_mean
from s3dsl.spans import Span

TASK_VERIFIER = "task-default"  # stands for the task's own verifier, so strategies stay generic


def verifier_spec(v: ast.VerifierDef, env: dict, task_verifier: str) -> VerifierSpec:
    from s3dsl.verifiers.registry import VERIFIERS, get_verifier

    terms = []
    for term in v.terms:
        builtin = task_verifier if term.builtin == TASK_VERIFIER else term.builtin
        options = tuple((o.name, literal(o.value, env)) for o in term.options)
        options = checks.verifier_options(builtin, options, term.span)
        try:
            get_verifier(builtin, **dict(options))
        except S3DSLError as err:
            hint = err.hint
            if "unknown verifier" in err.message:
                hint = did_you_mean(builtin, [*VERIFIERS, TASK_VERIFIER])
            raise S3DSLError(err.message, term.span, hint) from None
        weight = checks.weight(literal(term.weight, env), builtin, term.weight.span)
        terms.append((weight, builtin, options))
    return VerifierSpec(v.name, tuple(terms))


class OpBuilder:
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
        if p.kind == "schedules":  # resolved against the decode by build's `_particle_schedules`
            from s3dsl.compiler.particle_schedules import Unresolved

            return Unresolved(arg.value, arg.span)
        value = literal(arg, self.env)
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
        values = [literal(a, self.env) for a in call.args]
        values += [literal(a, self.env) for _, a in call.kwargs]
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
            at = literal(present["at"], self.env)
            if not isinstance(at, str) or at not in prims.AT_CHOICES:
                raise S3DSLError(
                    f"unknown schedule point {checks.shown(at)}",
                    present["at"].span,
                    did_you_mean(str(at), prims.AT_CHOICES),
                )
        if "every" in present:
            every = literal(present["every"], self.env)
            if isinstance(every, bool) or not isinstance(every, int) or every < 1:
                raise S3DSLError("every must be a positive integer", present["every"].span)
        if "offset" in present:
            offset = literal(present["offset"], self.env)
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
            from s3dsl.dsl.conditions import compile_condition

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
