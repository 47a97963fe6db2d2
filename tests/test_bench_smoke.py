"""Smoke test of benchmarks/compiler_bench.py: the whole code path on tiny-random, structure only.

Timings are never asserted here (shared CI machines); the benchmark itself reports its targets.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "compiler_bench.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("compiler_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["compiler_bench"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_quick_run_writes_every_row(tmp_path: Path) -> None:
    bench = load_bench()
    doc = bench.main(["--quick", "--model", "tiny-random", "--n", "1", "--out", str(tmp_path)])

    written = json.loads((tmp_path / "compiler_bench.json").read_text())
    assert written == json.loads(json.dumps(doc))
    assert written["meta"]["quick"] is True
    assert written["meta"]["model"] == "tiny-random"

    labels = [r["metric"].split(".")[0] for r in written["rows"]]
    assert labels == sorted(labels, key=lambda x: (int(x.rstrip("abcd")), x))  # table order
    rows = {r["key"]: r for r in written["rows"]}
    expected = {
        "forwards",
        "attribution:opt1",
        *(f"attribution:{p}" for p in bench.ATTRIBUTION),
        "wall",
        "overhead:rows1-2",
        "batching",
        "overhead:s3",
        "overhead:single",
        "gpu:s3",
        "gpu:single",
        "gpu:compile-steps",
        "prompt-cache",
        "static-steps",
    }
    assert set(rows) == expected
    for r in written["rows"]:
        assert set(r) == {
            "key",
            "metric",
            "setup",
            "compiled",
            "baseline",
            "ratio",
            "target",
            "met",
            "data",
        }
        assert r["met"] in (True, False, None)

    fwd = rows["forwards"]["data"]
    assert fwd["n_problems"] == 1
    assert isinstance(fwd["identical"], bool)
    assert fwd["compiled_forwards"] > 0 and fwd["reference_forwards"] > 0
    assert fwd["ratio"] == fwd["compiled_forwards"] / fwd["reference_forwards"]
    for p in bench.ATTRIBUTION:
        assert rows[f"attribution:{p}"]["data"]["disabled"] == [p]
    assert rows["wall"]["data"]["compiled_wall_s"] > 0
    assert rows["batching"]["data"]["throughput_ratio"] > 0
    for key in ("overhead:s3", "overhead:single"):
        data = rows[key]["data"]
        assert 0 < data["forward_s"] <= data["wall_s"]
        assert data["forward_calls"] > 0
    # no GPU in the test: the GPU rows say so instead of inventing numbers
    assert rows["gpu:s3"]["compiled"].startswith("not measured")
    assert rows["gpu:s3"]["met"] is None

    md = (tmp_path / "compiler_bench.md").read_text()
    table = [line for line in md.splitlines() if line.startswith("|")]
    assert len(table) == 2 + len(expected)  # header, separator, one line per row


def test_gpu_measurement_code_path_on_cpu() -> None:
    """The GPU rows cannot run here; their measuring code does, on a tiny bf16 model on the CPU."""
    import torch
    from rich.progress import Progress

    bench = load_bench()
    cfg = bench.ModelConfig(
        vocab_size=512, d_model=32, n_layers=1, n_heads=2, d_ff=64, max_len=128, name="tiny-bf16"
    )
    s = bench.Settings(gpu_problems=1, gpu_gen_length=8)
    with Progress(disable=True) as progress:
        rows = bench.measure_gpu_rows(s, progress, cfg, "cpu", torch.bfloat16)
    assert [r.key for r in rows] == ["gpu:s3", "gpu:single"]
    for r in rows:
        assert "NOT a GPU measurement" in r.setup
        assert r.data["forward_calls"] > 0
        assert 0 < r.data["mfu"] and 0 < r.data["tokens_per_s"]
    from s3dsl.models.registry import load_model

    row = bench.row_compiled_steps(s, load_model("tiny-random"), backend="eager")
    assert row.data["same_tokens"] and row.data["tokens_per_s"]["compiled"] > 0


def test_observables_dump_is_repeatable_and_compare_finds_a_change(tmp_path: Path) -> None:
    """benchmarks/observables.py (the bit-for-bit check of engine changes): the same runs dump
    the same records, and a changed record is reported with exit 1."""
    path = BENCH.parent / "observables.py"
    spec = importlib.util.spec_from_file_location("observables", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    args = ["--strategies", "best_of_k", "--models", "tiny-random", "--seeds", "0",
            "--problems", "1"]
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert module.main([str(a), *args]) == 0
    assert module.main([str(b), *args]) == 0
    assert module.main(["--compare", str(a), str(b)]) == 0
    records = json.loads(b.read_text())
    assert set(records) == {"tiny-random/best_of_k/0", "categorical"}
    records["tiny-random/best_of_k/0"]["full"][0]["particles"][0]["tokens"][0] += 1
    b.write_text(json.dumps(records))
    assert module.compare(json.loads(a.read_text()), records) == ["tiny-random/best_of_k/0"]
    assert module.main(["--compare", str(a), str(b)]) == 1


def test_split_prints_each_sides_wall_inside_and_outside_the_model(capsys) -> None:
    """step_ops.py --split: a row whose time inside the model is positive and below the wall."""
    import torch

    sys.path.insert(0, str(BENCH.parent))
    spec = importlib.util.spec_from_file_location("step_ops", BENCH.parent / "step_ops.py")
    step_ops = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(step_ops)
    from timed_model import TimedModel

    from s3dsl.models.registry import load_model

    model = TimedModel(load_model("tiny-random"))
    ids = torch.full((2, 40), model.mask_id)
    calls = {"s3dsl": 0, "hand": 0}

    def side(name):
        def run(rep):
            calls[name] += 1
            with torch.inference_mode():
                model.forward(ids, ids != -1)
                sum(range(20000))  # work outside the model
        return run

    cfg = step_ops.hb.Config("best_of_k", 2, 8)
    step_ops.report_split({"s3dsl": side("s3dsl"), "hand": side("hand")}, model,
                          "tiny-random (x)", cfg, repeats=2)
    row = capsys.readouterr().out.strip().strip("|").split(" | ")
    assert calls == {"s3dsl": 2, "hand": 2} and row[1] == cfg.label
    wall, inside, outside = (float(row[i].split(" / ")[0]) for i in (3, 5, 6))
    assert 0 < inside < wall and outside > 0


def test_timed_model_counts_what_went_through_the_model_in_either_mode() -> None:
    """The benchmarks' one timer: every row and position of a run's forwards counted once (the
    executor's own counters agree), time positive, `take_busy` resets; events mode on a CPU
    reads the clock too."""
    sys.path.insert(0, str(BENCH.parent))
    from timed_model import TimedModel

    from s3dsl.catalog import resolve_strategy
    from s3dsl.compiler.passes import plan
    from s3dsl.models.registry import load_model
    from s3dsl.session import compile_file, execute
    from s3dsl.tasks.registry import get_task

    task = get_task("arith")
    program = compile_file(resolve_strategy("best_of_k"), {"k": "2"}, 16, task.default_verifier)
    problems = task.problems("test", 2)
    for blocking in (True, False):
        model = TimedModel(load_model("tiny-random"), blocking=blocking)
        results, counters = execute(plan(program, 2), model, problems, task.extract_answer,
                                    task.is_correct, 0, 2)
        # (one call more than the engine's forwards: the batch's prompt-cache fill, no rows)
        assert (model.rows, model.calls) == (counters.forward_rows, counters.forward_calls + 1)
        assert model.tokens > 0 and model.forward_s > 0
        assert model.take_busy() > 0 and (model.forward_s, model.calls, model.rows) == (0, 0, 0)
