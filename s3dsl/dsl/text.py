"""The compact text form (`grammar.lark`): text -> strategy AST, with human syntax errors.

Used for whole `.s3` files and for the pipeline / verifier strings embedded in the YAML form, so
both forms share one grammar and produce the same AST. The grammar and name rules are in
`grammar`, the tree -> AST transform in `tree`, the error messages in `syntax_errors`.
"""

from __future__ import annotations

from lark import Tree
from lark.exceptions import UnexpectedInput, VisitError

from s3dsl.dsl.ast import Expr, Literal, Pipeline, Strategy, VerifierTerm
from s3dsl.dsl.grammar import parser
from s3dsl.dsl.limits import MAX_NESTING
from s3dsl.dsl.source import Locator, SourceMap
from s3dsl.dsl.syntax_errors import syntax_error
from s3dsl.dsl.tree import Builder, assemble
from s3dsl.errors import S3DSLError

__all__ = ["parse_pipeline", "parse_text_strategy", "parse_value", "parse_verifier"]


# ---- public entry points --------------------------------------------------------------------


def parse_pipeline(text: str, file: str = "<pipeline>", locator: Locator | None = None) -> Pipeline:
    """`expand(4) | denoise | score(v)` -> Pipeline; an empty text is an empty pipeline."""
    loc = locator or SourceMap(text, file)
    if not text.strip():
        return Pipeline((), loc.span(0, len(text)))
    return _parse(text, "inline_pipeline", loc)


def parse_verifier(
    text: str, file: str = "<verifier>", locator: Locator | None = None
) -> tuple[VerifierTerm, ...]:
    """`arith-heuristic + 0.5 * confidence` -> weighted terms (weight 1.0 when none is written)."""
    return _parse(text, "inline_verifier", locator or SourceMap(text, file))


def parse_value(text: str, file: str = "<value>", locator: Locator | None = None) -> Literal | Expr:
    """One value as written in an argument list (for `--set key=value` overrides)."""
    return _parse(text, "inline_value", locator or SourceMap(text, file)).value


def parse_text_strategy(text: str, filename: str = "<string>") -> Strategy:
    """A whole strategy in the text form (a `.s3` file)."""
    source = SourceMap(text, filename)
    statements = _parse(text, "strategy", source)
    return assemble(statements, text, source)


# ---- parse + transform ----------------------------------------------------------------------


def _parse(text: str, start: str, loc: Locator):
    try:
        tree = parser().parse(text, start=start)
    except UnexpectedInput as exc:
        raise syntax_error(exc, text, loc) from None
    _check_depth(tree, loc)  # the transformer recurses once per level
    try:
        return Builder(text, loc).transform(tree)
    except VisitError as exc:
        if isinstance(exc.orig_exc, S3DSLError):
            raise exc.orig_exc from None
        raise


def _check_depth(tree: Tree, loc: Locator) -> None:
    """Refuse trees deeper than MAX_NESTING (`[[[...`, `((1))`, `1+1+...`), walking without
    recursion, so a hostile value gets an error at its position instead of a RecursionError."""
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_NESTING:
            meta = node.meta
            start = getattr(meta, "start_pos", 0) or 0
            raise S3DSLError(
                f"value nested deeper than {MAX_NESTING} levels",
                loc.span(start, start + 1),
                "brackets, parentheses and each operator of a sum count one level",
            )
        stack.extend((child, depth + 1) for child in node.children if isinstance(child, Tree))
