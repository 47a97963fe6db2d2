"""Params and decode settings: `--set` overrides, then the strategy's values, then the defaults.

Expressions (`${...}`) see the params and `gen_length`; every error points at the setting.
"""

from __future__ import annotations

from typing import Any

from s3dsl.compiler import primitives as prims
from s3dsl.compiler import values as checks
from s3dsl.compiler.ir import DecodeConfig
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


def literal(arg: ast.Arg, env: dict[str, Any]) -> Any:
    if isinstance(arg.value, ast.Expr):
        from s3dsl.dsl.expr import evaluate

        return evaluate(arg.value.text, env, arg.span)
    return arg.value


def parse_override(text: str, default: Any, key: str) -> Any:
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


def resolve_params(strategy: ast.Strategy, overrides: dict[str, str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for setting in strategy.params:
        value = literal(setting.value, params)
        if setting.name in overrides:
            value = parse_override(overrides.pop(setting.name), value, setting.name)
        params[setting.name] = value
    known = set(params) | set(DECODE_DEFAULTS)
    for key in overrides:
        if key not in known:
            raise S3DSLError(f"--set {key}: no such param", None, did_you_mean(key, known))
    return params


def resolve_decode(
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
            values[key] = parse_override(overrides[key], default, key)
        elif key in given:
            values[key] = literal(given[key].value, env)
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
