"""Every strategy example in the docs is a file that compiles (every fenced ```yaml and ```s3
block of docs/*.md and the README, indented ones too), for both shipped tasks."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from s3dsl.compiler.build import build
from s3dsl.dsl.loader import parse_strategy
from s3dsl.tasks.registry import get_task

DOCS = Path(__file__).resolve().parent.parent / "docs"
README = DOCS.parent / "README.md"
FENCE = re.compile(r"^([ \t]*)```(yaml|s3)[ \t]*\n(.*?)^[ \t]*```", re.MULTILINE | re.DOTALL)


def examples() -> list[tuple[str, str, str]]:
    """(where, kind, text) of every yaml/s3 block of docs/*.md and the README."""
    out = []
    for path in [*sorted(DOCS.glob("*.md")), README]:
        text = path.read_text()
        for m in FENCE.finditer(text):
            line = text[: m.start()].count("\n") + 1
            body = textwrap.dedent(m.group(3)) if m.group(1) else m.group(3)
            out.append((f"{path.name}:{line}", m.group(2), body))
    return out


@pytest.mark.parametrize("where, kind, text", examples(), ids=[e[0] for e in examples()])
@pytest.mark.parametrize("task", ["arith", "sudoku"])
def test_docs_example_compiles(where, kind, text, task):
    the_task = get_task(task)
    strategy = parse_strategy(text, f"{where}.{'yaml' if kind == 'yaml' else 's3'}")
    build(strategy, None, the_task.gen_length, the_task.default_verifier)


def test_list_extractors_tasks_and_the_data_defaults_answer():
    from typer.testing import CliRunner

    from s3dsl.cli.app import app
    from s3dsl.tasks.data import EXTRACTORS

    runner = CliRunner()
    out = runner.invoke(app, ["list", "extractors"])
    assert out.exit_code == 0 and all(name in out.output for name in EXTRACTORS)
    out = runner.invoke(app, ["list", "tasks"])
    assert out.exit_code == 0
    assert f"arith prompt:     {get_task('arith').problems('test', 1)[0].prompt}" in out.output
    flat = " ".join(runner.invoke(app, ["run", "--help"]).output.replace("│", " ").split())
    for default in ("verifier confidence", "gen_length 64", "model arith", "extractor hash"):
        assert default in flat


def test_primitives_doc_covers_every_argument_value():
    """docs/primitives.md names every primitive, argument and choice the compiler accepts."""
    from s3dsl.compiler.primitives import COMMIT_RULES, PRIMITIVES

    text = (DOCS / "primitives.md").read_text()
    for prim in PRIMITIVES:
        assert f"`{prim.name}" in text, prim.name
        for p in prim.params:
            assert p.name in text, (prim.name, p.name)
            for choice in p.choices:
                assert f"`{choice}`" in text, (prim.name, p.name, choice)
    for rule in COMMIT_RULES:
        assert f"`{rule}`" in text
    from dataclasses import fields

    from s3dsl.tasks.data import DEFAULT_EXTRACTOR, EXTRACTORS, DataTask

    d = {f.name: f.default for f in fields(DataTask)}
    for default in (f"verifier `{d['default_verifier']}`", f"gen_length {d['gen_length']}",
                    f"model `{d['default_model']}`", f"extractor `{DEFAULT_EXTRACTOR}`"):
        assert default in text, default
    assert all(f"`{name}`" in text for name in EXTRACTORS)


def test_run_shows_acceptance_and_pass_at_k_when_the_strategy_has_them():
    from typer.testing import CliRunner

    from s3dsl.cli.app import app

    args = ["run", "imh", "--task", "arith", "--limit", "1", "--no-db", "--set", "chains=2",
            "--set", "proposals=2"]
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 0, out.output
    assert "acceptance rate" in out.output and "pass@2 (final particles)" in out.output
    single = CliRunner().invoke(app, ["run", "single", "--task", "arith", "--limit", "1",
                                      "--no-db"])
    assert "acceptance" not in single.output and "pass@" not in single.output
