"""The strategy language front end: both surface forms, errors with positions, the evaluator."""

from __future__ import annotations

import builtins
import dataclasses
import math
import textwrap

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from s3dsl.dsl import (
    Arg,
    Call,
    Expr,
    Pipeline,
    S3DSLError,
    Span,
    Strategy,
    VerifierDef,
    compile_condition,
    detect_form,
    evaluate,
    format_pipeline,
    format_strategy,
    format_value,
    format_verifier,
    load_strategy,
    parse_pipeline,
    parse_strategy,
    parse_text_strategy,
    parse_value,
    parse_verifier,
    parse_yaml_strategy,
    references,
    strategy_json_schema,
)

# ---- helpers --------------------------------------------------------------------------------


def strip(node):
    """An AST without spans (and with number types made explicit), for comparing two parses."""
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        fields = dataclasses.fields(node)
        kept = tuple((f.name, strip(getattr(node, f.name))) for f in fields if f.name != "span")
        return (type(node).__name__, tuple(k for k in kept if k[0] != "source"))
    if isinstance(node, (list, tuple)):
        return (type(node).__name__, tuple(strip(x) for x in node))
    if isinstance(node, (bool, int, float)):
        return (type(node).__name__, node)
    return node


def at(text: str, span: Span, length: int) -> str:
    """The source text a span starts at (to check line/column are right)."""
    line = text.splitlines()[span.line - 1]
    return line[span.column - 1 : span.column - 1 + length]


def error(fn, *args) -> S3DSLError:
    with pytest.raises(S3DSLError) as info:
        fn(*args)
    return info.value


S3_YAML = textwrap.dedent(
    """\
    # S3: stratified scaling search
    name: s3
    description: Stratified Scaling Search
    params:            # typed by their default values
      particles: 4
      candidates: 4
      beta: 0.5
    decode:
      steps: 32
      block_length: 32
      temperature: 0.7
      commit: confidence
    verifiers:
      v: arith-heuristic                               # one built-in, weight 1
      w: arith-heuristic + 0.5 * confidence            # compact text form
      h: {arith-heuristic: 1.0, confidence: 0.5}       # mapping form
      g:                                               # with per-term options
        arith-heuristic: {weight: 1.0, structure: 2.0, arithmetic: 1.0}
    program:
      init: expand(${particles})
      step: expand(${candidates}) | denoise | score(v) |
        resample(${particles}, method=ssp, beta=${beta})
      final: select(by=vote)
    """
)

S3_TEXT = textwrap.dedent(
    """\
    # S3: stratified scaling search
    strategy s3 "Stratified Scaling Search"
    param particles = 4
    param candidates = 4
    param beta = 0.5
    decode steps = 32
    decode block_length = 32
    decode temperature = 0.7
    decode commit = confidence
    verifier v = arith-heuristic
    verifier w = arith-heuristic + 0.5 * confidence
    verifier h = arith-heuristic(weight=1.0) + 0.5 * confidence
    verifier g = arith-heuristic(weight=1.0, structure=2.0, arithmetic=1.0)
    init: expand(${particles})
    step: expand(${candidates}) | denoise | score(v) |
          resample(${particles}, method=ssp, beta=${beta})
    final: select(by=vote)
    """
)


# ---- the two forms agree --------------------------------------------------------------------


def test_yaml_and_text_forms_give_the_same_ast():
    from_yaml = parse_yaml_strategy(S3_YAML, "s3.yaml")
    from_text = parse_text_strategy(S3_TEXT, "s3.s3")
    assert strip(from_yaml) == strip(from_text)
    assert from_yaml.name == "s3" and from_yaml.description == "Stratified Scaling Search"
    assert [s.name for s in from_yaml.params] == ["particles", "candidates", "beta"]
    assert from_yaml.source == S3_YAML


def test_yaml_list_items_and_mapping_stages_match_the_string_form():
    listed = textwrap.dedent(
        """\
        params: {particles: 4}
        program:
          step:
            - expand(4) | denoise
            - score: v
            - resample: {n: "${particles}", method: ssp, when: "ess < 0.5"}
            - select: [vote, 2]
            - remask
            - tilt: {target: {power: 4.0}}
        """
    )
    text = (
        'expand(4) | denoise | score(v) | resample(n=${particles}, method=ssp, when="ess < 0.5")'
        " | select(vote, 2) | remask | tilt(target=power(4.0))"
    )
    assert strip(parse_yaml_strategy(listed, "a.yaml").step) == strip(parse_pipeline(text))


