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
