"""The strategy language front end: text (YAML or `.s3` form) -> untyped AST with spans.

Only syntax and structure are checked here; primitive names, argument types and order are the
compiler's business (`s3dsl.compiler`).
"""

from s3dsl.dsl.ast import (
    Arg,
    Call,
    Expr,
    Pipeline,
    Setting,
    Strategy,
    VerifierDef,
    VerifierTerm,
)
from s3dsl.dsl.conditions import Condition, compile_condition
from s3dsl.dsl.expr import evaluate, references
from s3dsl.dsl.loader import detect_form, load_strategy, parse_strategy
from s3dsl.dsl.printer import (
    format_pipeline,
    format_strategy,
    format_value,
    format_verifier,
)
from s3dsl.dsl.schema import strategy_json_schema
from s3dsl.dsl.text import parse_pipeline, parse_text_strategy, parse_value, parse_verifier
from s3dsl.dsl.yaml_form import parse_yaml_strategy
from s3dsl.errors import S3DSLError, did_you_mean
from s3dsl.spans import Span

__all__ = [
    "Arg",
    "Call",
    "Condition",
    "Expr",
    "Pipeline",
    "S3DSLError",
    "Setting",
    "Span",
    "Strategy",
    "VerifierDef",
    "VerifierTerm",
    "compile_condition",
    "detect_form",
    "did_you_mean",
    "evaluate",
    "format_pipeline",
    "format_strategy",
    "format_value",
    "format_verifier",
    "load_strategy",
    "parse_pipeline",
    "parse_strategy",
    "parse_text_strategy",
    "parse_value",
    "parse_verifier",
    "parse_yaml_strategy",
    "references",
    "strategy_json_schema",
]