def test_format_strategy_round_trips_through_the_text_form():
    original = parse_yaml_strategy(S3_YAML, "s3.yaml")
    printed = format_strategy(original)
    assert strip(parse_text_strategy(printed, "s3.s3")) == strip(original)


def test_missing_sections_are_empty_and_name_defaults_to_the_file_stem():
    strategy = parse_yaml_strategy("program:\n  step: denoise\n", "dir/greedy.yaml")
    assert strategy.name == "greedy" and strategy.description == ""
    assert strategy.init.stages == () and strategy.final.stages == ()
    assert strategy.init.span.line == 1
    assert parse_text_strategy("step: denoise\n", "x/plain.s3").name == "plain"


def test_yaml_core_schema_scalars():
    s = parse_yaml_strategy(
        "decode: {a: on, b: 1e-3, c: yes, d: 010, e: true, f: '4', g: null, h: .inf}", "c.yaml"
    )
    values = {x.name: x.value.value for x in s.decode}
    assert values["a"] == "on" and values["c"] == "yes"
    assert values["b"] == 0.001 and isinstance(values["b"], float)
    assert values["d"] == 10 and values["e"] is True and values["f"] == "4"
    assert values["g"] is None and values["h"] == math.inf


def test_loader_dispatch_and_detection(tmp_path):
    (tmp_path / "s3.yaml").write_text(S3_YAML)
    (tmp_path / "s3.s3").write_text(S3_TEXT)
    assert strip(load_strategy(tmp_path / "s3.yaml")) == strip(load_strategy(tmp_path / "s3.s3"))
    assert detect_form(S3_TEXT, "<stdin>") == "text"
    assert detect_form(S3_YAML, "<stdin>") == "yaml"
    assert strip(parse_strategy(S3_TEXT, "<stdin>")) == strip(parse_strategy(S3_YAML, "<x>"))
    (tmp_path / "s3.txt").write_text(S3_TEXT)
    err = error(load_strategy, tmp_path / "s3.txt")
    assert ".s3" in err.hint
    assert "no such" in error(load_strategy, tmp_path / "missing.yaml").message


# ---- text-form syntax ----------------------------------------------------------------------


def test_values():
    call = parse_pipeline(
        "f(1, -2, 1e-3, -1.5e+2, true, false, null, 'q s', \"d\", ssp, block_start, [1, [2]],"
        " [], power(4.0), tilted(v, 0.5), g())"
    ).stages[0]
    values = [a.value for a in call.args]
    assert values[:7] == [1, -2, 0.001, -150.0, True, False, None]
    assert values[7:11] == ["q s", "d", "ssp", "block_start"]
    assert values[11:13] == [[1, [2]], []]
    power, tilted, g = values[13:]
    assert isinstance(power, Call) and power.name == "power" and power.args[0].value == 4.0
    assert [a.value for a in tilted.args] == ["v", 0.5]
    assert g == Call("g", (), (), g.span)


def test_expressions_keep_the_whole_value_as_written():
    call = parse_pipeline(
        'f(${particles}, ${particles * 2}, ${particles}*2, -${beta}, (${a} + 1) // 2, "${a} x",'
        r' "\${literal}")'
    ).stages[0]
    assert [a.value for a in call.args] == [
        Expr("${particles}"),
        Expr("${particles * 2}"),
        Expr("${particles}*2"),
        Expr("-${beta}"),
        Expr("(${a} + 1) // 2"),
        Expr("${a} x"),
        "${literal}",
    ]


def test_names_with_hyphens_and_keywords_as_identifiers():
    call = parse_pipeline("mh-accept(when=step, at=init, x=final, n=top-5)").stages[0]
    assert call.name == "mh-accept"
    assert [a.value for _, a in call.kwargs] == ["step", "init", "final", "top-5"]
    stages = parse_pipeline("step | init").stages
    assert [s.name for s in stages] == ["step", "init"]


