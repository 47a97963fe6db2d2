"""The `s3dsl` command line. User errors exit 2 with one `file:line:col: error: ...` line and a
hint; exit 1 is kept for bugs."""

from __future__ import annotations

import os
import sys

from s3dsl.cli import compare as _compare  # noqa: F401  (registers compare on app)
from s3dsl.cli import stored as _stored  # noqa: F401  (registers runs and report on app)
from s3dsl.cli.app import app


def main() -> None:
    from rich.console import Console

    from s3dsl.dsl.errors import S3DSLError

    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        code = app(standalone_mode=False)
    except S3DSLError as e:
        err.print(e.render(), markup=False)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("interrupted", markup=False)
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as e:  # noqa: BLE001 - anything else is a bug in s3dsl
        # usage errors of the command-line parser (typer's click, vendored or not) show themselves
        if callable(getattr(e, "show", None)) and hasattr(e, "exit_code"):
            e.show()
            sys.exit(e.exit_code or 2)
        if type(e).__name__ == "Abort":
            err.print("aborted", markup=False)
            sys.exit(130)
        if os.environ.get("S3DSL_DEBUG"):
            raise
        err.print(f"internal error (a bug in s3dsl): {type(e).__name__}: {e}", markup=False)
        err.print("set S3DSL_DEBUG=1 to see the traceback", markup=False)
        sys.exit(1)
    if isinstance(code, int) and code:
        sys.exit(code)


__all__ = ["app", "main"]
