"""JSON Schema (draft 2020-12) of the YAML form, for editor completion and validation.

The DSL does not know primitive or verifier signatures (the compiler owns them), so the compiler
passes their names (and, optionally, one-line descriptions) in to get enums with documentation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

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
