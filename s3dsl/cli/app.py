"""The commands: run, compile, validate, list, schema (and what later modules register)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from s3dsl.cli import views
from s3dsl.errors import S3DSLError

app = typer.Typer(
    name="s3dsl",
    help="Test-time search on diffusion language models, written as strategy files.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",  # a docstring's paragraphs reflow to the terminal (the rich
    # mode keeps their line breaks, which wrap twice at 80 columns); `code` spans are styled
)
console = Console(highlight=False, soft_wrap=True)
# sudoku: its shipped model sits in the quality band (see README); arith's does not yet
DEFAULT_TASK = "sudoku"

SetOpt = Annotated[list[str], typer.Option("--set", metavar="K=V",
                                          help="Override a param: --set particles=16")]
OptLevel = Annotated[int, typer.Option("--opt-level", "-O", help="0: reference interpreter")]
Disable = Annotated[list[str], typer.Option("--disable-pass", metavar="PASS",
                                            help="Turn a plan pass off")]
Enable = Annotated[
    list[str],
    typer.Option(
        "--enable-pass", metavar="PASS",
        help="Turn an opt-in (approximate) pass on, e.g. approx-prompt-cache",
    ),
]
def _data_defaults() -> tuple[str, str]:
    """--data's defaults, read from the data task itself so the help cannot go stale."""
    from dataclasses import fields

    from s3dsl.tasks.data import DEFAULT_EXTRACTOR, EXTRACTORS, DataTask

    d = {f.name: f.default for f in fields(DataTask)}
    data = (f"JSONL file of {{id, prompt, answer}} lines; defaults: verifier "
            f"{d['default_verifier']}, gen_length {d['gen_length']}, model {d['default_model']}, "
            f"extractor {DEFAULT_EXTRACTOR} (override with --set gen_length=N, --model, "
            "--extractor; the verifier is the strategy's task-default)")
    extractor = (f"Answer extractor for --data: {', '.join(EXTRACTORS)} (default "
                 f"{DEFAULT_EXTRACTOR}; see s3dsl list extractors)")
    return data, extractor


DATA_HELP, EXTRACTOR_HELP = _data_defaults()
PACK_DATA_HELP = ("; or a GSM8K / MATH-500 / ARC-Challenge file (JSONL, parquet, or a datasets "
                  "save_to_disk folder; see --task)")
Strict = Annotated[bool, typer.Option("--strict", help="Treat compiler warnings as errors")]
# one name only: a `--no-trust-remote-code` twin would widen every option row of the help
TrustRemoteCode = Annotated[bool, typer.Option("--trust-remote-code",
                                               help="Allow a hub model's own code")]


