"""The YAML form of a strategy: PyYAML's safe composer (nodes with marks) -> strategy AST.

We compose rather than load so every value keeps its position, and we resolve scalars with the
YAML 1.2 core schema (`on`/`yes` stay strings, `1e-3` is a float) instead of PyYAML's 1.1 rules.
Pipeline and verifier strings are parsed by the text form, with spans mapped back into this file.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import yaml
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

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
from s3dsl.dsl.grammar import IDENTIFIER, NAME
from s3dsl.dsl.limits import (
    MAX_ALIAS_NODES,
    MAX_NESTING,
    MAX_NUMBER_CHARS,
    check_int_range,
    number_literal,
)
from s3dsl.dsl.source import EmbeddedMap, SourceMap
from s3dsl.dsl.text import parse_pipeline, parse_verifier
from s3dsl.errors import S3DSLError, did_you_mean, printable
from s3dsl.spans import Span

TOP_LEVEL_KEYS = ("name", "description", "params", "decode", "verifiers", "program")
PROGRAM_KEYS = ("init", "step", "final")
_TAG = "tag:yaml.org,2002:"


class CoreLoader(yaml.SafeLoader):
    """SafeLoader whose implicit scalar types follow the YAML 1.2 core schema, and whose composer
    refuses nesting deeper than MAX_NESTING, recursive aliases, and aliases that would add more
    than MAX_ALIAS_NODES nodes (a few hundred bytes of "billion laughs" expand to gigabytes)."""

    yaml_implicit_resolvers: dict = {}

    def __init__(self, stream: str, filename: str = "<string>"):
        super().__init__(stream)
        self.filename = filename
        self.depth = 0
        self.alias_nodes = 0
        self.composed: set[int] = set()  # ids of nodes whose composition has finished
        self.measured: dict[int, tuple[int, int]] = {}  # id -> (nodes, height) of a subtree

    def error(self, message: str, mark, hint: str | None = None) -> S3DSLError:
        return S3DSLError(message, Span(self.filename, mark.line + 1, mark.column + 1), hint)

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, AliasEvent) and event.anchor in self.anchors:
            target = self.anchors[event.anchor]
            if id(target) not in self.composed:
                raise self.error(f"recursive alias *{event.anchor}", event.start_mark,
                                 "an alias cannot refer to the node that contains it")
            nodes, height = self.measure(target)
            self.alias_nodes += nodes
            if self.alias_nodes > MAX_ALIAS_NODES:
                raise self.error(
                    f"aliases expand to more than {MAX_ALIAS_NODES:,} YAML nodes",
                    event.start_mark, "write the values out, or use fewer aliases",
                )
            if self.depth + height > MAX_NESTING:
                raise self.error(f"nesting deeper than {MAX_NESTING} levels", event.start_mark)
            return super().compose_node(parent, index)
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.error(f"nesting deeper than {MAX_NESTING} levels", event.start_mark,
                             "a strategy file needs a few levels; check the brackets")
        try:
            node = super().compose_node(parent, index)
        finally:
            self.depth -= 1
        self.composed.add(id(node))
        return node

    def measure(self, node: Node) -> tuple[int, int]:
        """Nodes and height of a finished subtree, memoized (shared subtrees are counted once
        per reference, as expanding them would)."""
        known = self.measured.get(id(node))
        if known is not None:
            return known
        children: list[Node] = []
        if isinstance(node, SequenceNode):
            children = list(node.value)
        elif isinstance(node, MappingNode):
            children = [n for pair in node.value for n in pair]
        sizes = [self.measure(child) for child in children]
        result = (1 + sum(n for n, _ in sizes), 1 + max((h for _, h in sizes), default=0))
        self.measured[id(node)] = result
        return result


_SCALAR_SYNTAX = {
    "bool": re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    "int": re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
    "float": re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    "null": re.compile(r"^(?:~|null|Null|NULL|)$"),
}
_FIRST_CHARS = {
    "bool": list("tTfF"),
    "int": list("-+0123456789"),
    "float": list("-+0123456789."),
    "null": ["~", "n", "N", ""],
}
for _kind, _pattern in _SCALAR_SYNTAX.items():
    CoreLoader.add_implicit_resolver(_TAG + _kind, _pattern, _FIRST_CHARS[_kind])


def compose(text: str, filename: str) -> Node | None:
    """The YAML node tree; YAML syntax errors become S3DSLErrors at the problem mark."""
    loader: CoreLoader | None = None
    try:
        loader = CoreLoader(text, filename)  # the reader checks every character here
        return loader.get_single_node()
    except yaml.reader.ReaderError as exc:
        line, column = SourceMap(text, filename).position(exc.position)
        code = exc.character if isinstance(exc.character, int) else 0
        raise S3DSLError(
            f"invalid YAML: control character U+{code:04X} is not allowed",
            Span(filename, line, column),
            'remove it, or write it as an escape in a double-quoted string ("\\x07")',
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        span = Span(filename, mark.line + 1, mark.column + 1) if mark else None
        problem = exc.problem or "invalid YAML"
        raise S3DSLError(f"invalid YAML: {problem}", span, exc.context) from None
    except yaml.YAMLError as exc:
        raise S3DSLError(f"invalid YAML: {exc}", Span(filename, 1, 1)) from None
    finally:
        if loader is not None:
            loader.dispose()


def parse_yaml_strategy(text: str, filename: str = "<string>") -> Strategy:
    """A whole strategy in the YAML form (a `.yaml`/`.yml` file)."""
    root = compose(text, filename)
    return _Reader(text, filename).strategy(root)


class _Reader:
    """Walks the node tree; knows the file so it can make spans and embedded-text locators."""

    def __init__(self, text: str, filename: str):
        self.text = text
        self.file = filename
        self.source = SourceMap(text, filename)

    # -- spans and node checks
    def span(self, node: Node, end: Node | None = None) -> Span:
        start, stop = node.start_mark, (end or node).end_mark
        return Span(self.file, start.line + 1, start.column + 1, stop.line + 1, stop.column + 1)

    def mapping(self, node: Node, what: str) -> list[tuple[str, Node, Node]]:
        """(key, key node, value node) of a mapping, refusing other kinds and duplicate keys."""
        if not isinstance(node, MappingNode):
            raise S3DSLError(f"{what} must be a mapping (key: value lines)", self.span(node))
        items: list[tuple[str, Node, Node]] = []
        seen: dict[str, Span] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                raise S3DSLError(f"a key in {what} must be a plain name", self.span(key_node))
            key = str(key_node.value)
            if key in seen:
                raise S3DSLError(
                    f"duplicate key '{key}' in {what}",
                    self.span(key_node),
                    f"first given at {seen[key]}",
                )
            seen[key] = self.span(key_node)
            items.append((key, key_node, value_node))
        return items

    def check_keys(self, items, valid: tuple[str, ...], what: str) -> None:
        for key, key_node, _ in items:
            if key not in valid:
                raise S3DSLError(
                    f"unknown key '{key}' in {what}", self.span(key_node), did_you_mean(key, valid)
                )

    def string(self, node: Node, what: str) -> str:
        if not isinstance(node, ScalarNode) or node.tag != _TAG + "str":
            raise S3DSLError(f"{what} must be a string", self.span(node))
        return str(node.value)

    # -- values
    def scalar(self, node: ScalarNode):
        """Core-schema scalar -> Python value; strings mentioning ${ become Expr.

        An explicit tag (`!!int abc`) is checked against its type's syntax, like an implicit one.
        """
        tag, raw = node.tag, str(node.value)
        if tag == _TAG + "str":
            return Expr(raw) if "${" in raw else raw
        kind = tag[len(_TAG):] if tag.startswith(_TAG) else ""
        if kind not in _SCALAR_SYNTAX:
            raise S3DSLError(
                f"unsupported YAML tag {printable(tag)}", self.span(node), "write a plain value"
            )
        if not _SCALAR_SYNTAX[kind].match(raw):
            raise S3DSLError(f"'{raw[:40]}' is not a valid !!{kind}", self.span(node))
        if kind == "null":
            return None
        if kind == "bool":
            return raw.lower() == "true"
        if kind == "int":
            body = raw.lstrip("+")
            if body.startswith(("0o", "0x")):
                if len(body) > MAX_NUMBER_CHARS:
                    return number_literal(body, self.span(node))  # refuses it as too long
                value = int(body[2:], 8 if body[1] == "o" else 16)
                return check_int_range(value, raw, self.span(node))
            return number_literal(body, self.span(node))
        lowered = raw.lower()
        if lowered.endswith(".nan"):
            return math.nan
        if lowered.endswith(".inf"):
            return -math.inf if lowered.startswith("-") else math.inf
        return float(number_literal(raw, self.span(node)))

    def value(self, node: Node):
        if isinstance(node, ScalarNode):
            return self.scalar(node)
        if isinstance(node, SequenceNode):
            return [self.value(item) for item in node.value]
        if isinstance(node, MappingNode) and len(node.value) == 1:
            return self.call(node)  # a nested call value: {power: 4.0}
        raise S3DSLError(
            "a mapping is not a value here",
            self.span(node),
            "write a nested call as a single-key mapping, e.g. {power: 4.0}",
        )

    def settings(self, node: Node, what: str, identifiers: bool = False) -> tuple[Setting, ...]:
        if isinstance(node, ScalarNode) and node.tag == _TAG + "null":
            return ()
        out: list[Setting] = []
        for key, key_node, value_node in self.mapping(node, what):
            if identifiers and not IDENTIFIER.match(key):
                raise S3DSLError(
                    f"param name '{key}' is not an identifier",
                    self.span(key_node),
                    "use letters, digits and '_' (params are referenced as ${name})",
                )
            arg = Arg(self.value(value_node), self.span(value_node))
            out.append(Setting(key, arg, self.span(key_node, value_node)))
        return tuple(out)

    # -- pipelines
    def embedded(self, node: ScalarNode) -> EmbeddedMap:
        start, end = node.start_mark.index, node.end_mark.index
        return EmbeddedMap(str(node.value), self.source, start, end)

    def call(self, node: MappingNode) -> Call:
        """`{primitive: args}`: args null (none), scalar (one), list (positional), mapping (kw)."""
        if not isinstance(node, MappingNode) or len(node.value) != 1:
            raise S3DSLError(
                "a pipeline stage must be a single-key mapping {primitive: args}",
                self.span(node),
                "e.g. - resample: {n: 4, method: ssp}",
            )
        key_node, args_node = node.value[0]
        name = str(key_node.value) if isinstance(key_node, ScalarNode) else ""
        if not NAME.match(name):
            raise S3DSLError(f"'{name}' is not a primitive name", self.span(key_node))
        args: tuple[Arg, ...] = ()
        kwargs: tuple[tuple[str, Arg], ...] = ()
        if isinstance(args_node, MappingNode):
            items = self.mapping(args_node, f"the arguments of '{name}'")
            kwargs = tuple((key, Arg(self.value(v), self.span(k, v))) for key, k, v in items)
        elif isinstance(args_node, SequenceNode):
            args = tuple(Arg(self.value(item), self.span(item)) for item in args_node.value)
        elif args_node.tag != _TAG + "null":
            args = (Arg(self.scalar(args_node), self.span(args_node)),)
        return Call(name, args, kwargs, self.span(node))

    def pipeline(self, node: Node, what: str) -> Pipeline:
        """A text pipeline string, or a list of strings (spliced) and {primitive: args} items."""
        if isinstance(node, ScalarNode):
            if node.tag == _TAG + "null":
                return Pipeline((), self.span(node))
            text = self.string(node, what)
            return parse_pipeline(text, self.file, self.embedded(node))
        if not isinstance(node, SequenceNode):
            raise S3DSLError(
                f"{what} must be a pipeline string or a list of stages",
                self.span(node),
                "e.g. step: expand(4) | denoise | score(v)",
            )
        stages: list[Call] = []
        for item in node.value:
            if isinstance(item, ScalarNode):
                text = self.string(item, f"a stage of {what}")
                stages += parse_pipeline(text, self.file, self.embedded(item)).stages
            else:
                stages.append(self.call(item))
        return Pipeline(tuple(stages), self.span(node))

    # -- verifiers
    def verifier(self, name: str, key_node: Node, node: Node) -> VerifierDef:
        span = self.span(key_node, node)
        if isinstance(node, ScalarNode):
            text = self.string(node, f"verifier '{name}'")
            return VerifierDef(name, parse_verifier(text, self.file, self.embedded(node)), span)
        if not isinstance(node, MappingNode):
            raise S3DSLError(
                f"verifier '{name}' must be an expression string or a mapping {{builtin: weight}}",
                self.span(node),
                "e.g. v: arith-heuristic + 0.5 * confidence",
            )
        terms = []
        for builtin, b_node, spec in self.mapping(node, f"verifier '{name}'"):
            if not NAME.match(builtin):
                raise S3DSLError(f"'{builtin}' is not a verifier name", self.span(b_node))
            terms.append(self.term(builtin, b_node, spec))
        return VerifierDef(name, tuple(terms), span)

    def term(self, builtin: str, key_node: Node, spec: Node) -> VerifierTerm:
        """`builtin: weight`, `builtin: null` (weight 1) or `builtin: {weight: w, option: v}`."""
        span = self.span(key_node, spec)
        if isinstance(spec, MappingNode):
            options = self.settings(spec, f"the options of '{builtin}'")
            weight = next((s.value for s in options if s.name == "weight"), None)
            rest = tuple(s for s in options if s.name != "weight")
            return VerifierTerm(builtin, weight or Arg(1.0, span), rest, span)
        if isinstance(spec, ScalarNode):
            value = self.scalar(spec)
            weight = Arg(1.0, span) if value is None else Arg(value, self.span(spec))
            return VerifierTerm(builtin, weight, (), span)
        raise S3DSLError(
            f"the weight of '{builtin}' must be a number or a mapping of options",
            self.span(spec),
        )

    # -- the whole file
    def strategy(self, root: Node | None) -> Strategy:
        if root is None:
            raise S3DSLError(
                "empty strategy file", Span(self.file, 1, 1), "a strategy needs a program:"
            )
        items = self.mapping(root, "a strategy file")
        self.check_keys(items, TOP_LEVEL_KEYS, "the strategy")
        parts = {key: (key_node, value_node) for key, key_node, value_node in items}
        name = Path(self.file).stem
        description = ""
        if "name" in parts:
            name = self.string(parts["name"][1], "name")
        if "description" in parts:
            description = self.string(parts["description"][1], "description")
        params = self.settings(parts["params"][1], "params", True) if "params" in parts else ()
        decode = self.settings(parts["decode"][1], "decode") if "decode" in parts else ()
        verifiers: tuple[VerifierDef, ...] = ()
        if "verifiers" in parts:
            entries = self.mapping(parts["verifiers"][1], "verifiers")
            verifiers = tuple(self.verifier(k, kn, vn) for k, kn, vn in entries)
        empty_span = Span(self.file, 1, 1)
        sections: dict[str, Pipeline] = {}
        if "program" in parts:
            key_node, program = parts["program"]
            empty_span = self.span(key_node)
            if not (isinstance(program, ScalarNode) and program.tag == _TAG + "null"):
                entries = self.mapping(program, "program")
                self.check_keys(entries, PROGRAM_KEYS, "program")
                for key, _, node in entries:
                    sections[key] = self.pipeline(node, f"program.{key}")
        return Strategy(
            name=name,
            description=description,
            params=params,
            decode=decode,
            verifiers=verifiers,
            init=sections.get("init", Pipeline((), empty_span)),
            step=sections.get("step", Pipeline((), empty_span)),
            final=sections.get("final", Pipeline((), empty_span)),
            span=self.source.whole(),
            source=self.text,
        )