def test_verifier_expressions():
    terms = parse_verifier("arith-heuristic + 0.5 * confidence - 0.1 * x - ${w} * y")
    assert [(t.builtin, t.weight.value) for t in terms] == [
        ("arith-heuristic", 1.0),
        ("confidence", 0.5),
        ("x", -0.1),
        ("y", Expr("-${w}")),
    ]
    (glued,) = parse_verifier("a-b")  # no spaces: one name
    assert glued.builtin == "a-b"
    assert [t.builtin for t in parse_verifier("a - b")] == ["a", "b"]
    (opt,) = parse_verifier("arith-heuristic(weight=2, structure=3.0)")
    assert opt.weight.value == 2 and [(o.name, o.value.value) for o in opt.options] == [
        ("structure", 3.0)
    ]
    assert parse_verifier("-c")[0].weight.value == -1.0


def test_multiline_pipelines_in_the_text_form():
    text = "step: expand(2) |  # continue\n  denoise\n  | score(v)\n\nfinal: select(by=vote)\n"
    s = parse_text_strategy(text, "m.s3")
    assert [c.name for c in s.step.stages] == ["expand", "denoise", "score"]
    assert (s.step.stages[2].span.line, s.step.stages[2].span.column) == (3, 5)


def test_spans_in_the_text_form():
    s = parse_text_strategy(S3_TEXT, "s3.s3")
    resample = s.step.stages[3]
    assert (resample.span.line, resample.span.column) == (16, 7)
    assert at(S3_TEXT, resample.kwargs[1][1].span, 9) == "beta=${be"
    assert at(S3_TEXT, s.params[2].value.span, 3) == "0.5"


@pytest.mark.parametrize(
    ("scalar", "prefix"),
    [
        ("expand(4) | denoise | score(v)", ""),
        ('"expand(4) | denoise | score(v)"', '"'),
        ("'expand(4) | denoise | score(v)'", "'"),
    ],
)
def test_spans_inside_embedded_yaml_pipelines(scalar, prefix):
    text = f"program:\n  step: {scalar}\n"
    s = parse_yaml_strategy(text, "e.yaml")
    for stage in s.step.stages:
        assert stage.span.line == 2
        assert at(text, stage.span, len(stage.name)) == stage.name
    assert s.step.stages[0].span.column == 9 + len(prefix)


def test_spans_inside_folded_plain_yaml_scalars():
    text = "program:\n  step: a\n    b(x=1) | c\n"  # folds to "a b(x=1) | c": a syntax error
    err = error(parse_yaml_strategy, text, "f.yaml")
    assert (err.span.line, err.span.column) == (3, 5) and at(text, err.span, 1) == "b"
    text = "program:\n  step: a |\n    b(x=1) | c\n"
    stages = parse_yaml_strategy(text, "f.yaml").step.stages
    assert [(s.span.line, s.span.column) for s in stages] == [(2, 9), (3, 5), (3, 14)]


def test_spans_inside_multiline_and_block_yaml_scalars():
    text = "program:\n  step: expand(4)\n    | denoise\n  final: |\n    select(by=vote)\n"
    s = parse_yaml_strategy(text, "m.yaml")
    denoise = s.step.stages[1]
    assert (denoise.span.line, denoise.span.column) == (3, 7)
    select = s.final.stages[0]
    assert (select.span.line, select.span.column) == (5, 5)
    assert at(text, select.kwargs[0][1].span, 7) == "by=vote"


# ---- errors: position and hint -------------------------------------------------------------


def test_unknown_top_level_key():
    err = error(parse_yaml_strategy, "name: x\nprogam:\n  step: denoise\n", "k.yaml")
    assert (err.span.file, err.span.line, err.span.column) == ("k.yaml", 2, 1)
    assert err.hint == "did you mean 'program'?"
    assert "k.yaml:2:1" in str(err)
    err = error(parse_yaml_strategy, "program:\n  stpe: denoise\n", "k.yaml")
    assert (err.span.line, err.span.column, err.hint) == (2, 3, "did you mean 'step'?")


def test_bad_token_inside_an_inline_yaml_pipeline():
    text = "program:\n  step: expand(4) | score(v w)\n"
    err = error(parse_yaml_strategy, text, "p.yaml")
    assert (err.span.line, err.span.column) == (2, 29)
    assert at(text, err.span, 1) == "w"
    assert err.hint == "expected ')' or ','"
    quoted = 'program:\n  step: "expand(4) | score(v w)"\n'
    err = error(parse_yaml_strategy, quoted, "p.yaml")
    assert (err.span.line, err.span.column) == (2, 30)


