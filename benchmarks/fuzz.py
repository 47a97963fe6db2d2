"""Fuzz s3dsl with hostile input (issue 12): every case must end in success or in a user error
(`S3DSLError`, one line, `file:line:col` for strategy files), never in another exception, within
2 s and 500 MB.

    python benchmarks/fuzz.py                     # 10,000 cases, about 10 minutes on 2 cores
    python benchmarks/fuzz.py --cases 500         # a quick look
    python benchmarks/fuzz.py --readme README.md  # also writes the counts into the README

Cases come from `fuzz_inputs.py` (hypothesis strategies): strategy files in both forms, valid and
mutated, `--set` flags, `--seed`/`--batch-size`, JSONL data files, `--db` files, and model folders
(official LLaDA / Dream layouts and the shipped one) with one file damaged (through `s3dsl
compile` and `s3dsl run`). Each runs
in-process through the code path of `s3dsl validate`/`compile` (parse, build, plan, print the plan
with rich), and a strategy that compiles to a small plan also runs on a stub model (one problem),
so "validates, then fails at run time" is caught too. Per case: wall time, and peak Python memory
by `tracemalloc` (which also slows every case, so the times are upper bounds). A case over 2 s
(model folders aside) runs again at the end with tracemalloc off: the 2 s target is on that time.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import re
import resource
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
import traceback
import tracemalloc
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from fuzz_inputs import Case, any_case  # noqa: E402

from s3dsl.dsl.errors import S3DSLError  # noqa: E402

POSITIONED = re.compile(r"^[^\n]+:\d+:\d+: error: [^\n]+$")
SLOW_S = 2.0  # the per-case target (the summary counts cases over it)
CASE_TIMEOUT_S = 20  # a case still running then counts as an internal error (a hang)


@dataclass
class Outcome:
    kind: str
    result: str  # ok | error | internal
    message: str
    seconds: float
    peak_bytes: int
    positioned: bool  # the error says file:line:col on one line
    ran: bool = False  # the compiled plan also ran on the stub model
    cpu_seconds: float = 0.0  # this process's CPU time (wall time also counts other jobs)
    own_bytes: int = 0  # peak traced memory over what was allocated when the case began
    case: str = ""  # the input itself, kept for a case over SLOW_S or an internal error (--out)
    untraced_s: float | None = None  # a case over SLOW_S, run again without tracemalloc


class StubModel:
    """A `MaskedLM` with fixed random logits per position: fast, and every runtime path works."""

    name = "stub"
    shifted_logits = False
    max_length = 64

    def __init__(self) -> None:
        from s3dsl.models.tokenizer import CharTokenizer

        self.tokenizer = CharTokenizer()
        self.mask_id = self.tokenizer.mask_id
        self.vocab_size = len(self.tokenizer)
        gen = torch.Generator().manual_seed(0)
        self.table = torch.randn(self.max_length, self.vocab_size, generator=gen) * 3

    def forward(self, ids, attention_mask, gen_length=None):
        batch, length = ids.shape
        bias = (ids.remainder(7).float() * 0.1).unsqueeze(-1)
        return self.table[:length].unsqueeze(0).expand(batch, -1, -1) + bias

    def num_parameters(self) -> int:
        return 0

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")


class Runner:
    """Runs cases in a scratch folder; `run` never raises (that is what it measures)."""

    def __init__(self, workdir: Path, run_plans: bool = True, timeout_s: int | None = None):
        from s3dsl.catalog import resolve_strategy
        from s3dsl.compiler.passes import plan
        from s3dsl.session import compile_file
        from s3dsl.tasks.base import Problem

        self.workdir = workdir
        self.run_plans = run_plans
        self.timeout_s = timeout_s  # needs drive()'s SIGALRM handler
        self.model = StubModel()
        self.problem = Problem(id="p1", prompt="1+2=", answer="3")
        self.single = plan(compile_file(resolve_strategy("single"), None, 8), 2)
        from s3dsl.cli import emit  # noqa: F401 - imported once here, not inside the first case

        intact = {"layout": "llada", "file": "config.json", "change": "truncate",
                  "fraction": "1.0"}  # (every byte kept: the intact folder)
        for warm_up in (Case("strategy", b"program:\n  step: denoise\n"),
                        Case("strategy", b"step: denoise | score(v)\n", "case.s3"),
                        Case("checkpoint", b"", "config.json", intact)):
            self.run(warm_up)  # builds the grammar, imports rich and transformers, writes the
            # model folders (`checkpoint_bases`), outside the measured cases

    def run(self, case: Case) -> Outcome:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        start, cpu_start = time.perf_counter(), time.process_time()
        ran = False
        if self.timeout_s:
            signal.alarm(self.timeout_s)
        try:
            ran = getattr(self, "_" + case.kind)(case)
            result, message = "ok", ""
        except S3DSLError as e:
            result, message = "error", e.render()
        except Exception as e:  # noqa: BLE001 - what the fuzzer is looking for
            frame = traceback.extract_tb(e.__traceback__)[-1]
            where = f"{Path(frame.filename).name}:{frame.lineno}"
            result, message = "internal", f"{type(e).__name__} at {where}: {str(e)[:200]}"
        finally:
            if self.timeout_s:
                signal.alarm(0)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        _, peak = tracemalloc.get_traced_memory()
        if result == "error":
            try:  # what the CLI does with it: one line to a stream that only takes ASCII
                from s3dsl.cli import emit

                emit(message, io.TextIOWrapper(io.BytesIO(), encoding="ascii"))
            except Exception as e:  # noqa: BLE001
                result, message = "internal", f"printing the error failed: {type(e).__name__}"
        positioned = bool(POSITIONED.match(message))
        kept = repr(case)[:4000] if result == "internal" or seconds > SLOW_S else ""
        return Outcome(case.kind, result, message[:300], seconds, peak, positioned, ran, cpu,
                       max(0, peak - base), kept)

    # -- one method per case kind; each returns whether a plan ran on the model
    def _strategy(self, case: Case) -> bool:
        return self._compile(case, None)

    def _flags(self, case: Case) -> bool:
        return self._compile(case, case.overrides)

    def _compile(self, case: Case, overrides: dict[str, str] | None) -> bool:
        from rich.console import Console

        from s3dsl.cli import views
        from s3dsl.compiler.passes import plan
        from s3dsl.session import compile_file, execute

        path = self.workdir / case.filename
        path.write_bytes(case.data)
        program = compile_file(path, overrides, 8, "arith-heuristic")
        the_plan = plan(program, 2)
        console = Console(file=io.StringIO(), width=100)
        console.print(f"[green]ok[/green] {views.user_text(f'{path} ({program.name})')}")
        views.print_plan(console, the_plan, self.model, explain=True)
        d = program.decode
        small = d.gen_length <= 16 and d.steps <= 16 and the_plan.cost.peak_particles <= 64
        if not (self.run_plans and small):
            return False
        from s3dsl.tasks.data import extract_hash, normalized_match

        execute(the_plan, self.model, [self.problem], extract_hash, normalized_match, 0, 2)
        return True

    def _options(self, case: Case) -> bool:
        from s3dsl.session import check_run_options
        from s3dsl.store import MEMORY, Store

        check_run_options(case.seed, case.batch_size)
        config = {"strategy": "x", "task": "t", "model": {"name": "m"}, "seed": case.seed,
                  "opt_level": 2}
        with Store(MEMORY) as store:
            store.open_run(config, [self.problem], {})
        return False

    def _data(self, case: Case) -> bool:
        from s3dsl.session import check_run_limits
        from s3dsl.tasks.packs import load_task_file

        path = self.workdir / case.filename
        path.write_bytes(case.data)
        task = load_task_file(path, None, None)  # what `--data FILE` does
        check_run_limits(self.single, self.model, task.problems())
        return False

    def _db(self, case: Case) -> bool:
        from s3dsl.store import Store

        path = self.workdir / "case.db"
        for leftover in self.workdir.glob("case.db*"):
            leftover.unlink()
        if case.filename == "foreign":
            with sqlite3.connect(path) as db:
                db.execute("CREATE TABLE runs (a, b)")
        elif case.filename == "ours":
            Store(path).close()
        elif case.filename != "missing":
            path.write_bytes(case.data)
        config = {"strategy": "x", "task": "t", "model": {"name": "m"}, "seed": 0, "opt_level": 2}
        with Store(path) as store:
            store.open_run(config, [self.problem], {})
        return False


    def _checkpoint(self, case: Case) -> bool:
        """`s3dsl compile` (shapes only) and `s3dsl run single` (one problem, gen 8) on a model
        folder with one file changed (`fuzz_inputs.checkpoint`)."""
        from typer.testing import CliRunner

        from s3dsl.cli.app import app

        folder = changed_checkpoint(self.workdir, case)
        through_hf = case.overrides["layout"].startswith("hf")
        common = ["--task", "arith", "--model", f"hf:{folder}" if through_hf else str(folder)]
        for args in (["compile", "single", *common],
                     ["run", "single", *common, "--limit", "1", "--no-db", "--set", "gen_length=8",
                      "--set", "steps=8"]):
            result = CliRunner().invoke(app, args)
            if result.exception is not None and not isinstance(result.exception, SystemExit):
                raise result.exception
            if result.exit_code:
                raise RuntimeError(f"exit {result.exit_code} without an exception")
        return True


def checkpoint_bases(workdir: Path) -> dict[str, Path]:
    """One intact folder per layout, written once per workdir: the tiny official LLaDA and Dream
    checkpoints, the shipped format (`tiny-random` saved to disk) and a tiny BERT masked LM saved
    by transformers (read through `--model hf:DIR`)."""
    from s3dsl.models.registry import TINY_CONFIG, build_random_model, save_model
    from s3dsl.models.tiny_official import write_checkpoint

    root = workdir / "bases"
    bases = {layout: root / layout for layout in ("llada", "dream", "native", "hf-bert")}
    if not root.is_dir():
        for layout in ("llada", "dream"):
            write_checkpoint(bases[layout], layout)
        save_model(build_random_model(TINY_CONFIG).module, bases["native"])
        write_hf_bert(bases["hf-bert"])
    return bases


def write_hf_bert(folder: Path) -> None:
    """A randomly initialised 2-layer BERT masked LM whose word-piece vocabulary holds the arith
    task's characters, saved with transformers' own `save_pretrained` (nothing downloaded)."""
    import transformers

    from s3dsl.models.tokenizer import DEFAULT_CHARS

    folder.mkdir(parents=True)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    (folder / "vocab.txt").write_text("\n".join(specials + list(DEFAULT_CHARS)) + "\n")
    tok = transformers.BertTokenizer(vocab=str(folder / "vocab.txt"))
    config = transformers.BertConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=32,
                                     max_position_embeddings=128)
    with torch.random.fork_rng():  # the same weights every time, the caller's RNG untouched
        torch.manual_seed(0)
        transformers.BertForMaskedLM(config).save_pretrained(folder)
    tok.save_pretrained(folder)


def changed_checkpoint(workdir: Path, case: Case) -> Path:
    """The case's folder: links to the intact layout's files, and the one changed file."""
    import shutil

    d = case.overrides
    base = checkpoint_bases(workdir)[d["layout"]]
    folder = workdir / "checkpoint"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    for path in base.iterdir():
        if path.name != case.filename:
            (folder / path.name).symlink_to(path)
    original = (base / case.filename).read_bytes()
    change = d["change"]
    if change == "delete":
        return folder
    target = folder / case.filename
    if change == "bytes":
        target.write_bytes(case.data)
    elif change == "truncate":
        target.write_bytes(original[: int(len(original) * float(d["fraction"]))])
    elif case.filename.endswith(".safetensors"):
        target.write_bytes(changed_tensors(original, d["tensor"], int(d["key"])))
    elif not case.filename.endswith(".json"):  # a plain text file (vocab.txt): the value's text
        target.write_text(d["value"])
    else:
        target.write_text(changed_json(json.loads(original), change, int(d["key"]),
                                       json.loads(d["value"])))
    return folder


def changed_json(doc, change: str, pick: int, value) -> str:
    """`doc` with its root replaced, or its `pick`-th key set or dropped, or (`nested`) a key
    or item inside its `pick`-th key's value set."""
    if change == "root" or not isinstance(doc, dict) or not doc:
        return json.dumps(value)
    keys = sorted(doc)
    key = keys[pick % len(keys)]
    if change == "drop":
        del doc[key]
    elif change == "nested" and isinstance(doc[key], dict) and doc[key]:
        inner = sorted(doc[key])
        doc[key][inner[pick % len(inner)]] = value
    elif change == "nested" and isinstance(doc[key], list) and doc[key]:
        doc[key][pick % len(doc[key])] = value
    else:
        doc[key] = value
    return json.dumps(doc)


