"""Property-based fuzzing (issue 12): whatever a user feeds s3dsl, each case ends in success or in
an `S3DSLError` (strategy files: one line with file:line:col), never in another exception.

The generators and the runner are the benchmark's (`benchmarks/fuzz_inputs.py`, `fuzz.py`); here
about 1,000 cases run in CI, the benchmark runs 10,000+ and reports time and memory.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from example_budget import examples
from hypothesis import HealthCheck, given, settings

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

from fuzz_inputs import (  # noqa: E402
    Case,
    data_file,
    db_file,
    flags,
    mutated_strategy,
    run_options,
    valid_strategy,
)


def _load_fuzz():
    spec = importlib.util.spec_from_file_location("fuzz_bench", BENCH / "fuzz.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["fuzz_bench"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


fuzz = _load_fuzz()
def budget(n: int) -> settings:
    """n cases, the same ones every run (CI must not flake) unless S3DSL_EXPLORE asks for more
    (example_budget.py)."""
    return examples(n, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    return fuzz.Runner(tmp_path_factory.mktemp("fuzz"), run_plans=True)


def check(outcome) -> None:
    assert outcome.result != "internal", outcome.message
    if outcome.result == "error":
        assert "\n" not in outcome.message
        if outcome.kind == "strategy":
            assert outcome.positioned, outcome.message


@budget(450)
@given(case=mutated_strategy())
def test_mutated_strategy_files_end_in_a_positioned_user_error_or_success(runner, case: Case):
    check(runner.run(case))


@budget(250)
@given(case=valid_strategy())
def test_generated_strategies_compile_and_run_or_say_why(runner, case: Case):
    check(runner.run(case))


@budget(150)
@given(case=flags())
def test_set_flags_are_checked(runner, case: Case):
    check(runner.run(case))


@budget(100)
@given(case=data_file())
def test_data_files_are_checked(runner, case: Case):
    check(runner.run(case))


@budget(50)
@given(case=run_options())
def test_seed_and_batch_size_are_checked(runner, case: Case):
    check(runner.run(case))


@budget(20)
@given(case=db_file())
def test_database_files_are_checked(runner, case: Case):
    check(runner.run(case))