def test_positional_after_keyword():
    err = error(parse_pipeline, "resample(method=ssp, 4)")
    assert (err.span.line, err.span.column) == (1, 22)
    assert "positional" in err.message and "before" in err.hint
    text = "program:\n  step: resample(method=ssp, 4)\n"
    err = error(parse_yaml_strategy, text, "p.yaml")
    assert (err.span.line, err.span.column) == (2, 30)


@pytest.mark.parametrize(
    ("source", "column", "message", "hint"),
    [
        ('f("abc)', 3, "unterminated string", 'close it with " on the same line'),
        ("f(${particles)", 3, "unterminated ${...} expression", "close it with '}'"),
        ("f(a=1, a=2)", 8, "duplicate keyword argument 'a'", "it is already given at <p>:1:3"),
        ("f(1 2)", 5, "unexpected number 2", "expected ')' or ','"),
        ("f(x=1", 6, "unexpected end of the text", "expected ')' or ','"),
        ("f | | g", 5, "unexpected '|'", "expected a name"),
        ("f(1 + 2)", 3, "arithmetic on plain numbers is not a value", None),
        ("f(when=ess < 0.5)", 12, "unexpected character '<'", "quote them"),
        ("f(x=$a)", 5, "'$' must start a ${...} expression", "write ${name}"),
        ("f(", 3, "unexpected end of the text", "expected a value or ')'"),
        ("f(true=1)", 7, "unexpected '='", "cannot be argument names"),
    ],
)
def test_text_syntax_errors(source, column, message, hint):
    err = error(parse_pipeline, source, "<p>")
    assert (err.span.line, err.span.column) == (1, column)
    assert err.message.startswith(message)
    if hint:
        assert hint in err.hint


@pytest.mark.parametrize(
    ("source", "line", "column", "hint"),
    [
        ("stpe: denoise\n", 1, 1, "did you mean 'step'?"),
        ("param x = 1\nstep denoise\n", 2, 6, "expected ':'"),
        ("param a-b = 1\n", 1, 7, "letters, digits"),
        ("step: f\nstep: g\n", 2, 1, "first given at t.s3:1:1"),
        ("param x = 1\nparam x = 2\n", 2, 1, "first given at t.s3:1:1"),
        ("verifier v = a(1)\n", 1, 16, "a(weight=1.0)"),
        ("verifier v = 2 * a(weight=3)\n", 1, 20, "not both"),
        ("param x = 1 param y = 2\n", 1, 13, "expected a line break"),
    ],
)
def test_text_form_statement_errors(source, line, column, hint):
    err = error(parse_text_strategy, source, "t.s3")
    assert (err.span.file, err.span.line, err.span.column) == ("t.s3", line, column)
    assert hint in err.hint


@pytest.mark.parametrize(
    ("source", "line", "column", "message"),
    [
        ("params: [1, 2]\n", 1, 9, "params must be a mapping"),
        ("params:\n  a: 1\n  a: 2\n", 3, 3, "duplicate key 'a'"),
        ("params:\n  top-k: 1\n", 2, 3, "not an identifier"),
        ("program:\n  step: {a: 1}\n", 2, 9, "program.step must be a pipeline string"),
        ("program:\n  step:\n    - {a: 1, b: 2}\n", 3, 7, "single-key mapping"),
        ("program: denoise\n", 1, 10, "program must be a mapping"),
        ("verifiers:\n  v: [a]\n", 2, 6, "verifier 'v' must be"),
        ("name: [x]\n", 1, 7, "name must be a string"),
        ("params:\n  a: {x: 1, y: 2}\n", 2, 6, "a mapping is not a value here"),
        ("params:\n  a: 'x\n", 3, 1, "invalid YAML"),
        ("", 1, 1, "empty strategy file"),
        ("- a\n", 1, 1, "a strategy file must be a mapping"),
    ],
)
def test_yaml_structure_errors(source, line, column, message):
    err = error(parse_yaml_strategy, source, "y.yaml")
    assert (err.span.line, err.span.column) == (line, column)
    assert message in err.message


