"""Data files (`--data FILE.jsonl`): loading, extractors, matching, errors that name the line."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from s3dsl.dsl.errors import S3DSLError
from s3dsl.tasks.data import (
    extract_boxed,
    extract_choice,
    extract_hash,
    extract_last_number,
    get_extractor,
    load_data_task,
    normalized_match,
)


def write(tmp_path, lines: list[str], name: str = "d.jsonl"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def test_loads_lines_ids_default_to_line_numbers(tmp_path):
    path = write(tmp_path, [
        json.dumps({"id": "a", "prompt": "1+1=", "answer": "2"}),
        "",
        json.dumps({"prompt": "2+2=", "answer": 4, "level": 3}),
    ])
    task = load_data_task(path, None)
    problems = task.problems("train")
    assert [p.id for p in problems] == ["a", "3"]
    assert problems[1].answer == "4" and problems[1].meta == {"level": 3}
    assert task.problems("test", 1) == problems[:1]  # split ignored, limit honoured
    assert (task.gen_length, task.default_model, task.default_verifier) == (64, "arith",
                                                                              "confidence")
    assert task.name == "d" and task.extractor == "hash"


@pytest.mark.parametrize("line, message", [
    ("{not json", "invalid JSON"),
    ("[1, 2]", "expected a JSON object"),
    ('{"answer": "1"}', "missing field 'prompt'"),
    ('{"prompt": "x"}', "missing field 'answer'"),
    ('{"prompt": 3, "answer": "1"}', "'prompt' must be a string"),
    ('{"prompt": "x", "answer": [1]}', "'answer' must be a string or number"),
    ('{"prompt": "x", "answer": true}', "'answer' must be a string or number"),
    ('{"id": 1.5, "prompt": "x", "answer": "1"}', "'id' must be a string or integer"),
    ('{"id": "a", "prompt": "y", "answer": "2"}', "duplicate id 'a'"),
])
def test_bad_lines_name_file_and_line(tmp_path, line, message):
    path = write(tmp_path, [json.dumps({"id": "a", "prompt": "x", "answer": "1"}), line])
    with pytest.raises(S3DSLError) as err:
        load_data_task(path, None)
    assert f"{path}:2:" in str(err.value)
    assert message in str(err.value)


def test_duplicate_id_hint_points_at_first_use(tmp_path):
    path = write(tmp_path, ['{"prompt": "x", "answer": 1}',
                            '{"id": 1, "prompt": "y", "answer": 2}'])
    with pytest.raises(S3DSLError) as err:
        load_data_task(path, None)
    assert ":2: duplicate id '1'" in str(err.value) and "line 1" in str(err.value)


def test_empty_and_missing_files(tmp_path):
    with pytest.raises(S3DSLError, match="no problems"):
        load_data_task(write(tmp_path, ["", "  "]), None)
    with pytest.raises(S3DSLError, match="no such data file"):
        load_data_task(tmp_path / "nope.jsonl", None)


def test_unknown_extractor_did_you_mean(tmp_path):
    with pytest.raises(S3DSLError) as err:
        get_extractor("boxd")
    assert "did you mean 'boxed'" in str(err.value)
    path = write(tmp_path, ['{"prompt": "x", "answer": 1}'])
    with pytest.raises(S3DSLError, match="last-number"):
        load_data_task(path, "lastnumber")
    assert load_data_task(path, "last_number").extractor == "last-number"


def test_extractors():
    assert extract_hash("1+2=3;3*2=6#6") == "6"
    assert extract_hash("a#b# 12 ") == "12"
    assert extract_hash("no hash") is None and extract_hash("ends#") is None
    assert extract_last_number("so 3 apples and 1,250.5 pears") == "1250.5"
    assert extract_last_number("x = -7.") == "-7"
    assert extract_last_number("none") is None
    assert extract_boxed(r"thus \boxed{\frac{1}{2}} and") == r"\frac{1}{2}"
    assert extract_boxed(r"\boxed{1} then \boxed{ {a}{b} }") == "{a}{b}"
    assert extract_boxed(r"\boxed{unclosed") is None and extract_boxed("plain") is None
    assert extract_choice("I think the answer is (c).") == "C"
    assert extract_choice("Answer: B") == "B"
    assert extract_choice("options A or D") == "D"
    assert extract_choice("nothing here") is None


def test_normalized_match():
    assert normalized_match(" 42 ", "42")
    assert normalized_match("2.50", "2.5") and normalized_match("5/2", "2.5")
    assert normalized_match("1,000", "1000")
    assert normalized_match("New  York", "New York")
    assert not normalized_match("41", "42") and not normalized_match(None, "42")
    assert not normalized_match("abc", "ABC")


def test_run_on_a_data_file_end_to_end(tmp_path):
    from s3dsl.cli.app import app

    path = write(tmp_path, [json.dumps({"prompt": f"{i}+1=", "answer": i + 1}) for i in range(2)])
    result = CliRunner().invoke(app, [
        "run", "single", "--data", str(path), "--extractor", "last-number", "--model",
        "tiny-random", "--set", "gen_length=8", "--set", "steps=8", "--no-db",
        "--json", str(tmp_path / "r.json"),
    ])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["task"] == "d" and data["n_problems"] == 2


def test_cli_bad_data_file_is_one_line_exit_2(tmp_path):
    import subprocess
    import sys

    path = write(tmp_path, ['{"prompt": "x", "answer": 1}', "{oops"])
    proc = subprocess.run(
        [sys.executable, "-c", "from s3dsl.cli import main; main()", "run", "single", "--data",
         str(path), "--model", "tiny-random", "--no-db"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert f"{path}:2: invalid JSON" in proc.stderr
