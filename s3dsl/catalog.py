"""Where built-in strategy files live, and resolving a CLI argument to a strategy file."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from s3dsl.errors import S3DSLError, did_you_mean

SUFFIXES = (".yaml", ".yml", ".s3")


def builtin_dir() -> Path:
    """Installed packages carry the files as `s3dsl.strategies`; a source checkout has them in
    the top-level `strategies/` folder."""
    installed = Path(str(resources.files("s3dsl"))) / "strategies"
    if installed.is_dir() and any(installed.glob("*.yaml")):
        return installed
    return Path(__file__).resolve().parent.parent / "strategies"


def builtin_strategies() -> dict[str, Path]:
    folder = builtin_dir()
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix in SUFFIXES}


def resolve_strategy(name_or_path: str) -> Path:
    """A path to a strategy file, or the name of a built-in one (`s3`, `best_of_k`)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    builtins = builtin_strategies()
    key = name_or_path.replace("-", "_")
    if key in builtins:
        return builtins[key]
    if path.suffix in SUFFIXES or "/" in name_or_path:
        raise S3DSLError(
            f"no such strategy file: {name_or_path}",
            None,
            did_you_mean(path.stem, builtins) or "check the path",
        )
    raise S3DSLError(
        f"unknown strategy '{name_or_path}'",
        None,
        did_you_mean(key, builtins) or "built-ins: " + ", ".join(builtins),
    )