# ---- the expression evaluator --------------------------------------------------------------

ENV = {"particles": 4, "beta": 0.5, "method": "ssp", "flag": True, "steps": 32}


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("${particles}", 4),
        ("${beta}", 0.5),
        ("${method}", "ssp"),
        ("${flag}", True),
        ("${particles}*2", 8),
        ("${particles * 2}", 8),
        ("${particles} + 2 * 3", 10),
        ("(${particles} + 2) * 3", 18),
        ("${particles - 1 - 1}", 2),
        ("${steps / particles}", 8.0),
        ("${steps // 3}", 10),
        ("-${beta} * 2", -1.0),
        ("${min(particles, 3)}", 3),
        ("max(${particles}, ${steps}, 7)", 32),
        ("${-particles + 10}", 6),
        ("2", 2),
    ],
)
def test_evaluate(text, value):
    result = evaluate(text, ENV)
    assert result == value and type(result) is type(value)


def test_evaluate_errors():
    text = "${partcles} * 2"
    span = Span("e.yaml", 3, 10, 3, 10 + len(text))
    err = error(evaluate, text, ENV, span)
    assert err.hint == "did you mean 'particles'?"
    assert (err.span.line, err.span.column) == (3, 12)
    assert "division by zero" in error(evaluate, "${particles} / (${steps} - 32)", ENV).message
    assert "division by zero" in error(evaluate, "${particles // 0}", ENV).message
    assert "not a number" in error(evaluate, "${method} * 2", ENV).message
    assert "bare name" in error(evaluate, "particles * 2", ENV).message
    assert "unknown function" in error(evaluate, "${pow(particles, 2)}", ENV).message
    assert "expected '}'" in error(evaluate, "${particles", ENV).message


def test_evaluator_never_evaluates_python(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("eval/exec must not be used")

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    for attack in ("${__import__('os')}", "${().__class__}", "${particles.real}", "${[1]}"):
        err = error(evaluate, attack, ENV)
        assert "expression" in err.message or "unknown" in err.message
    assert "unknown function '__import__'" in error(evaluate, "${__import__(1, 2)}", ENV).message
    assert evaluate("${particles} + 1", ENV) == 5


def test_references():
    assert references("${a} + ${min(b, c)} * 2 + max(${d}, 1)") == {"a", "b", "c", "d"}
    assert references("3") == set()


def test_conditions():
    names = ["ess", "step", "progress"]
    cond = compile_condition("step >= 4 and ess < 0.3", names)
    assert cond.names == {"step", "ess"}
    assert cond.evaluate({"step": 5, "ess": 0.2}) is True
    assert cond.evaluate({"step": 3, "ess": 0.2}) is False
    chained = compile_condition("not 0.1 < ess <= ${beta} or step == 0", names, None, ENV)
    assert chained.evaluate({"ess": 0.3, "step": 1}) is False
    assert chained.evaluate({"ess": 0.6, "step": 1}) is True
    assert chained.evaluate({"ess": 0.3, "step": 0}) is True
    assert compile_condition("(ess < 0.5) != false", names).evaluate({"ess": 0.1})
    assert compile_condition("ess / 0 > 1", names).evaluate({"ess": 1.0})  # x/0 is inf, no raise


def test_condition_errors():
    text = "esss < 0.5"
    err = error(compile_condition, text, ["ess", "step"], Span("c.yaml", 4, 20, 4, 32))
    assert err.hint == "did you mean 'ess'?" and (err.span.line, err.span.column) == (4, 21)
    assert error(compile_condition, "ess < ${bet}", ["ess"], None, ENV).hint == (
        "did you mean 'beta'?"
    )
    assert "expected" in error(compile_condition, "ess <", ["ess"]).message
    assert "expected" in error(compile_condition, "ess < 0.5 and", ["ess"]).message
    with pytest.raises(S3DSLError, match="needs a value"):
        compile_condition("ess < 1", ["ess"]).evaluate({})


# ---- schema -----------------------------------------------------------------------------


def test_schema_shape_and_enums():
    schema = strategy_json_schema()
    assert schema["$schema"].endswith("2020-12/schema")
    assert set(schema["properties"]) == {
        "name",
        "description",
        "params",
        "decode",
        "verifiers",
        "program",
    }
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]["program"]["properties"]) == {"init", "step", "final"}
    typed = strategy_json_schema({"expand": "copy each particle", "denoise": ""}, ["confidence"])
    stage = typed["$defs"]["stage"]
    assert stage["propertyNames"]["enum"] == ["denoise", "expand"]
    assert stage["properties"]["expand"]["description"] == "copy each particle"
    verifier_map = typed["$defs"]["verifier"]["anyOf"][1]
    assert verifier_map["propertyNames"]["enum"] == ["confidence"]


