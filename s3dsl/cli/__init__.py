"""The `s3dsl` command line. User errors exit 2 with one `file:line:col: error: ...` line and a
hint; exit 1 is kept for bugs."""

from __future__ import annotations

import os
import sys
from typing import TextIO

from s3dsl.cli import checks as _checks  # noqa: F401  (registers validate, list, schema)
from s3dsl.cli import compare as _compare  # noqa: F401  (registers compare on app)
from s3dsl.cli import stored as _stored  # noqa: F401  (registers runs and report on app)
from s3dsl.cli.app import app


def emit(text: str, stream: TextIO | None = None) -> None:
    """One line to stderr (or `stream`) in whatever encoding it has: characters it cannot encode
    (and lone surrogates) become backslash escapes instead of raising UnicodeEncodeError."""
    from s3dsl.errors import printable

    out = stream or sys.stderr
    encoding = getattr(out, "encoding", None) or "utf-8"
    safe = printable(text).encode(encoding, "backslashreplace").decode(encoding, "replace")
    out.write(safe + "\n")
    out.flush()


def main() -> None:
    from s3dsl.errors import S3DSLError

    try:
        code = app(standalone_mode=False)
    except S3DSLError as e:
        emit(e.render())
        sys.exit(2)
    except KeyboardInterrupt:
        emit("interrupted")
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as e:  # noqa: BLE001 - anything else is a bug in s3dsl
        # usage errors of the command-line parser (typer's click, vendored or not) show themselves
        if callable(getattr(e, "show", None)) and hasattr(e, "exit_code"):
            e.show()
            sys.exit(e.exit_code or 2)
        if type(e).__name__ == "Abort":
            emit("aborted")
            sys.exit(130)
        if os.environ.get("S3DSL_DEBUG"):
            raise
        emit(f"internal error (a bug in s3dsl): {type(e).__name__}: {e}")
        emit("set S3DSL_DEBUG=1 to see the traceback")
        sys.exit(1)
    if isinstance(code, int) and code:
        if code == 130:  # typer turns Ctrl-C into a silent Exit(130)
            emit("interrupted")
        sys.exit(code)


__all__ = ["app", "emit", "main"]
