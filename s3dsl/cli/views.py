"""Rich renderings of runs, plans and listings: tables a person reads at a glance."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console, Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from s3dsl.compiler.cost import predict
from s3dsl.compiler.passes import PASSES, Plan
from s3dsl.errors import printable
from s3dsl.runtime.scoring import Match
from s3dsl.session import RunSummary


def user_text(text: str) -> str:
    """User text (names, descriptions, values) made safe for rich markup: `[/]` prints as-is."""
    return escape(printable(text))


def run_table(s: RunSummary, is_correct: Match | None = None) -> Table:
    """One run as metric/value rows: readable in any terminal width. With the task's
    `is_correct`, a run whose problems keep several particles also shows pass@k."""
    title = f"{s.strategy} on {s.task} ({s.model}, opt level {s.opt_level})"
    table = Table(title=user_text(title))
    table.add_column("metric")
    table.add_column("value", justify="right")
    correct = round(s.accuracy * s.n_problems)
    table.add_row("accuracy", f"{100 * s.accuracy:.1f}%  ({correct}/{s.n_problems})")
    table.add_row("forward passes (total)", f"{s.nfe_total:,}")
    table.add_row("forward passes per problem", f"{s.nfe_per_problem:,.1f}")
    bound = "exact" if s.predicted_exact else "upper bound"
    table.add_row(f"  predicted per problem ({bound})", f"{s.predicted_nfe_per_problem:,}")
    table.add_row("tokens/s (answers)", f"{s.tokens_per_s:,.1f}")
    table.add_row("wall time", f"{s.wall_s:.2f} s")
    table.add_row("peak memory", f"{s.peak_memory_mb:,.0f} MB")
    for metric, value in search_rows(s, is_correct):
        table.add_row(metric, value)
    if s.approximate:
        used = escape(", ".join(s.approximate))
        table.add_row("[red]approximate passes[/red]", f"[red]{used} (tokens may differ)[/red]")
    return table


def search_rows(s: RunSummary, is_correct: Match | None = None) -> list[tuple[str, str]]:
    """Acceptance rate (mh-accept), ESS at resampling, pass@k over the final particles: only the
    ones this run's strategy produces."""
    from s3dsl.metrics import pass_at_k, powers_of_two

    rows = []
    results = s.per_problem
    proposed = sum(r.proposed for r in results)
    if proposed:
        rows.append(("acceptance rate", f"{sum(r.accepted for r in results) / proposed:.1%}"))
    ess = [r.min_ess for r in results if r.min_ess is not None]
    if ess:
        resamples = sum(r.resamples for r in results) / max(len(results), 1)
        # the ESS / n of the weights each resample drew by (exp(score / beta) when scored, else
        # the log-weights), its minimum per problem, averaged: 1.000 means it drew uniformly
        rows.append(("ESS / n of the resampling weights (mean of min)",
                     f"{sum(ess) / len(ess):.3f}"))
        rows.append(("  resamples per problem", f"{resamples:.1f}"))
    n = min((len(r.particles) for r in results), default=0)
    if is_correct is not None and n > 1:
        for k in powers_of_two(n):
            values = [pass_at_k(len(r.particles),
                                sum(bool(is_correct(p.answer, r.answer)) for p in r.particles), k)
                      for r in results]
            rows.append((f"pass@{k} (final particles)", f"{100 * sum(values) / len(values):.1f}%"))
    return rows