def parse_sets(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise S3DSLError(f"--set {item}: expected key=value", None, "e.g. --set particles=16")
        out[key.strip()] = value.strip()
    return out


def load_task(task: str | None, data: Path | None, extractor: str | None = None):
    """The task to run: a built-in task, or a JSONL data file (`{id, prompt, answer}` lines)."""
    if data is not None:
        from s3dsl.tasks.packs import load_task_file

        return load_task_file(data, task, extractor)
    from s3dsl.tasks.registry import get_task

    return get_task(task or DEFAULT_TASK)


def set_threads(threads: int | None) -> None:
    """torch's CPU threads; on a machine shared with other jobs, 1 is often much faster."""
    if threads is not None:
        if threads < 1:
            raise S3DSLError("--threads must be at least 1")
        import torch

        torch.set_num_threads(threads)


def check_device(device: str) -> None:
    """cpu, cuda or cuda:N; a CUDA device must exist."""
    kind, _, index = device.partition(":")
    if kind not in ("cpu", "cuda") or (kind == "cpu" and index) or (index and not index.isdigit()):
        raise S3DSLError(f"--device {device}: expected cpu, cuda or cuda:N")
    if kind == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise S3DSLError(f"--device {device}: no CUDA device is available", None,
                             "use --device cpu")
        if index and int(index) >= torch.cuda.device_count():
            raise S3DSLError(f"--device {device}: only {torch.cuda.device_count()} CUDA devices")


DTYPES = {"fp32": "float32", "float32": "float32", "bf16": "bfloat16", "bfloat16": "bfloat16",
          "fp16": "float16", "float16": "float16"}


def parse_dtype(dtype: str | None):
    """A --dtype name as a torch dtype; None = the model's default (bf16 on a GPU for a real
    checkpoint, float32 on CPU)."""
    if dtype is None or dtype == "auto":
        return None
    if dtype.lower() not in DTYPES:
        from s3dsl.errors import did_you_mean

        raise S3DSLError(f"--dtype {dtype}: unknown", None, did_you_mean(dtype, DTYPES))
    import torch

    return getattr(torch, DTYPES[dtype.lower()])


def load_any_model(
    name: str,
    device: str,
    trust_remote_code: bool = False,
    *,
    dtype: str | None = None,
    mask_id: int | None = None,
    shifted_logits: bool | None = None,
    chat: bool | None = None,
    system: str | None = None,
    weights: bool = True,
):
    """`arith`, `sudoku`, `tiny-random`, a checkpoint folder (the shipped format, or an official
    LLaDA / Dream directory, loaded natively), or `hf:PATH` for transformers."""
    check_device(device)
    torch_dtype = parse_dtype(dtype)
    if name.startswith("hf:"):
        from s3dsl.runtime.adapters.hf import load_hf_model

        return load_hf_model(name[3:], device=device, dtype=torch_dtype,
                             trust_remote_code=trust_remote_code, mask_id=mask_id,
                             shifted_logits=bool(shifted_logits))
    from s3dsl.models.checkpoint import is_official_checkpoint, load_checkpoint

    if Path(name).expanduser().is_dir() and is_official_checkpoint(Path(name).expanduser()):
        return load_checkpoint(name, device=device, dtype=torch_dtype, mask_id=mask_id,
                               shifted_logits=shifted_logits, chat=chat, system=system,
                               weights=weights)
    if chat or system is not None or mask_id is not None or shifted_logits is not None:
        raise S3DSLError(
            f"--chat/--system/--mask-id/--shifted-logits apply to real checkpoints, not '{name}'",
            hint="pass --model DIR (an official LLaDA / Dream folder) or hf:PATH",
        )
    from s3dsl.models.registry import load_model

    return load_model(name, device=device, dtype=torch_dtype)


MaskIdOpt = Annotated[int | None, typer.Option("--mask-id", help="Mask token id (default: "
                                               "config.json's mask_token_id)")]
ShiftedOpt = Annotated[bool | None, typer.Option("--shifted-logits/--aligned-logits",
                                                 help="Logits at i predict token i+1 (Dream)")]
ChatOpt = Annotated[bool | None, typer.Option(
    "--chat/--no-chat", help="Prompt through the checkpoint's chat template (default: if any)")]
SystemOpt = Annotated[str | None, typer.Option("--system", help="System message for --chat")]
DtypeOpt = Annotated[str | None, typer.Option("--dtype", help="bf16, fp16 or fp32 (default: "
                                              "bf16 on a GPU, fp32 on CPU)")]


def report_warnings(path: Path, program, task: str | None, strict: bool) -> int:
    """Print the compiler's warnings for a compiled file (stderr); under --strict they are errors
    (exit 2). Returns how many there were."""
    from s3dsl.compiler.lint import lint
    from s3dsl.dsl.loader import load_strategy

    warnings = lint(program, load_strategy(path), task)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    for w in warnings:
        err.print(w.render(), markup=False, style="red" if strict else "yellow")
    if strict and warnings:
        raise typer.Exit(2)
    return len(warnings)


@app.command()
def run(
    strategy: Annotated[str, typer.Argument(help="A strategy file, or a built-in name (s3)")],
    model: Annotated[str | None, typer.Option(help="Model name, folder, or hf:PATH")] = None,
    task: Annotated[str | None, typer.Option(
        help="Built-in task (arith, sudoku), or the pack --data holds (gsm8k, math500, "
        "arc_challenge; detected from the fields when omitted)")] = None,
    data: Annotated[Path | None, typer.Option(help=DATA_HELP + PACK_DATA_HELP)] = None,
    extractor: Annotated[str | None, typer.Option(help=EXTRACTOR_HELP)] = None,
    split: Annotated[str, typer.Option(help="train or test (held out)")] = "test",
    limit: Annotated[int | None, typer.Option(help="First N problems only")] = None,
    seed: Annotated[int, typer.Option(help="Run seed")] = 0,
    sets: SetOpt = [],  # noqa: B006 - typer reads the default
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N")] = "cpu",
    opt_level: OptLevel = 2,
    disable_pass: Disable = [],  # noqa: B006
    enable_pass: Enable = [],  # noqa: B006
    batch_size: Annotated[int, typer.Option(help="Problems per batch")] = 8,
    mask_id: MaskIdOpt = None,
    shifted_logits: ShiftedOpt = None,
    chat: ChatOpt = None,
    system: SystemOpt = None,
    dtype: DtypeOpt = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write results as JSON")] = None,
    trust_remote_code: TrustRemoteCode = False,
    db: Annotated[Path, typer.Option(help="Results database (resume, s3dsl runs/report)")] = Path(
        "s3dsl-runs.db"
    ),
    no_db: Annotated[bool, typer.Option("--no-db", help="Do not use the database")] = False,
    threads: Annotated[int | None, typer.Option(help="torch CPU threads")] = None,
    strict: Strict = False,
    trace: Annotated[Path | None, typer.Option(help="Record the search per step; write "
                                               "trace.json, PNGs and index.html here")] = None,
) -> None:
    """Run a strategy on a task and print a report (finished problems are kept in --db, so an
    interrupted run resumes where it stopped).

    Benchmarks from your own files: `s3dsl run s3 --model ~/models/LLaDA-8B-Instruct --data
    math500.jsonl` reads GSM8K (question, answer with '#### N'), MATH-500 (problem, answer or
    solution) or ARC-Challenge (question, choices, answerKey) records from JSONL, parquet or a
    datasets save_to_disk folder; the pack is detected from the fields, or named with --task
    math500. It sets the prompt template, answer extraction, scoring (math-verify for MATH) and
    the default verifier (math-heuristic)."""
    from s3dsl.catalog import resolve_strategy
    from s3dsl.compiler.passes import plan
    from s3dsl.session import compile_file, summarize

    check_device(device)
    if limit is not None and limit < 1:
        raise S3DSLError("--limit must be at least 1")
    from s3dsl.session import check_run_limits, check_run_options

    check_run_options(seed, batch_size)
    check_json_target(json_path)
    check_output_folder(trace, "--trace")
    set_threads(threads)
    from s3dsl.distributed import current_world

    world = current_world(device)  # torchrun: problems sharded over ranks, rank 0 reports
    device = world.device(device)
    the_task = load_task(task, data, extractor)
    path = resolve_strategy(strategy)
    program = compile_file(path, parse_sets(sets), the_task.gen_length, the_task.default_verifier)
    report_warnings(path, program, None if data is not None else the_task.name, strict)
    the_plan = plan(program, opt_level, tuple(disable_pass), enable=tuple(enable_pass))
    the_model = load_any_model(model or the_task.default_model, device, trust_remote_code,
                               dtype=dtype, mask_id=mask_id, shifted_logits=shifted_logits,
                               chat=chat, system=system)
    problems = the_task.problems(split, limit)
    if not problems:
        raise S3DSLError(f"no problems in split '{split}'")
    check_run_limits(the_plan, the_model, problems, seed, batch_size)
    from s3dsl.resume import run_stored
    from s3dsl.store import MEMORY, Store

    def opened(done: int, total: int) -> None:
        if done:
            console.print(f"resumed: {done} of {total} problems already done")

    with Store(MEMORY if no_db or not world.is_main else db) as store, _progress(
        world.is_main
    ) as bar:
        title = views.user_text(f"{program.name} on {the_task.name}")
        job = bar.add_task(title, total=len(problems))
        stored = run_stored(
            the_plan,
            the_model,
            the_task,
            problems,
            seed,
            batch_size,
            store,
            split,
            tuple(disable_pass),
            advance=lambda k: bar.advance(job, k),
            on_open=opened,
            world=world,
            trace=trace is not None,
        )
        page = None
        if trace is not None and world.is_main:
            from s3dsl.trace_view import write_traces

            try:
                page = write_traces(store, [stored.run], trace,
                                    f"{program.name} on {the_task.name}")
            except OSError as e:  # (checked before the run; the disk may fill up since)
                raise S3DSLError(f"--trace {trace}: cannot write it ({e.strerror or e})",
                                 None, "the results are kept in --db: run again to resume"
                                 ) from None
    world.finish()
    if not world.is_main:
        return
    results = [s.result for s in stored.results]
    summary = summarize(the_plan, the_model, the_task.name, results, stored.wall_s, seed, None)
    summary.peak_memory_mb, summary.counters = stored.peak_mb, stored.counters
    console.print(views.run_table(summary, the_task.is_correct))
    if json_path is not None:
        try:
            json_path.write_text(json.dumps(summary.to_json(), indent=2))
        except OSError as e:
            raise S3DSLError(f"--json {json_path}: cannot write it ({e.strerror or e})") from None
        console.print(f"wrote {json_path}", markup=False)
    if page is not None:
        console.print(f"wrote the trace: {page}", markup=False)


def check_json_target(path: Path | None) -> None:
    """`--json PATH` is checked before the run: not a folder, its folder creatable."""
    if path is None:
        return
    if path.is_dir():
        raise S3DSLError(f"--json {path}: is a directory", None, "give a file name, e.g. out.json")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise S3DSLError(f"--json {path}: cannot create its folder ({e.strerror or e})") from None


def check_output_folder(path: Path | None, flag: str) -> None:
    """A folder the command writes into after the run (`--trace`, `--out`), made and checked
    before it, so a path that cannot be one fails before any forward, not after the work."""
    if path is None:
        return
    if path.exists() and not path.is_dir():
        raise S3DSLError(f"{flag} {path}: is a file, not a folder", None, "give a folder name")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise S3DSLError(f"{flag} {path}: cannot create it ({e.strerror or e})") from None
    if not os.access(path, os.W_OK):
        raise S3DSLError(f"{flag} {path}: the folder is not writable", None,
                         "give a folder you can write to")


def _progress(show: bool = True) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("problems"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=False,
        disable=not show,
    )


@app.command("compile")
def compile_cmd(
    strategy: Annotated[str, typer.Argument(help="A strategy file or built-in name")],
    task: Annotated[str, typer.Option(help="Task for gen_length and verifier")] = DEFAULT_TASK,
    model: Annotated[str | None, typer.Option(help="Model for the memory estimate")] = None,
    sets: SetOpt = [],  # noqa: B006
    opt_level: OptLevel = 2,
    disable_pass: Disable = [],  # noqa: B006
    enable_pass: Enable = [],  # noqa: B006
    explain: Annotated[bool, typer.Option(help="Show the IR and every pass")] = False,
    strict: Strict = False,
    dtype: DtypeOpt = None,
) -> None:
    """Check a strategy and show its plan and predicted cost."""
    from s3dsl.catalog import resolve_strategy
    from s3dsl.compiler.passes import plan
    from s3dsl.session import compile_file
    from s3dsl.tasks.registry import get_task

    the_task = get_task(task)
    path = resolve_strategy(strategy)
    program = compile_file(path, parse_sets(sets), the_task.gen_length, the_task.default_verifier)
    report_warnings(path, program, task, strict)
    the_plan = plan(program, opt_level, tuple(disable_pass), enable=tuple(enable_pass))
    # a real checkpoint is read for its shapes only (no weights, bf16 unless --dtype says else):
    # estimating an 8B model needs no 32 GB of RAM
    the_model = load_any_model(model or the_task.default_model, "cpu", weights=False, dtype=dtype)
    from s3dsl.runtime.kv_cache import check_model

    check_model(the_plan, the_model)  # a model that cannot run a block KV cache: exit 2 here
    views.print_plan(console, the_plan, the_model, explain)
