"""The wheel holds the whole package: every module (a subpackage left out of a hand-kept list
installs an s3dsl that cannot import), the shipped weights, the strategies, the grammar and the
lm-eval hook, and setuptools warns of no folder it would ignore. Built offline from a copy of
the sources (a few seconds), so the checkout is left as it was."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_holds_every_module_the_weights_and_the_strategies(tmp_path):
    pytest.importorskip("setuptools")
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, src / name)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("s3dsl", "strategies"):
        shutil.copytree(ROOT / name, src / name, ignore=skip)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation",
         "--no-index", "-v", "-w", str(tmp_path / "dist")],
        capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    log = built.stdout + built.stderr
    assert "would be ignored" not in log and "is absent from the `packages`" not in log
    (wheel,) = (tmp_path / "dist").glob("s3dsl-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = {p.relative_to(src).as_posix() for p in (src / "s3dsl").rglob("*.py")}
    assert sources and sources <= names, sorted(sources - names)
    weights = {p.relative_to(src).as_posix()
               for p in (src / "s3dsl" / "models" / "weights").rglob("*") if p.is_file()}
    assert weights and weights <= names, sorted(weights - names)
    strategies = {f"s3dsl/strategies/{p.name}" for p in (src / "strategies").glob("*.yaml")}
    assert strategies and strategies <= names
    assert "s3dsl/dsl/grammar.lark" in names and "s3dsl_lm_eval.pth" in names
