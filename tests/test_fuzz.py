"""Property-based fuzzing (issue 12): whatever a user feeds s3dsl, each case ends in success or in
an `S3DSLError` (strategy files: one line with file:line:col), never in another exception.

The generators and the runner are the benchmark's (`benchmarks/fuzz_inputs.py`, `fuzz.py`); here
about 1,200 cases run in CI, the benchmark runs 10,000+ and reports time and memory.
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
    checkpoint,
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


@budget(150)
@given(case=checkpoint())
def test_model_folders_with_a_damaged_file_are_checked(runner, case: Case):
    """`s3dsl compile` and `s3dsl run` on an official LLaDA / Dream folder, a shipped-format one
    or a transformers one (`--model hf:DIR`), with one file deleted, truncated, replaced or
    holding a hostile value."""
    check(runner.run(case))


def _folder_case(layout: str, name: str, change: str, key: str = "0", value=None,
                 tensor: str = "shape", fraction: str = "0.5") -> Case:
    import json

    detail = {"layout": layout, "file": name, "change": change, "key": key,
              "value": json.dumps(value), "fraction": fraction, "tensor": tensor}
    return Case("checkpoint", b"", name, detail)


def _sorted_key(workdir: Path, layout: str, name: str, key: str) -> str:
    """The `key` index `changed_json` turns into `key` (it picks among the sorted keys)."""
    import json

    base = fuzz.checkpoint_bases(workdir)[layout] / name
    return str(sorted(json.loads(base.read_text())).index(key))


@pytest.mark.parametrize("layout,name,change,key,value,message", [
    ("llada", "config.json", "root", None, [1, 2], "expected a JSON object at the top, found list"),
    ("dream", "config.json", "set", "hidden_size", "32", "hidden_size must be an integer"),
    ("native", "config.json", "set", "n_heads", 0, "n_heads must be >= 1, got 0"),
    ("native", "config.json", "set", "d_model", 34, "d_model / n_heads must be an even integer"),
    ("native", "config.json", "set", "n_layers", 10**30, "n_layers must be <= 4096"),
    ("llada", "config.json", "set", "mask_token_id", "x",
     "the mask id must be an integer, got 'x'"),
    ("llada", "config.json", "set", "eos_token_id", -5, "the EOS token id must be >= 0, got -5"),
    ("llada", "model.safetensors.index.json", "set", "weight_map", {"a": "../x"},
     "weight_map must map tensor names to shard file names"),
    ("dream", "tokenizer_config.json", "set", "chat_template", "{% if %}",
     "chat template cannot be rendered"),
    ("dream", "tokenizer_config.json", "root", None, [2, 3], "expected a JSON object"),
    ("dream", "model-00002-of-00002.safetensors", "truncate", None, None,
     "cannot read the weights in .*model-00002-of-00002.safetensors"),
    ("native", "model.safetensors", "tensor", None, None, "size mismatch for"),
    ("hf-bert", "config.json", "set", "num_hidden_layers", 10**12,
     "config num_hidden_layers must be <= 4096"),
    ("hf-bert", "config.json", "set", "num_attention_heads", 0,
     "config num_attention_heads must be >= 1, got 0"),
    ("hf-bert", "config.json", "set", "model_type", [1], "cannot load the config and tokenizer"),
    ("hf-bert", "model.safetensors", "truncate", None, None, "cannot load the weights of"),
    ("hf-bert", "model.safetensors", "tensor", None, None, "cannot load the weights of .*size"),
    ("hf-bert", "tokenizer_config.json", "set", "mask_token", "x",
     "the mask token id must be <= 21"),
    ("hf-bert", "tokenizer_config.json", "set", "model_max_length", "x",
     "cannot encode the prompt .*the tokenizer fails: TypeError"),
])
def test_a_damaged_model_folder_names_the_file_and_the_value(runner, layout, name, change, key,
                                                             value, message):
    """Each is one line exit 2 from `s3dsl run`, never a traceback: what is wrong, and where."""
    import re

    from s3dsl.dsl.errors import S3DSLError

    pick = _sorted_key(runner.workdir, layout, name, key) if key else "0"
    case = _folder_case(layout, name, change, pick, value)
    with pytest.raises(S3DSLError) as caught:
        runner._checkpoint(case)
    assert re.search(message, caught.value.render()), caught.value.render()
    assert "\n" not in caught.value.render()


def test_weights_stored_as_integers_or_halves_still_load_and_run(runner):
    """A shipped-format file whose tensor was saved as int32 or float16 loads as float32 (as
    before the weights were assigned in place) and decodes."""
    for pick in ("1", "2"):  # changed_tensors: odd -> int32, even -> float16
        assert runner._checkpoint(_folder_case("native", "model.safetensors", "tensor", pick,
                                               tensor="dtype"))


def test_a_pad_token_outside_the_models_vocabulary_pads_with_eos(runner):
    """A transformers tokenizer whose pad token the model has no embedding for (added to the
    tokenizer only) still runs: left padding is never attended to, so it is EOS instead."""
    from s3dsl.runtime.adapters import load_hf_model

    key = _sorted_key(runner.workdir, "hf-bert", "tokenizer_config.json", "pad_token")
    case = _folder_case("hf-bert", "tokenizer_config.json", "set", key, "[NEWPAD]")
    assert runner._checkpoint(case)
    lm = load_hf_model(str(runner.workdir / "checkpoint"))
    assert lm.tokenizer.tok.pad_token_id >= lm.vocab_size
    assert lm.tokenizer.pad_id == lm.tokenizer.eos_id


def test_a_transformers_folder_missing_a_parameter_is_refused(runner):
    """transformers would fill a parameter the weights lack with random values and go on."""
    import re

    from s3dsl.dsl.errors import S3DSLError

    case = _folder_case("hf-bert", "model.safetensors", "tensor", "3", tensor="drop")
    with pytest.raises(S3DSLError) as caught:
        runner._checkpoint(case)
    assert re.search(r"lack 1 of the model's parameters \(first: bert\.", caught.value.render())