def print_plan(console: Console, plan: Plan, model, explain: bool) -> None:
    program = plan.program
    d = program.decode
    console.print(f"[bold]{user_text(program.name)}[/bold]: {user_text(program.description)}")
    console.print(
        f"decode: steps={d.steps} gen_length={d.gen_length} block_length={d.block_length} "
        f"({d.num_blocks} blocks x {d.steps_per_block} steps) temperature={d.temperature:g} "
        f"commit={user_text(d.commit)}"
        + (f" threshold={d.threshold:g}" if d.commit == "threshold" else "")
    )
    if program.params:
        shown = ", ".join(f"{k}={v!r}" for k, v in program.params.items())
        console.print("params: " + user_text(shown))
    for name, spec in program.verifiers.items():
        console.print(f"verifier {user_text(name)} = {user_text(spec.describe())}")
    if explain:
        from s3dsl.compiler.explain import explain_lines

        console.print(ir_table(plan))
        console.print(Text("\n".join(explain_lines(plan))))
    console.print(pass_table(plan))
    reference = predict(program, reuse=False, share_parent=False)
    ratio = plan.cost.forwards / max(reference.forwards, 1)
    console.print(
        f"forward passes per problem: {plan.cost.forwards:,} planned vs {reference.forwards:,} "
        f"for the reference interpreter ({ratio:.2f}x; upper bounds: dedup and early-finished "
        f"blocks save more at run time)"
    )
    if plan.cost.paths > 1:
        console.print(
            f"when= stages open up to {plan.cost.paths} paths per problem (a stop that fires, an "
            "expand that escalates): the bound is the costliest path; `run` reports the forwards "
            "each problem spent"
        )
    console.print(f"peak particles per problem: {plan.cost.peak_particles}")
    if plan.flags.block_kv:  # the block KV caches trade positions, not forwards
        console.print(f"answer positions per forward: {plan.cost.positions_per_forward:,.1f} of "
                      f"{program.decode.gen_length:,} ({plan.flags.block_kv} KV cache, "
                      "approximate)")
    console.print(memory_line(plan, model))


def ir_table(plan: Plan) -> Table:
    reference = predict(plan.program, reuse=False, share_parent=False)
    table = Table(title="IR (particles per problem; forwards per problem, before -> after passes)")
    for col in ("phase", "stage", "particles", "forwards", "where"):
        table.add_column(col)
    for op in plan.program.ops():
        key = f"{op.name}@{op.span.line}" if op.span else op.name
        before = reference.by_stage.get(key, 0)
        after = plan.cost.by_stage.get(key, 0)
        forwards = f"{before:,} -> {after:,}" if op.needs_forward else "-"
        where = f"{Path(op.span.file).name}:{op.span.line}:{op.span.column}" if op.span else ""
        table.add_row(op.phase, user_text(op.describe()), f"{op.n_in} -> {op.n_out}", forwards,
                      user_text(where))
    from s3dsl.compiler.lint import particles_per_block

    table.caption = "particles per block (first step, peak, after): " + ", ".join(
        f"{i}: {a}/{b}/{c}" for i, (a, b, c) in enumerate(particles_per_block(plan.program))
    )
    return table


def pass_table(plan: Plan) -> Table:
    """One row per pass; what each does goes in the caption, so the table fits 80 columns."""
    table = Table(title=f"plan passes (opt level {plan.opt_level})", caption_justify="left")
    for col in ("pass", "level", "on", "forwards/problem", "saves"):
        table.add_column(col, no_wrap=col != "saves")
    for record, p in zip(plan.records, PASSES):
        change = f"{record.forwards_before:,} -> {record.forwards_after:,}"
        saved = record.forwards_before - record.forwards_after
        saves = f"{saved:,} forwards" if saved else p.saves or "-"
        level = f"{p.level}, opt-in" if p.opt_in else str(p.level)
        table.add_row(record.name, level, "yes" if record.enabled else "no", change, saves)
    table.caption = "\n".join(f"{r.name}: {r.doc}" for r in plan.records)
    return table


