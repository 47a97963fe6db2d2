"""Issue 12's reproducers, one per class: each bad input gets one clear line (file:line:col for
strategy files), the limit it broke, and nothing fails later at run time."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from s3dsl.compiler.build import build
from s3dsl.compiler.passes import plan
from s3dsl.dsl.errors import S3DSLError
from s3dsl.dsl.loader import load_strategy, parse_strategy
from s3dsl.runtime.scoring import encode_prompt
from s3dsl.session import check_run_limits, check_run_options, execute
from s3dsl.tasks.base import Problem

BASE = "program:\n  init: expand(2)\n  step: denoise\n  final: select(by=vote)\n"
CLI = [sys.executable, "-m", "s3dsl"]
SMALL = ["--task", "arith", "--model", "tiny-random", "--set", "gen_length=8", "--set",
         "steps=8", "--limit", "1"]


def compile_text(text: str, filename: str = "f.yaml", overrides: dict | None = None,
                 level: int = 2):
    return plan(build(parse_strategy(text, filename), overrides, 8, "arith-heuristic"), level)


def error_of(text: str, filename: str = "f.yaml", overrides: dict | None = None) -> str:
    with pytest.raises(S3DSLError) as info:
        compile_text(text, filename, overrides)
    line = info.value.render()
    assert "\n" not in line
    return line


@pytest.mark.parametrize(
    ("text", "where", "words"),
    [
        ("params:\n  x: !!int abc\n" + BASE, "f.yaml:2:6:", "not a valid !!int"),
        ("params:\n  x: !!float abc\n" + BASE, "f.yaml:2:6:", "not a valid !!float"),
        ("params:\n  x: !!int ''\n" + BASE, "f.yaml:2:6:", "not a valid !!int"),
        ("params:\n  x: 1" + "0" * 5000 + "\n" + BASE, "f.yaml:2:6:", "too long"),
        ("params:\n  x: ${" + "9" * 400 + " / 3}\n" + BASE, "f.yaml:2:", "too long"),
        ("params:\n  x: ${9223372036854775807 * 4 / 3}\n" + BASE, "f.yaml:2:", "too large"),
        ("decode:\n  temperature: hot\n" + BASE, "f.yaml:2:16:", "must be a number, got 'hot'"),
        ("decode:\n  threshold: {o}\n" + BASE, "f.yaml:2:14:", "must be a number, got o()"),
        ("verifiers:\n  v: {confidence: h}\nprogram:\n  step: denoise | score(v)\n",
         "f.yaml:2:", "weight of verifier 'confidence' must be a number"),
        ("params:\n  x: ${" + "(" * 300 + "1" + ")" * 300 + "}\n" + BASE, "f.yaml:2:",
         "nested deeper than 50"),
        ("params:\n  x: ${" + "1+" * 300 + "1}\n" + BASE, "f.yaml:2:", "nested deeper than 50"),
        ('program:\n  init: expand(2)\n  step: denoise | score(confidence) | resample(2, when="'
         + "not " * 300 + 'ess")\n', "f.yaml:3:", "nested deeper than 50"),
        ("params:\n  x: " + "[" * 300 + "]" * 300 + "\n" + BASE, "f.yaml:2:", "deeper than 50"),
        ("params:\n  x: &a [*a]\n" + BASE, "f.yaml:2:10:", "recursive alias"),
        ("program:\n  init:\n    - expand: {k: {a: 1}}\n  step: denoise\n", "f.yaml:3:",
         "must be an integer, got a(1)"),
        ("params:\n  x: 1\n  y: \x07\n" + BASE, "f.yaml:3:6:", "control character U+0007"),
        ("decode:\n  steps: 100000000\n" + BASE, "f.yaml:2:10:", "must be <= 16384"),
        ("program:\n  step: " + " | ".join(["denoise"] * 10_000) + "\n", "f.yaml:2:",
         "10,000 stages; the limit is 256"),
        ("decode:\n  threshold: -1\n  commit: threshold\n" + BASE, "f.yaml:2:", "> 0, got -1"),
        ("params:\n  b: .nan\nprogram:\n  init: expand(2)\n  step: denoise | score(confidence)"
         " | resample(2, beta=${b})\n", "f.yaml:5:", "resample(beta=...) must be a finite"),
        ("program:\n  init: expand(2)\n  step:\n    - denoise\n    - weight: {scale: .nan}\n"
         "    - resample: 2\n", "f.yaml:5:", "weight(scale=...) must be a finite number"),
        ("verifiers:\n  v: {confidence: .nan}\nprogram:\n  step: denoise | score(v)\n",
         "f.yaml:2:", "must be a finite number, got nan"),
        ("program:\n  init: expand(2)\n  step: denoise | weight(scale=-1e308) | resample(2)\n",
         "f.yaml:3:", "weight(scale=...) must be between -1e+06 and 1e+06"),
        ("program:\n  step: denoise(rule=threshold, threshold=0)\n", "f.yaml:2:",
         "threshold=...) must be > 0"),
        ("program:\n  step: denoise | score(oracle(extract=1))\n", "f.yaml:2:",
         "must be a verifier name, got oracle(extract=1)"),
        ("verifiers:\n  v: oracle(extract=1)\nprogram:\n  step: denoise | score(v)\n",
         "f.yaml:2:", "cannot be set in a strategy file"),
    ],
)
def test_bad_values_are_one_positioned_line(text, where, words):
    line = error_of(text)
    assert line.startswith(where) and words in line, line
    assert "Call(" not in line and "Arg(" not in line


def test_text_form_numbers_and_nesting_are_bounded():
    line = error_of("param temperature = 1" + "0" * 400 + "\nstep: denoise\n", "f.s3")
    assert line.startswith("f.s3:1:21:") and "too long" in line
    line = error_of("param x = " + "[" * 2000 + "]" * 2000 + "\nstep: denoise\n", "f.s3")
    assert line.startswith("f.s3:1:") and "nested deeper than 50" in line


def test_billion_laughs_are_refused_at_the_alias():
    levels = "".join(f"  l{i}: &l{i} [" + ", ".join([f"*l{i - 1}" if i else "x"] * 9) + "]\n"
                     for i in range(9))
    line = error_of("params:\n" + levels + BASE)
    assert "aliases expand to more than 10,000 YAML nodes" in line and ":6:" in line


def test_long_lines_and_files():
    long_string = "params:\n  x: \"" + "a" * 40_000 + "\"\n" + BASE
    assert compile_text(long_string).program.params["x"] == "a" * 40_000
    line = error_of("params:\n  x: 1\n" + "#" * 300_000 + "\n" + BASE)
    assert "too long" in line and "the limit is 200,000" in line


def test_non_utf8_files_report_line_and_column(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_bytes(b"params:\n  x: \xc3\xa9\xff\n" + BASE.encode())
    with pytest.raises(S3DSLError) as info:
        load_strategy(path)
    assert info.value.render().startswith(f"{path}:2:7: error: the file is not UTF-8")


def test_errors_print_in_any_encoding():
    from s3dsl.cli import emit

    with pytest.raises(S3DSLError) as info:
        compile_text('params:\n  "\\ud800é": 1\n' + BASE)
    stream = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    emit(info.value.render(), stream)
    stream.seek(0)
    assert "\\ud800\\xe9" in stream.read()


def test_set_zero_is_an_error_not_the_default():
    for key in ("steps", "gen_length"):
        line = error_of(BASE, overrides={key: "0"})
        assert f"--set {key} must be >= 1, got 0" in line
    assert "must be <= 16384" in error_of(BASE, overrides={"steps": "100000000"})
    assert "finite" in error_of("params:\n  b: 0.5\n" + BASE, overrides={"b": "nan"})


def test_overflowing_when_conditions_run():
    the_plan = compile_text(
        'program:\n  init: expand(2)\n  step: denoise | score(confidence) | resample(2, when="step'
        ' * 9223372036854775807 * 9223372036854775807 + ess > 1")\n')
    condition = the_plan.program.step[-1].schedule.when
    assert condition.evaluate({"step": 3, "ess": 0.5}) is True


EXTREME_BUT_VALID = [
    "decode: {temperature: 1.0}\nprogram:\n  init: expand(3)\n  step: denoise | weight(by=logprob,"
    " scale=-1e6) | resample(3, method=residual)\n",
    "program:\n  init: expand(2)\n  step: denoise(rule=threshold, threshold=1e-300) | remask("
    "count=9223372036854775807)\n",
    "decode: {temperature: 1.0}\nprogram:\n  init: expand(3)\n  step: denoise | score(arith-"
    "heuristic) | resample(3, beta=1e-9, method=ssp)\n",
    "decode: {temperature: 1.0}\nprogram:\n  init: expand(2)\n  step: expand(2) | denoise | "
    "mh-accept(target=power(-1e6))\n",
]


@pytest.mark.parametrize("text", EXTREME_BUT_VALID)
def test_extreme_values_that_validate_also_run(text, tiny_model):
    for level in (0, 2):
        the_plan = compile_text(text, level=level)
        results, _ = execute(the_plan, tiny_model, [Problem("a", "1+2=", "3")], str,
                             lambda a, b: False, 0, 2)
        assert len(results) == 1


class CountingModel:
    """tiny-random, counting forwards: limits must be checked before the first one."""

    def __init__(self, inner):
        self.inner, self.calls = inner, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def forward(self, *args, **kwargs):
        self.calls += 1
        return self.inner.forward(*args, **kwargs)

    def forward_last(self, *args, **kwargs):
        self.calls += 1
        return self.inner.forward_last(*args, **kwargs)


def test_run_time_limits_are_checked_before_the_first_forward(tiny_model):
    model = CountingModel(tiny_model)
    limit = tiny_model.config.max_len
    too_long = plan(build(parse_strategy(BASE, "f.yaml"), {"gen_length": str(limit + 8)}, 8), 2)
    fits = f"gen_length {limit + 8} does not fit .* {limit} pos"
    with pytest.raises(S3DSLError, match=fits) as e:
        execute(too_long, model, [Problem("a", "1+1=", "2")], str, lambda a, b: False)
    prompt = len(encode_prompt(Problem("a", "1+1=", "2"), tiny_model.tokenizer))
    assert f"N <= {limit - prompt}" in e.value.hint  # the hint leaves room for the prompt
    the_plan = compile_text(BASE)
    long_prompt = Problem("b", "1+" * limit + "1=", "2")
    with pytest.raises(S3DSLError, match=r"problem b: its prompt of \d+ tokens"):
        execute(the_plan, model, [long_prompt], str, lambda a, b: False)
    assert model.calls == 0


def test_memory_for_the_plan_is_checked(tiny_model, monkeypatch):
    from s3dsl import session

    monkeypatch.setattr(session, "device_memory_bytes", lambda device: 1000)
    with pytest.raises(S3DSLError, match=r"the plan needs at least .* the device has"):
        check_run_limits(compile_text(BASE), tiny_model, [Problem("a", "1+1=", "2")])


@pytest.mark.parametrize(("seed", "batch"), [(0, 0), (0, -1), (2**70, 8), (-1, 8)])
def test_seed_and_batch_size_ranges(seed, batch):
    with pytest.raises(S3DSLError, match="--batch-size|--seed"):
        check_run_options(seed, batch)


def test_foreign_and_read_only_databases(tmp_path):
    from s3dsl.store import Store

    foreign = tmp_path / "other.db"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE runs (a, b)")
    with pytest.raises(S3DSLError, match="not an s3dsl results database"):
        Store(foreign)
    if os.geteuid() == 0:
        return  # root writes read-only files: nothing to refuse
    ours = tmp_path / "ours.db"
    Store(ours).close()
    ours.chmod(0o444)
    with Store(ours) as store:  # served read-only (tests/test_store_read_only.py); writes refused
        assert store.read_only
        with pytest.raises(S3DSLError, match="read-only"):
            store.add("k", [])


def test_data_files_split_lines_on_newline_only_and_refuse_deep_json(tmp_path):
    from s3dsl.tasks.data import load_data_task

    path = tmp_path / "d.jsonl"
    record = {"id": 1, "prompt": "a\u2028b\u0085c", "answer": "2"}
    path.write_text(json.dumps(record, ensure_ascii=False) + "\r\n" + "\n", encoding="utf-8")
    assert load_data_task(path).problems()[0].prompt == "a\u2028b\u0085c"
    path.write_text(json.dumps(record) + "\n" + "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(S3DSLError, match=r"d.jsonl:2: JSON nested too deeply"):
        load_data_task(path)


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_cli_markup_in_names(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text('name: "[/]"\ndescription: "[bold]x[/b]"\nprogram:\n  step: denoise\n')
    ran = cli("run", str(path), *SMALL, "--no-db", cwd=tmp_path)
    assert ran.returncode == 0 and "[/] on arith" in ran.stdout, ran.stderr
    from typer.testing import CliRunner

    from s3dsl.cli.app import app

    checked = CliRunner().invoke(app, ["validate", str(path)])
    assert checked.exit_code == 0 and "ok" in checked.output and "[/]" in checked.output


@pytest.mark.parametrize(("flag", "words"), [
    (["--seed", str(2**70)], "--seed must be between 0 and 2**63-1"),
    (["--batch-size", "0"], "--batch-size must be at least 1"),
    (["--json", "out"], "--json out: is a directory"),
    (["--trace", "a-file"], "--trace a-file: is a file, not a folder"),
    (["--trace", "a-file/trace"], "--trace a-file/trace: cannot create it"),
])
def test_cli_flags_are_checked_before_the_run(tmp_path, monkeypatch, flag, words):
    from typer.testing import CliRunner

    from s3dsl.cli.app import app

    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "a-file").write_text("")
    monkeypatch.setattr("s3dsl.resume.run_stored", lambda *a, **k: pytest.fail("it ran"))
    result = CliRunner().invoke(app, ["run", "single", *SMALL, "--no-db", *flag])
    assert isinstance(result.exception, S3DSLError) and words in str(result.exception)


@pytest.mark.parametrize(("args", "words"), [
    (["single", "best_of_k", "--set", "k=[1,2"], "--set k=[1,2: expected int"),
    (["single", "best_of_k", "--set", "gen_length=1000"], "does not fit model arith"),
    (["single", "--out", "a-file"], "--out a-file: is a file, not a folder"),
    (["single", "--trace", "a-file"], "--trace a-file: is a file, not a folder"),
])
def test_compare_checks_every_strategy_and_folder_before_the_first_run(tmp_path, monkeypatch,
                                                                        args, words):
    """An error in the last strategy of a comparison, or in where it writes, comes before any
    run: nothing is computed and then thrown away."""
    from typer.testing import CliRunner

    from s3dsl.cli.app import app

    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("")
    monkeypatch.setattr("s3dsl.resume.run_stored", lambda *a, **k: pytest.fail("it ran"))
    result = CliRunner().invoke(app, ["compare", *args, "--task", "arith", "--limit", "1",
                                      "--no-db"])
    assert isinstance(result.exception, S3DSLError) and words in str(result.exception), (
        result.output)


def test_report_out_that_cannot_be_a_folder_is_a_user_error(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from s3dsl.cli.app import app
    from s3dsl.store import Store

    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("")
    ran = CliRunner().invoke(app, ["run", "single", *SMALL, "--db", "r.db"])
    assert ran.exit_code == 0, ran.output
    with Store(tmp_path / "r.db") as store:
        run_id = store.runs()[0].key[:8]
    for out, words in (("a-file", "is a file, not a folder"), ("a-file/x", "cannot create it")):
        result = CliRunner().invoke(app, ["report", run_id, "--db", "r.db", "--out", out])
        assert isinstance(result.exception, S3DSLError) and words in str(result.exception)
