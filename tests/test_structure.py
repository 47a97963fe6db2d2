"""The code's shape, enforced: one module per primitive, small modules, imports that point one way.

Static checks over the source text (no model runs): they fail the day a primitive is spread over
several places again, a module outgrows ~400 lines, or a layer imports one above it.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import sys
from pathlib import Path

import pytest

from s3dsl.compiler import ops
from s3dsl.compiler.primitives import PRIMITIVES
from s3dsl.runtime.population import STATE, Particle, Population
from s3dsl.runtime.reference import ReferenceInterpreter

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "s3dsl"
MAX_LINES = 400

# The layers, bottom first: a unit (a top-level module or subpackage of s3dsl) may import units
# of its own layer (without cycles) or below, never above.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("s3dsl", "spans", "stats", "shape_constants"),
    ("errors",),
    ("dsl", "tasks"),
    ("verifiers",),
    ("compiler",),
    ("runtime", "models"),
    ("session", "resume", "store", "catalog", "distributed", "trace"),
    ("report", "report_view", "plots", "matching", "metrics", "trace_view"),
    ("cli", "integrations", "__main__"),
)
RANK = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out.append((name, path))
    return out


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "s3dsl"


def _imports(path: Path) -> list[tuple[str, list[str], int]]:
    """Every s3dsl import of a file (module level or not): (module, names, line)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(a.name, [], node.lineno) for a in node.names if a.name.startswith("s3dsl")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.startswith("s3dsl"):
                found.append((node.module, [a.name for a in node.names], node.lineno))
    return found


def test_every_unit_has_a_layer():
    units = {_unit(name) for name, _ in _modules()}
    assert units <= set(RANK), f"give these a layer in LAYERS: {sorted(units - set(RANK))}"


def test_imports_point_down_and_never_at_private_names_of_other_units():
    wrong = []
    for name, path in _modules():
        for target, names, line in _imports(path):
            src, dst = _unit(name), _unit(target)
            where = f"{path.relative_to(ROOT)}:{line} imports {target}"
            if RANK[dst] > RANK[src]:
                wrong.append(f"{where} (layer {dst} is above {src})")
            private = [n for n in names if n.startswith("_")]
            if src != dst and private:
                wrong.append(f"{where} private {private}")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles_between_units():
    edges: dict[str, set[str]] = {}
    for name, path in _modules():
        for target, _, _ in _imports(path):
            if _unit(target) != _unit(name):
                edges.setdefault(_unit(name), set()).add(_unit(target))
    done: set[str] = set()

    def visit(unit: str, trail: tuple[str, ...]) -> None:
        assert unit not in trail, "import cycle: " + " -> ".join((*trail, unit))
        if unit in done:
            return
        for nxt in edges.get(unit, ()):
            visit(nxt, (*trail, unit))
        done.add(unit)

    for unit in list(edges):
        visit(unit, ())


def test_the_compiler_imports_no_runtime_even_lazily():
    for name, path in _modules():
        if _unit(name) == "compiler":
            for target, _, line in _imports(path):
                assert _unit(target) not in ("runtime", "models"), f"{path}:{line} {target}"


@pytest.mark.parametrize("path", [p for _, p in _modules()], ids=lambda p: p.name)
def test_modules_stay_small(path: Path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(ROOT)} has {lines} lines (> {MAX_LINES})"


@pytest.mark.parametrize("prim", PRIMITIVES, ids=lambda p: p.name)
def test_each_primitive_is_one_module_with_signature_facts_and_semantics(prim):
    """Its `PRIMITIVE` (signature, facts, lowering) and its batched semantics are defined in
    one module of s3dsl.compiler.ops, named after it; the reference interpreter has its method."""
    module = next(m for m in ops.MODULES if m.PRIMITIVE is prim)
    assert module.__name__ == "s3dsl.compiler.ops." + prim.name.replace("-", "_")
    assert prim.batched.__module__ == module.__name__, "batched semantics live elsewhere"
    assert inspect.signature(prim.batched).parameters.keys() == {"ex", "op", "ctx", "active"}
    assert prim.lower({p.name: p.default for p in prim.params}) is not None
    method = getattr(ReferenceInterpreter, prim.name.replace("-", "_"), None)
    assert callable(method), f"the reference interpreter has no method for {prim.name}"


def test_the_executor_has_no_per_primitive_code():
    """No `op_<name>` methods and no primitive names in the executor: it runs the semantics the
    primitive modules register."""
    source = (PACKAGE / "runtime" / "executor.py").read_text()
    assert "def op_" not in source
    for prim in PRIMITIVES:
        assert f'"{prim.name}"' not in source.replace('SEMANTICS["denoise"]', ""), prim.name


def test_state_fields_are_declared_once():
    """Particle (reference) and Population (batched) both derive their fields from STATE."""
    assert [f.particle for f in STATE if not f.batched_only] == list(Particle.__dataclass_fields__)
    assert {spec[0] for f in STATE for spec in f.storage()} == set(
        Population.__dataclass_fields__)


def test_every_planted_bug_still_applies_once():
    """benchmarks/mutants.py patches exact source text: each must still match exactly once."""
    spec = importlib.util.spec_from_file_location("mutants", ROOT / "benchmarks" / "mutants.py")
    assert spec and spec.loader
    mutants = importlib.util.module_from_spec(spec)
    sys.modules["mutants"] = mutants
    try:
        spec.loader.exec_module(mutants)
    finally:
        del sys.modules["mutants"]
    for m in mutants.MUTANTS:
        assert (ROOT / m.path).read_text().count(m.old) == 1, f"{m.name}: {m.old!r} in {m.path}"


def test_the_executor_implements_what_the_primitives_may_use():
    """Every method of the `Batch` protocol the primitives' semantics are written against."""
    from s3dsl.compiler.ops.base import Batch
    from s3dsl.runtime.executor import BatchedExecutor

    wanted = [name for name, value in vars(Batch).items()
              if not name.startswith("_") and (callable(value) or isinstance(value, property))]
    assert wanted and all(hasattr(BatchedExecutor, name) for name in wanted), wanted
