"""JSON Schema (draft 2020-12) of the YAML form, for editor completion and validation.

The DSL does not know primitive or verifier signatures (the compiler owns them), so the compiler
passes their names (and, optionally, one-line descriptions) in to get enums with documentation.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(-[A-Za-z0-9_]+)*$"
IDENTIFIER_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"

Names = Iterable[str] | Mapping[str, str] | None


def _described(names: Names) -> dict[str, str] | None:
    if names is None:
        return None
    if isinstance(names, Mapping):
        return {str(k): str(v) for k, v in names.items()}
    return {str(n): "" for n in names}


def _keyed(names: dict[str, str] | None, value: dict) -> dict:
    """An object keyed by names: free names by pattern, or an enum with per-name descriptions."""
    if names is None:
        return {"propertyNames": {"pattern": NAME_PATTERN}, "additionalProperties": value}
    properties = {n: ({**value, "description": d} if d else dict(value)) for n, d in names.items()}
    return {
        "propertyNames": {"enum": sorted(names)},
        "properties": properties,
        "additionalProperties": False,
    }


def strategy_json_schema(primitives: Names = None, verifiers: Names = None) -> dict:
    """The schema of a YAML strategy file; `primitives`/`verifiers` add name enums."""
    prims = _described(primitives)
    verifs = _described(verifiers)
    value_ref = {"$ref": "#/$defs/value"}
    stage = {
        "type": "object",
        "description": "One stage {primitive: args}: args is a scalar (one positional "
        "argument), a list (positional) or a mapping (keyword arguments).",
        "minProperties": 1,
        "maxProperties": 1,
        **_keyed(prims, {"$ref": "#/$defs/stageArgs"}),
    }
    weight = {
        "description": "The weight of this built-in in the sum (default 1).",
        "anyOf": [{"type": "number"}, {"$ref": "#/$defs/expression"}],
    }
    term = {
        "anyOf": [
            {"type": "null", "description": "Weight 1."},
            weight,
            {
                "type": "object",
                "description": "Options of the built-in; `weight` is its weight in the sum.",
                "properties": {"weight": weight},
                "additionalProperties": value_ref,
            },
        ]
    }
    pipeline = {
        "description": "A pipeline: a text-form string `a(...) | b | c(...)`, or a list whose "
        "items are pipeline strings (spliced in) or {primitive: args} stages.",
        "anyOf": [
            {"type": "string"},
            {"type": "null"},
            {"type": "array", "items": {"anyOf": [{"type": "string"}, {"$ref": "#/$defs/stage"}]}},
        ],
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "s3dsl strategy (YAML form)",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "description": "Strategy name (default: file stem)."},
            "description": {"type": "string", "description": "One-line summary."},
            "params": {
                "type": "object",
                "description": "Tunable params, typed by their default values; referenced as "
                "${name} and overridable with --set name=value.",
                "propertyNames": {"pattern": IDENTIFIER_PATTERN},
                "additionalProperties": value_ref,
            },
            "decode": {
                "type": "object",
                "description": "Decoding defaults (steps, block_length, temperature, ...).",
                "additionalProperties": value_ref,
            },
            "verifiers": {
                "type": "object",
                "description": "Named verifiers: weighted sums of built-in verifiers.",
                "additionalProperties": {"$ref": "#/$defs/verifier"},
            },
            "program": {
                "type": "object",
                "description": "What runs once before decoding (init), at every denoising step "
                "(step) and once at the end (final).",
                "additionalProperties": False,
                "properties": {
                    "init": {"$ref": "#/$defs/pipeline"},
                    "step": {"$ref": "#/$defs/pipeline"},
                    "final": {"$ref": "#/$defs/pipeline"},
                },
            },
        },
        "$defs": {
            "expression": {
                "type": "string",
                "pattern": r"\$\{",
                "description": "A value computed from params, e.g. ${particles * 2}.",
            },
            "scalar": {"type": ["integer", "number", "boolean", "string", "null"]},
            "value": {
                "anyOf": [
                    {"$ref": "#/$defs/scalar"},
                    {"type": "array", "items": value_ref},
                    {"$ref": "#/$defs/stage"},
                ]
            },
            "stageArgs": {
                "anyOf": [
                    {"$ref": "#/$defs/scalar"},
                    {"type": "array", "items": value_ref},
                    {"type": "object", "additionalProperties": value_ref},
                ]
            },
            "stage": stage,
            "pipeline": pipeline,
            "verifier": {
                "anyOf": [
                    {
                        "type": "string",
                        "description": "A weighted sum, e.g. arith-heuristic + 0.5 * confidence.",
                    },
                    {"type": "object", "minProperties": 1, **_keyed(verifs, term)},
                ]
            },
        },
    }


# -- the schema of what the compiler accepts --------------------------------------------------
# The DSL cannot import the compiler (imports point one way), so the compiler describes its
# signatures with these plain records (`s3dsl.compiler.signatures`) and this turns them into a
# schema. What a schema cannot see is left open: text-form pipeline strings, `${...}` values
# (typed only once params are known), `when` condition texts, which verifier a name refers to,
# stage order, particle counts and block divisibility.


@dataclass(frozen=True)
class ArgSpec:
    name: str
    kind: str  # int | float | bool | choice | verifier | target | str | any
    choices: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None
    required: bool = False
    nullable: bool = False
    doc: str = ""
    low_exclusive: bool = False  # `low` itself is rejected (e.g. denoise's threshold)


@dataclass(frozen=True)
class StageSpec:
    name: str
    doc: str
    args: tuple[ArgSpec, ...]
    aliases: tuple[str, ...] = ()
    phases: tuple[str, ...] = ("init", "step", "final")
    takes_when: bool = True


@dataclass(frozen=True)
class Signatures:
    stages: tuple[StageSpec, ...]
    schedule: tuple[ArgSpec, ...]  # at, every, offset (step only), when
    decode: tuple[ArgSpec, ...]
    verifiers: dict[str, tuple[str, tuple[str, ...]]]  # name -> (doc, option names)
    task_verifier: str = "task-default"
    step_needs: tuple[str, ...] = ("denoise",)  # the step pipeline must run one of these


EXPR = {"$ref": "#/$defs/expression"}


def name_pattern(name: str) -> str:
    """A regex for every spelling the compiler reads as `name`: any case, `_` for `-`."""
    out = []
    for ch in name:
        if ch.isalpha():
            out.append(f"[{ch.lower()}{ch.upper()}]")
        elif ch in "-_":
            out.append("[-_]")
        else:
            out.append(re.escape(ch))
    return "^" + "".join(out) + "$"


def _typed(arg: ArgSpec) -> dict:
    """The schema of one argument value: its type, or a `${...}` expression."""
    if arg.kind == "target":
        return {"$ref": "#/$defs/target"}
    if arg.kind == "schedules":
        return _schedules(arg)
    base: dict
    if arg.kind == "int":
        base = {"type": "integer"}
    elif arg.kind == "float":
        base = {"type": "number"}
    elif arg.kind == "bool":
        base = {"type": "boolean"}
    elif arg.kind == "choice":
        base = {"enum": list(arg.choices)}
    elif arg.kind in ("verifier", "str"):
        base = {"type": "string"}
    else:
        return {"$ref": "#/$defs/value"}
    if arg.low is not None:
        base["exclusiveMinimum" if arg.low_exclusive else "minimum"] = arg.low
    if arg.high is not None:
        base["maximum"] = arg.high
    options = [base, EXPR]
    if arg.nullable:
        options.append({"type": "null"})
    out: dict = {"anyOf": options}
    if arg.doc:
        out["description"] = arg.doc
    return out


SCHEDULE_SETTINGS = {"block_length": {"type": "integer", "minimum": 1},
                     "steps": {"type": "integer", "minimum": 1}, "commit": {"type": "string"},
                     "temperature": {"type": "number", "minimum": 0},
                     "threshold": {"type": "number", "exclusiveMinimum": 0, "maximum": 1}}


def _schedules(arg: ArgSpec) -> dict:
    """`expand(schedules=[...])`: a list of block lengths or {schedule: {settings}} mappings."""
    setting = {k: {"anyOf": [v, EXPR]} for k, v in SCHEDULE_SETTINGS.items()}
    one = {"type": "object", "additionalProperties": False, "required": ["schedule"],
           "properties": {"schedule": {"anyOf": [
               {"type": "object", "properties": setting, "additionalProperties": False},
               {"type": "null"}]}}}
    items = {"anyOf": [{"type": "integer", "minimum": 1}, EXPR, one]}
    out: dict = {"anyOf": [{"type": "array", "minItems": 1, "items": items}, EXPR]}
    if arg.doc:
        out["description"] = arg.doc
    return out


def _stage_args(stage: StageSpec, schedule: tuple[ArgSpec, ...], phase: str) -> dict:
    """args null (none), a scalar (the first argument), a list (positional) or a mapping."""
    required = [a.name for a in stage.args if a.required]
    keyed = {a.name: _typed(a) for a in stage.args}
    for s in schedule:
        static = s.name != "when"
        if (static and phase == "step") or (not static and stage.takes_when):
            keyed[s.name] = _typed(s)
    mapping: dict = {
        "type": "object",
        "properties": keyed,
        "additionalProperties": False,
        "required": required,
    }
    if "offset" in keyed:
        mapping["dependentRequired"] = {"offset": ["every"]}
    forms: list[dict] = [mapping]
    if stage.args:
        forms.append({
            "type": "array",
            "prefixItems": [_typed(a) for a in stage.args],
            "items": False,
            "minItems": len(required),
        })
        if len(required) <= 1:
            first = _typed(stage.args[0])
            forms.append({"allOf": [{"not": {"type": ["array", "object", "null"]}}, first]})
    if not required:
        forms.append({"type": "null"})
    return {"anyOf": forms}


def _stage(sigs: Signatures, phase: str) -> dict:
    patterns: dict[str, dict] = {}
    for st in sigs.stages:
        if phase not in st.phases:
            continue
        args = {**_stage_args(st, sigs.schedule, phase), "description": st.doc}
        for name in (st.name, *st.aliases):
            patterns[name_pattern(name)] = args
    return {
        "type": "object",
        "description": f"One {phase} stage {{primitive: args}}.",
        "minProperties": 1,
        "maxProperties": 1,
        "patternProperties": patterns,
        "additionalProperties": False,
    }


def _pipeline(phase: str, needs: tuple[str, ...] | None = None) -> dict:
    ref = {"$ref": f"#/$defs/stage_{phase}"}
    schema: dict = {
        "anyOf": [
            {"type": "null"},
            {"type": "string", "description": "A text-form pipeline `a(...) | b | c(...)`."},
            {"type": "array", "items": {"anyOf": [{"type": "string"}, ref]}},
        ]
    }
    if needs:
        word = "|".join(name_pattern(n)[1:-1] for n in needs)
        in_text = {"type": "string", "pattern": rf"(^|\|)\s*({word})\s*(\(|\||$)"}
        as_stage = {"type": "object", "patternProperties": {
            name_pattern(n): True for n in needs}, "minProperties": 1,
            "additionalProperties": False}
        schema = {"anyOf": [in_text, {"type": "array", "items": {"anyOf": [
            {"type": "string"}, ref]}, "contains": {"anyOf": [in_text, as_stage]}}],
            "description": f"Must run {' or '.join(needs)}."}
    return schema


def _verifier_terms(sigs: Signatures) -> dict:
    weight = {"anyOf": [{"type": "number"}, EXPR], "description": "Its weight in the sum."}
    patterns: dict[str, dict] = {}
    for name, (doc, options) in sigs.verifiers.items():
        opts = {"type": "object", "properties": {"weight": weight},
                "patternProperties": {name_pattern(o): {"$ref": "#/$defs/value"}
                                      for o in options},
                "additionalProperties": False}
        patterns[name_pattern(name)] = {"anyOf": [{"type": "null"}, weight, opts],
                                        "description": doc}
    any_options = {"type": "object", "properties": {"weight": weight},
                   "additionalProperties": {"$ref": "#/$defs/value"}}
    patterns["^" + re.escape(sigs.task_verifier) + "$"] = {
        "anyOf": [{"type": "null"}, weight, any_options], "description": "the task's own"}
    return {"type": "object", "minProperties": 1, "patternProperties": patterns,
            "additionalProperties": False}


def signature_json_schema(sigs: Signatures) -> dict:
    """The schema of a YAML strategy file that accepts the compiler's names, aliases, argument
    forms, types, ranges and choices, and rejects what the compiler rejects among them."""
    schema = strategy_json_schema()
    props = schema["properties"]
    props["params"] = {**props["params"], "type": ["object", "null"]}
    props["decode"] = {
        "type": ["object", "null"],
        "description": "Decoding settings.",
        "properties": {a.name: _typed(a) for a in sigs.decode},
        "additionalProperties": False,
    }
    props["verifiers"]["additionalProperties"] = {
        "anyOf": [{"type": "string", "description": "A weighted sum, e.g. a + 0.5 * b."},
                  _verifier_terms(sigs)]
    }
    props["program"] = {
        **props["program"],
        "type": "object",
        "required": ["step"],
        "properties": {p: _pipeline(p, sigs.step_needs if p == "step" else None)
                       for p in ("init", "step", "final")},
    }
    schema["required"] = ["program"]
    defs = schema["$defs"]
    for phase in ("init", "step", "final"):
        defs[f"stage_{phase}"] = _stage(sigs, phase)
    one_number = {"anyOf": [{"type": "number"}, EXPR]}
    defs["target"] = {
        "description": "power(alpha) or tilted(verifier, beta) as a single-key mapping.",
        "type": "object", "minProperties": 1, "maxProperties": 1, "additionalProperties": False,
        "properties": {
            "power": {"anyOf": [
                one_number,
                {"type": "array", "prefixItems": [one_number], "items": False, "minItems": 1},
                {"type": "object", "minProperties": 1, "maxProperties": 1,
                 "additionalProperties": one_number}]},
            "tilted": {"anyOf": [
                {"type": "array", "minItems": 2, "items": False,
                 "prefixItems": [{"type": "string"},
                                 {"anyOf": [{"type": "number", "exclusiveMinimum": 0}, EXPR]}]},
                {"type": "object", "minProperties": 2, "maxProperties": 2,
                 "additionalProperties": {"anyOf": [{"type": "string"}, {"type": "number"}]}}]},
        },
    }
    return schema
