"""`s3dsl validate`, `list` and `schema`: the commands that read strategy files and the built-in
tables and run no model."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from s3dsl.cli import views
from s3dsl.cli.app import DEFAULT_TASK, Strict, app, console
from s3dsl.errors import S3DSLError


@app.command()
def validate(
    files: Annotated[list[str], typer.Argument(help="Strategy files or built-in names")],
    task: Annotated[
        str | None,
        typer.Option(help="Task to check against (default: sudoku; given, a verifier written "
                     "for another task is a warning)"),
    ] = None,
    strict: Strict = False,
) -> None:
    """Check strategy files; print every error and warning, exit 2 on any error (or, with
    --strict, any warning)."""
    from s3dsl.catalog import resolve_strategy
    from s3dsl.compiler.build import build
    from s3dsl.compiler.lint import all_errors, lint
    from s3dsl.dsl.loader import load_strategy
    from s3dsl.tasks.registry import get_task

    the_task = get_task(task or DEFAULT_TASK)
    failed = 0
    for name in files:
        try:
            strategy = load_strategy(resolve_strategy(name))
            errors = all_errors(strategy, None, the_task.gen_length, the_task.default_verifier)
        except S3DSLError as e:
            errors = [e]
        if errors:
            failed += 1
            from s3dsl.cli import emit

            for e in errors:
                emit(e.render(), sys.stdout)  # safe in any encoding; the report goes to stdout
            continue
        program = build(strategy, None, the_task.gen_length, the_task.default_verifier)
        warnings = lint(program, strategy, task)
        for w in warnings:
            console.print(w.render(), markup=False, style="red" if strict else "yellow")
        failed += bool(strict and warnings)
        suffix = f", {len(warnings)} warning(s)" if warnings else ""
        console.print(f"[green]ok[/green] {views.user_text(f'{name} ({program.name}{suffix})')}")
    if failed:
        raise typer.Exit(2)


@app.command("list")
def list_cmd(
    what: Annotated[
        str, typer.Argument(help="strategies|primitives|verifiers|models|tasks|passes|extractors")
    ],
) -> None:
    """List what is built in."""
    kinds = ("strategies", "primitives", "verifiers", "models", "tasks", "passes", "extractors")
    if what not in kinds:
        from s3dsl.errors import did_you_mean

        raise S3DSLError(f"cannot list '{what}'", None, did_you_mean(what, kinds))
    console.print(views.listing(what))


@app.command()
def schema() -> None:
    """Print the JSON Schema of strategy files (for editor validation and completion),
    generated from the compiler's primitive signatures."""
    from s3dsl.compiler.signatures import compiler_schema

    typer.echo(json.dumps(compiler_schema(), indent=2))