def memory_line(plan: Plan, model) -> str:
    import torch

    params = model.num_parameters()
    module = getattr(model, "module", None) or getattr(model, "model", None)
    dtype = next(module.parameters()).dtype if module is not None else torch.float32
    config = getattr(model, "config", None)
    hidden = int(getattr(config, "d_model", 0) or getattr(config, "hidden_size", 0) or 1024)
    length = plan.program.decode.gen_length + 64
    chunk = plan.flags.chunk_rows if plan.flags.chunk_rows and plan.flags.chunk_rows < 1 << 20 \
        else plan.cost.peak_particles * 8
    estimate = plan.cost.memory_bytes(
        params=params, param_bytes=torch.finfo(dtype).bits // 8, vocab=model.vocab_size,
        length=length, hidden=hidden, chunk_rows=chunk,
        window=plan.program.decode.block_length,
    )
    from s3dsl.runtime.kv_cache import cache_bytes

    estimate += cache_bytes(plan, model, length, 8, torch.finfo(dtype).bits // 8)
    return (f"peak memory estimate on {user_text(model.name)} ({params:,} params, "
            f"vocab {model.vocab_size}, 8 problems a batch): {estimate / 2**20:,.1f} MB")


REAL_CHECKPOINTS = """\
The shipped models are 0.9M-parameter toys for arith and sudoku. For a real diffusion LM, point
--model at its checkpoint folder on disk (nothing is downloaded):
  s3dsl run s3 --model ~/models/LLaDA-8B-Instruct --data math500.jsonl
The folder is what the hub's snapshot holds: config.json, the (sharded) safetensors weights with
their index, and the tokenizer files. `hf:PATH` loads any local transformers masked LM the same
way (add --trust-remote-code only for a model whose own code you trust). --device cuda for a GPU.
Data: GSM8K, MATH-500 and ARC-Challenge files (JSONL, parquet, datasets save_to_disk folder) are
read with --data; see `s3dsl list tasks`."""


def listing(what: str) -> Table | Group:
    if what == "strategies":
        from s3dsl.catalog import builtin_strategies
        from s3dsl.dsl.loader import load_strategy

        table = Table("name", "description", "file", title="built-in strategies")
        for name, path in builtin_strategies().items():
            description = load_strategy(path).description
            table.add_row(user_text(name), user_text(description), user_text(str(path)))
        return table
    if what == "primitives":
        from s3dsl.compiler.build import signature
        from s3dsl.compiler.primitives import PRIMITIVES

        table = Table("primitive", "signature", "what it does", title="primitives")
        for p in PRIMITIVES:
            aliases = f" (alias {', '.join(p.aliases)})" if p.aliases else ""
            table.add_row(p.name + aliases, signature(p), p.doc)
        return table
    if what == "verifiers":
        from s3dsl.verifiers.registry import VERIFIERS

        table = Table("verifier", "what it scores", title="verifiers")
        for name, (_, doc) in VERIFIERS.items():
            table.add_row(name, doc)
        table.add_row("task-default", "the task's own verifier (e.g. arith-heuristic)")
        return table
    if what == "models":
        from s3dsl.models.registry import MODELS

        table = Table("model", title="models (also: a checkpoint folder, or hf:PATH)")
        for name in MODELS:
            table.add_row(name)
        from s3dsl.models.checkpoint import FAMILIES

        families = ", ".join(f.name for f in FAMILIES)
        native = (
            f"Native families (config.json model_type): {families}; loaded without remote code. "
            "Options: --chat/--no-chat, --system, --dtype, --device cuda:N, --mask-id, "
            "--shifted-logits."
        )
        return Group(table, Text(REAL_CHECKPOINTS), Text(native))
    if what == "passes":
        table = Table("pass", "opt level", "what it does", title="plan passes")
        for p in PASSES:
            level = f"{p.level}, opt-in (--enable-pass)" if p.opt_in else str(p.level)
            table.add_row(p.name, level, p.doc)
        return table
    if what == "extractors":
        return extractor_table()
    from s3dsl.tasks.registry import TASKS, get_task

    table = Table("task", "gen_length", "default model", "default verifier", title="tasks")
    examples = []
    for name in TASKS:
        t = get_task(name)
        table.add_row(name, str(t.gen_length), t.default_model, t.default_verifier)
        p = t.problems("test", 1)[0]
        examples.append(Text(f"{name} prompt:     {p.prompt}\n{name} completion: {p.target}"
                             f"\n{name} answer:     {p.answer}"))
    note = Text("or --data FILE.jsonl with {id, prompt, answer} lines (see s3dsl list extractors)")
    from s3dsl.tasks.packs import packs

    table_packs = Table("task pack", "gen_length", "default verifier", "reads",
                        title="task packs (problems from your --data file; --model required)")
    for pack in packs().values():
        table_packs.add_row(pack.name, str(pack.gen_length), pack.default_verifier,
                            pack.reads or ", ".join(pack.fields))
    return Group(table, *examples, note, table_packs)


def extractor_table() -> Table:
    """The answer extractors for --data files, each with what it reads from a completion."""
    from s3dsl.tasks.data import DEFAULT_EXTRACTOR, EXTRACTORS

    table = Table("extractor", "what it returns", title=f"answer extractors (--extractor; "
                  f"default {DEFAULT_EXTRACTOR})")
    for name, fn in EXTRACTORS.items():
        table.add_row(name, " ".join((fn.__doc__ or "").split()))
    return table