def changed_tensors(original: bytes, change: str, pick: int) -> bytes:
    """A safetensors file with its `pick`-th tensor reshaped, cast to an integer or half type,
    renamed, dropped or filled with NaN, or with an extra tensor."""
    from safetensors.torch import load, save

    tensors = load(original)
    name = sorted(tensors)[pick % len(tensors)]
    t = tensors[name]
    if change == "shape":
        tensors[name] = t.flatten()[:-1] if t.dim() == 1 else t[..., :-1].contiguous()
    elif change == "dtype":
        tensors[name] = t.to(torch.int32 if pick % 2 else torch.float16)
    elif change == "rename":
        tensors[name + ".x"] = tensors.pop(name)
    elif change == "drop":
        del tensors[name]
    elif change == "extra":
        tensors["model.extra.weight"] = torch.zeros(2)
    else:
        tensors[name] = torch.full_like(t, math.nan)
    return save(tensors, metadata={"format": "pt"})


def drive(n: int, seed: int, run_plans: bool = True) -> list[Outcome]:
    """`n` cases drawn by hypothesis (generation only: no shrinking, no example database)."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hseed

    torch.set_num_threads(1)
    outcomes: list[Outcome] = []
    slow: dict[int, Case] = {}  # cases over SLOW_S (model folders aside), by outcome index

    def on_alarm(signum, frame):
        raise TimeoutError(f"case ran over {CASE_TIMEOUT_S} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    with tempfile.TemporaryDirectory() as tmp:
        runner = Runner(Path(tmp), run_plans, CASE_TIMEOUT_S)

        @hseed(seed)
        @settings(max_examples=n, database=None, deadline=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(any_case())
        def one(case: Case) -> None:
            outcomes.append(runner.run(case))
            if outcomes[-1].seconds > SLOW_S and case.kind != "checkpoint":
                slow[len(outcomes) - 1] = case
            if len(outcomes) % 1000 == 0:
                internal = sum(o.result == "internal" for o in outcomes)
                print(f"{len(outcomes):,} cases, {internal} internal", file=sys.stderr,
                      flush=True)

        one()
        if not tracing:
            tracemalloc.stop()
        retime_slow(runner, outcomes, slow)
    signal.signal(signal.SIGALRM, previous)
    return outcomes


def retime_slow(runner: Runner, outcomes: list[Outcome], slow: dict[int, Case]) -> None:
    """Run each case that took over SLOW_S again, with tracemalloc off (it records every
    allocation, which slows allocation-heavy cases several times over): what a user waits."""
    if tracemalloc.is_tracing():  # (a caller's trace: the times would be traced again)
        return
    for i, case in slow.items():
        outcomes[i].untraced_s = runner.run(case).seconds


def summary(outcomes: list[Outcome], wall_s: float) -> dict:
    errors = [o for o in outcomes if o.result == "error"]
    strategy_errors = [o for o in errors if o.kind == "strategy"]
    internal = [o for o in outcomes if o.result == "internal"]
    # the time target is checking input; a model-folder case also loads a model and decodes
    checked = [o for o in outcomes if o.kind != "checkpoint"] or outcomes
    folders = [o for o in outcomes if o.kind == "checkpoint"]
    slowest = max(checked, key=lambda o: o.seconds)
    biggest = max(outcomes, key=lambda o: o.peak_bytes)
    return {
        "cases": len(outcomes),
        "by_kind": dict(Counter(o.kind for o in outcomes)),
        "ok": sum(o.result == "ok" for o in outcomes),
        "ran_on_model": sum(o.ran for o in outcomes),
        "errors": len(errors),
        "strategy_errors": len(strategy_errors),
        "strategy_errors_with_line_col": sum(o.positioned for o in strategy_errors),
        "errors_one_line": sum("\n" not in o.message for o in errors),
        "internal": len(internal),
        "internal_signatures": sorted({o.message.split(":")[0] + " " + o.message.split(" ")[2]
                                       for o in internal}),
        "internal_examples": [o.message for o in internal[:10]],
        "slowest_s": round(slowest.seconds, 3),
        "slowest_case": f"{slowest.kind}: {slowest.result} {slowest.message[:100]}",
        "over_2s": sum(o.seconds > SLOW_S for o in checked),
        "slowest_cpu_s": round(max(o.cpu_seconds for o in checked), 3),
        "over_2s_cpu": sum(o.cpu_seconds > SLOW_S for o in checked),
        # the same cases' times without tracemalloc (a case under SLOW_S traced is under it)
        "slowest_untraced_s": round(max(_untraced(o) for o in checked), 3),
        "over_2s_untraced": sum(_untraced(o) > SLOW_S for o in checked),
        "folder_cases": len(folders),
        "folder_median_s": round(statistics.median(o.seconds for o in folders), 3) if folders
        else None,
        "folder_slowest_s": round(max(o.seconds for o in folders), 3) if folders else None,
        "peak_mb": round(biggest.peak_bytes / 2**20, 1),
        "peak_own_mb": round(max(o.own_bytes for o in outcomes) / 2**20, 1),
        "over_500mb": sum(o.peak_bytes > 500 * 2**20 for o in outcomes),
        "process_max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "wall_s": round(wall_s, 1),
    }


def _untraced(o: Outcome) -> float:
    return o.seconds if o.untraced_s is None else o.untraced_s


def readme_section(s: dict, seed: int) -> str:
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    kinds = ", ".join(f"{k} {v:,}" for k, v in sorted(s["by_kind"].items()))
    return "\n".join([
        f"`python benchmarks/fuzz.py --cases {s['cases']} --seed {seed}`, measured {when} on "
        f"this machine ({s['wall_s']:,} s wall, 1 torch thread, in-process through the "
        "validate/compile path; plans small enough also ran on a stub model):",
        "",
        "| measure | result | target |",
        "| --- | ---: | --- |",
        f"| cases ({kinds}) | {s['cases']:,} | >= 10,000 |",
        f"| ended in success (of which ran on the model) | {s['ok']:,} ({s['ran_on_model']:,}) "
        "| - |",
        f"| user errors, exit 2 (one line: {s['errors_one_line']:,}) | {s['errors']:,} | - |",
        f"| strategy-file errors with file:line:col | {s['strategy_errors_with_line_col']:,} of "
        f"{s['strategy_errors']:,} | all |",
        f"| internal errors (exit 1) | {s['internal']:,} | 0 |",
        f"| slowest case, wall (CPU time), model folders aside | {s['slowest_s']:.2f} s "
        f"({s['slowest_cpu_s']:.2f} s) | - |",
        f"| cases over 2 s, wall (CPU time), model folders aside | {s['over_2s']:,} "
        f"({s['over_2s_cpu']:,}) | - |",
        f"| the same run again without tracemalloc: slowest, cases over 2 s | "
        f"{s['slowest_untraced_s']:.2f} s, {s['over_2s_untraced']:,} | < 2 s, 0 |",
        *([f"| model-folder cases (each loads a model and decodes one problem, under "
           f"tracemalloc): median, slowest wall | {s['folder_median_s']:.2f} s, "
           f"{s['folder_slowest_s']:.2f} s | - |"] if s["folder_cases"] else []),
        f"| peak memory of one case: its own allocations (all traced, baseline included) | "
        f"{s['peak_own_mb']:,} MB ({s['peak_mb']:,} MB) | < 500 MB |",
        f"| cases over 500 MB | {s['over_500mb']:,} | 0 |",
    ])


def write_readme(path: Path, section: str) -> None:
    start, end = "<!-- fuzz:start -->", "<!-- fuzz:end -->"
    text = path.read_text(encoding="utf-8")
    if start not in text:
        raise SystemExit(f"{path} has no {start} ... {end} section")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{start}\n{section}\n{end}{tail}", encoding="utf-8")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--out", type=Path, help="write every outcome and the summary as JSON")
    parser.add_argument("--readme", type=Path, help="write the counts into this README")
    parser.add_argument("--no-run", action="store_true", help="compile only, never execute")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    outcomes = drive(args.cases, args.seed, not args.no_run)
    result = summary(outcomes, time.perf_counter() - start)
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps({"summary": result,
                                        "outcomes": [asdict(o) for o in outcomes]}, indent=1))
    if args.readme:
        write_readme(args.readme, readme_section(result, args.seed))
    return result


if __name__ == "__main__":
    main()