def test_schema_accepts_the_example():
    jsonschema = pytest.importorskip("jsonschema")
    import yaml

    jsonschema.validate(yaml.safe_load(S3_YAML), strategy_json_schema())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"progam": {}}, strategy_json_schema())


# ---- printing and the round-trip property --------------------------------------------------

DUMMY = Span("<gen>", 1, 1)
_ALNUM = "abcxyzABZ_0189"
names = st.builds(
    lambda head, rest, parts: head + rest + "".join("-" + p for p in parts),
    st.sampled_from("abtfnsAZ_"),
    st.text(_ALNUM + "ruel", max_size=5),
    st.lists(st.text(_ALNUM, min_size=1, max_size=3), max_size=2),
)  # letters, digits, `_`, inner hyphens (and sometimes `true`/`null`, to test keyword handling)
keys = names.filter(lambda n: n not in ("true", "false", "null"))
EXPRS = ["${a}", "${a}*2", "${a * 2 + 1}", "-${b}", "(${a}+1) // 2", "${min(a, b)}", "${a} x"]

scalars = st.one_of(
    st.integers(-(2**63 - 1), 2**63 - 1),  # the language's integer range (dsl/limits.py)
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
    st.text(max_size=12),
    names,
    st.sampled_from(EXPRS).map(Expr),
)


def calls(values) -> st.SearchStrategy[Call]:
    args = st.lists(values.map(lambda v: Arg(v, DUMMY)), max_size=3).map(tuple)
    kwargs = st.dictionaries(keys, values.map(lambda v: Arg(v, DUMMY)), max_size=3)
    return st.builds(lambda n, a, k: Call(n, a, tuple(k.items()), DUMMY), keys, args, kwargs)


values = st.recursive(
    scalars, lambda inner: st.one_of(st.lists(inner, max_size=3), calls(inner)), max_leaves=8
)
pipelines = st.lists(calls(values), min_size=1, max_size=4).map(
    lambda stages: Pipeline(tuple(stages), DUMMY)
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pipelines)
def test_printed_pipelines_parse_back_to_the_same_ast(pipeline):
    printed = format_pipeline(pipeline)
    assert strip(parse_pipeline(printed)) == strip(pipeline), printed


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            names,
            st.one_of(
                st.floats(-5, 5, allow_nan=False),
                st.integers(-3, 3),
                st.sampled_from([Expr("${w}"), Expr("-${w}")]),
            ),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_printed_verifiers_parse_back(terms):
    from s3dsl.dsl.ast import VerifierTerm

    vdef = VerifierDef(
        "v", tuple(VerifierTerm(n, Arg(w, DUMMY), (), DUMMY) for n, w in terms), DUMMY
    )
    parsed = parse_verifier(format_verifier(vdef))
    assert [(t.builtin, t.weight.value) for t in parsed] == [(n, w) for n, w in terms]


def test_format_value_and_parse_value():
    for value in [3, -2.5, 1e-07, True, None, "ssp", "two words", "true", [1, "a"], Expr("${a}")]:
        assert parse_value(format_value(value)) == value
    assert format_pipeline(parse_pipeline("a|b(1,x=2)")) == "a | b(1, x=2)"
    with pytest.raises(ValueError):
        format_value(math.inf)


def test_strategy_dataclass_compares_without_source():
    a = parse_text_strategy(S3_TEXT, "s3.s3")
    assert isinstance(a, Strategy) and a.span.line == 1


def test_shipped_strategies_round_trip_through_the_text_form():
    from pathlib import Path

    files = sorted((Path(__file__).parent.parent / "strategies").glob("*.y*ml"))
    for path in files:
        strategy = load_strategy(path)
        again = parse_text_strategy(format_strategy(strategy), path.stem + ".s3")
        assert strip(again) == strip(strategy), path
