"""The exact prompt cache: with vs without, and the preallocated context buffer vs the former
per-layer gather + `cat` (issue 11, item 5).

Three ways to compute the answer logits of a prompt-isolated model, side by side in one process:

- `off`: no prompt cache, every forward covers prompt + answer (`--disable-pass prompt-cache`);
- `cat`: the former `forward_answer`: per layer, per forward, gather the rows' prompt
  keys/values (`k[rows]`) and `torch.cat` the answer's onto them (re-created below, patched in);
- `buffer`: the shipped `forward_answer`: a context buffer per layer, allocated once per batch
  shape, prompt part filled when the rows -> prompts map changes, each layer writing only its
  answer keys/values into it (`s3dsl/models/prompt_cache.py`).

Two parts. `micro`: one forward call at each model's size (rows, prompt, answer lengths of its
runs), median of many calls, and the bytes every op of one call allocates (a dispatch mode
summing the storage of each op's fresh outputs: torch's CPU allocator has no counters).
`runs`: whole strategy runs (`run_strategy`, opt 2) under each of the three, interleaved
(off cat buffer, then reversed, ...), one torch thread, with forward rows, positions and the
bytes allocated over a whole run (a separate, counted run: the counting slows it down).

    python benchmarks/prompt_cache_bench.py --out benchmarks/results      # ~15 min, 1 thread
    python benchmarks/prompt_cache_bench.py --quick
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from s3dsl.models.registry import load_model
from s3dsl.models.transformer import MaskPredictor
from s3dsl.runtime.scoring import encode_prompt
from s3dsl.session import run_strategy
from s3dsl.tasks.registry import get_task

MODES = ("off", "cat", "buffer")
MICRO_MODES = (*MODES, "split")


# -- the former forward_answer, for comparison ------------------------------------------------
def cat_forward_answer(self: MaskPredictor, cache, rows, answer_ids, keep_kv=None):
    """The pre-buffer `forward_answer`: per layer, `k[rows]`, `v[rows]` and a `cat` each."""
    b, g = answer_ids.shape
    positions = cache.lengths[rows, None] + torch.arange(g, device=answer_ids.device)
    answer_mask = torch.ones(b, g, dtype=torch.bool, device=answer_ids.device)
    mask = torch.cat([cache.mask[rows], answer_mask], 1)[:, None, None, :]
    x = self._embed(answer_ids, positions)
    cos, sin = self._rotary(positions, x.dtype)
    for block, (k, v) in zip(self.transformer.blocks, cache.kv, strict=True):
        q, k_new, v_new = block._qkv(x, cos, sin)
        keys, values = torch.cat([k[rows], k_new], 2), torch.cat([v[rows], v_new], 2)
        x = block._attend(x, q, keys, values, mask)
        if keep_kv is not None:
            keep_kv.append((k_new, v_new))
    return self.transformer.ff_out(self.transformer.ln_f(x))


def split_forward_answer(self: MaskPredictor, cache, rows, answer_ids):
    """The log-sum-exp alternative, at its best: rows sharing a prompt stack their queries on
    the query axis and attend to the prompt's keys once (no copy of any prompt key), a second
    attention covers the answer keys, and the two are merged by their log-sum-exps. Written for
    the micro layout only (`rows` sorted, the same number of rows per prompt): a general
    version would also sort and pad the rows. CPU only (torch's flash kernel for CPU)."""
    flash = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    b, g = answer_ids.shape
    p = len(cache)
    per = b // p
    positions = cache.lengths[rows, None] + torch.arange(g, device=answer_ids.device)
    prompt_mask = None
    if cache.padded:
        prompt_mask = torch.zeros(cache.mask.shape, dtype=torch.float32)
        prompt_mask = prompt_mask.masked_fill(~cache.mask, float("-inf"))[:, None, None, :]
    x = self._embed(answer_ids, positions)
    cos, sin = self._rotary(positions, x.dtype)
    for block, (k, v) in zip(self.transformer.blocks, cache.kv, strict=True):
        q, k_new, v_new = block._qkv(x, cos, sin)
        heads, hd = q.shape[1], q.shape[3]
        grouped = q.view(p, per, heads, g, hd).transpose(1, 2).reshape(p, heads, per * g, hd)
        o1, l1 = flash(grouped, k, v, attn_mask=prompt_mask)
        o1 = o1.view(p, heads, per, g, hd).transpose(1, 2).reshape(b, heads, g, hd)
        l1 = l1.view(p, heads, per, g).transpose(1, 2).reshape(b, heads, g)
        o2, l2 = flash(q, k_new, v_new)
        lse = torch.logaddexp(l1, l2)
        att = o1 * (l1 - lse).exp()[..., None] + o2 * (l2 - lse).exp()[..., None]
        x = x + block.attn_out(att.transpose(1, 2).reshape(b, g, -1))
        h = block.ff_norm(x)
        x = x + block.ff_out(torch.nn.functional.silu(block.ff_proj(h)) * block.up_proj(h))
    return self.transformer.ff_out(self.transformer.ln_f(x))


@contextlib.contextmanager
def answer_path(mode: str) -> Iterator[None]:
    """`cat` patches the former forward_answer in; `off` and `buffer` use the shipped one."""
    if mode != "cat":
        yield
        return
    shipped = MaskPredictor.forward_answer
    MaskPredictor.forward_answer = cat_forward_answer  # type: ignore[method-assign]
    try:
        yield
    finally:
        MaskPredictor.forward_answer = shipped  # type: ignore[method-assign]


class CountAllocations(TorchDispatchMode):
    """Bytes of every fresh storage an op returns (views and in-place results are not new)."""

    def __init__(self) -> None:
        super().__init__()
        self.bytes = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        seen = {t.untyped_storage().data_ptr() for t in _tensors((args, kwargs))}
        for t in _tensors(out):
            ptr = t.untyped_storage().data_ptr()
            if ptr not in seen:
                seen.add(ptr)
                self.bytes += t.untyped_storage().nbytes()
        return out


def _tensors(tree) -> Iterator[torch.Tensor]:
    if isinstance(tree, torch.Tensor):
        yield tree
    elif isinstance(tree, (list, tuple)):
        for x in tree:
            yield from _tensors(x)
    elif isinstance(tree, dict):
        for x in tree.values():
            yield from _tensors(x)


# -- micro: one forward call ------------------------------------------------------------------
@dataclass(frozen=True)
class Micro:
    """One forward call: `rows` answer rows spread over the prompts of `problems` test
    problems of `task` (left-padded as the executor does, so prompts of unequal length bring
    an attention mask)."""

    model: str
    task: str
    problems: int
    rows: int
    gen: int


def micro(case: Micro, calls: int) -> dict:
    model = load_model(case.model)
    module = model.module
    tok = model.tokenizer
    texts = [encode_prompt(p, tok) for p in get_task(case.task).problems("test", case.problems)]
    width = max(map(len, texts))
    prompt = torch.tensor([[tok.pad_id] * (width - len(t)) + t for t in texts])
    pmask = torch.tensor([[False] * (width - len(t)) + [True] * len(t) for t in texts])
    rows = torch.arange(case.rows) * case.problems // case.rows
    gen = torch.Generator().manual_seed(0)
    answers = torch.randint(3, model.vocab_size, (case.rows, case.gen), generator=gen)
    full_ids = torch.cat([prompt[rows], answers], 1)
    full_mask = torch.cat([pmask[rows], torch.ones_like(answers, dtype=torch.bool)], 1)
    with torch.inference_mode():
        cache = model.encode_prompt(prompt, pmask)
    fns: dict[str, Callable[[], torch.Tensor]] = {
        "off": lambda: module(full_ids, full_mask, case.gen)[:, -case.gen:],
        "cat": lambda: cat_forward_answer(module, cache, rows, answers),
        "buffer": lambda: module.forward_answer(cache, rows, answers),
        "split": lambda: split_forward_answer(module, cache, rows, answers),
    }
    out: dict = {"case": {**case.__dict__, "prompt": width, "padded": bool((~pmask).any())},
                 "ms": {}, "alloc_kb": {}}
    with torch.inference_mode():
        ref = fns["off"]()
        for mode, fn in fns.items():
            diff = (fn() - ref).abs().max().item()
            out.setdefault("max_abs_diff_vs_off", {})[mode] = diff
        times: dict[str, list[float]] = {m: [] for m in fns}
        for i in range(calls):
            if i >= 10 and sum(times["off"]) > 2.0:  # enough calls of a big case
                break
            order = list(fns) if i % 2 == 0 else list(fns)[::-1]
            for mode in order:
                t0 = time.process_time()  # CPU time: the shared machine's waits left out
                fns[mode]()
                times[mode].append(time.process_time() - t0)
        for mode, fn in fns.items():
            out["ms"][mode] = statistics.median(times[mode]) * 1e3
            counter = CountAllocations()
            with counter:
                fn()
            out["alloc_kb"][mode] = counter.bytes / 1024
    return out


# -- runs: whole strategies -------------------------------------------------------------------
@dataclass(frozen=True)
class RunCase:
    strategy: str
    task: str
    model: str
    problems: int
    overrides: tuple[tuple[str, str], ...]

    @property
    def label(self) -> str:
        sets = " ".join(f"{k}={v}" for k, v in self.overrides)
        return f"{self.strategy} {sets} ({self.model}, {self.task}, {self.problems} problems)"


def run_case(case: RunCase, mode: str, model, problems, seed: int):
    disable = ("prompt-cache",) if mode == "off" else ()
    with answer_path(mode):
        t0, c0 = time.perf_counter(), time.process_time()
        summary = run_strategy(case.strategy, model, task=case.task, overrides=dict(case.overrides),
                               seed=seed, batch_size=len(problems), problems=problems,
                               disable=disable)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return wall, cpu, summary


def runs(case: RunCase, repeats: int) -> dict:
    model = load_model(case.model)
    task = get_task(case.task)
    problems = task.problems("test", case.problems)
    walls: dict[str, list[float]] = {m: [] for m in MODES}
    cpus: dict[str, list[float]] = {m: [] for m in MODES}
    preds: dict[str, list] = {}
    counters: dict[str, dict] = {}
    for rep in range(repeats):
        for mode in MODES if rep % 2 == 0 else MODES[::-1]:
            wall, cpu, summary = run_case(case, mode, model, problems, 0)
            walls[mode].append(wall)
            cpus[mode].append(cpu)
            if rep == 0:
                preds[mode] = [(r.completion, [p.tokens for p in r.particles])
                               for r in summary.per_problem]
                counters[mode] = summary.counters
    alloc = {}
    for mode in MODES:
        counter = CountAllocations()
        with counter:
            run_case(case, mode, model, problems, 0)
        alloc[mode] = counter.bytes / 2**20
    return {
        "case": case.label,
        "s": {m: statistics.median(w) for m, w in walls.items()},
        "cpu_min": {m: min(c) for m, c in cpus.items()},
        "walls": walls,
        "cpus": cpus,
        "forward_rows": counters["off"].get("forward_rows"),
        "positions": {m: counters[m].get("positions") for m in MODES},
        "alloc_mb": alloc,
        "same_completions": preds["off"] == preds["cat"] == preds["buffer"],
    }


def default_runs(quick: bool) -> list[RunCase]:
    out = [
        RunCase("s3", "sudoku", "sudoku", 2 if quick else 4, ()),
        RunCase("s3", "arith", "arith", 2 if quick else 4, ()),
        RunCase("best_of_k", "arith", "arith", 2 if quick else 4, (("k", "8"),)),
    ]
    for strategy, n in (("best_of_k", "k"), ("s3", "particles")):
        for particles in (2,) if quick else (2, 8):
            for gen in (48,) if quick else (48, 96, 192):
                out.append(RunCase(strategy, "arith", "tiny-random", 1,
                                   ((n, str(particles)), ("gen_length", str(gen)))))
    return out


MICRO = (
    Micro("tiny-random", "arith", 1, 2, 48), Micro("tiny-random", "arith", 1, 8, 48),
    Micro("tiny-random", "arith", 4, 8, 96), Micro("tiny-random", "arith", 4, 32, 192),
    Micro("arith", "arith", 4, 16, 48), Micro("sudoku", "sudoku", 4, 32, 84),
    Micro("sudoku", "sudoku", 4, 128, 84),
)


def write_markdown(result: dict, path: Path) -> None:
    lines = ["# Prompt cache: off / per-layer cat / preallocated buffer (generated)", "",
             f"{result['machine']}; 1 torch thread; {result['note']}", "",
             "## One forward call (median CPU ms; KB allocated by its ops)", "",
             "| model (task prompts) | rows | prompt | gen | off ms | cat ms | buffer ms | "
             "split ms | off KB | cat KB | buffer KB | split KB | max abs diff cat / buffer / "
             "split vs off |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for m in result["micro"]:
        c, ms, kb, d = m["case"], m["ms"], m["alloc_kb"], m["max_abs_diff_vs_off"]
        lines.append(f"| {c['model']} ({c['problems']} {c['task']}"
                     f"{', padded' if c['padded'] else ''}) | {c['rows']} | {c['prompt']} | "
                     f"{c['gen']} | " + " | ".join(f"{ms[m]:.3f}" for m in MICRO_MODES) + " | "
                     + " | ".join(f"{kb[m]:.0f}" for m in MICRO_MODES) + " | "
                     f"{d['cat']:.1e} / {d['buffer']:.1e} / {d['split']:.1e} |")
    lines += ["", "## Whole runs (opt 2; CPU s of the process, least over repeats; wall: "
              "medians; MB allocated over one run)", "",
              "| run | off CPU s | cat CPU s | buffer CPU s | buffer / off | buffer / cat | wall "
              "buffer / off | positions off / cached | off MB | cat MB | buffer MB | same tokens "
              "(every particle) |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in result["runs"]:
        s, c, p, a = r["s"], r["cpu_min"], r["positions"], r["alloc_mb"]
        lines.append(f"| {r['case']} | {c['off']:.3f} | {c['cat']:.3f} | {c['buffer']:.3f} | "
                     f"{c['buffer'] / c['off']:.2f} | {c['buffer'] / c['cat']:.2f} | "
                     f"{s['buffer'] / s['off']:.2f} | "
                     f"{p['off']} / {p['buffer']} | {a['off']:.0f} | {a['cat']:.0f} | "
                     f"{a['buffer']:.0f} | {r['same_completions']} |")
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--only", choices=("micro", "runs"), default=None)
    ap.add_argument("--note", default="")
    args = ap.parse_args()
    torch.set_num_threads(1)
    result: dict = {"machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
                    "note": args.note, "micro": [], "runs": []}
    if args.only != "runs":
        for case in MICRO[:2] if args.quick else MICRO:
            result["micro"].append(micro(case, 20 if args.quick else args.calls))
            print(json.dumps(result["micro"][-1]), flush=True)
    if args.only != "micro":
        for rc in default_runs(args.quick):
            result["runs"].append(runs(rc, 1 if args.quick else args.repeats))
            print(json.dumps(result["runs"][-1]), flush=True)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        earlier = args.out / "prompt_cache.json"
        if args.only and earlier.is_file():  # keep the other part of an earlier run
            other = "runs" if args.only == "micro" else "micro"
            result[other] = json.loads(earlier.read_text())[other]
        (args.out / "prompt_cache.json").write_text(json.dumps(result, indent=1) + "\n")
        write_markdown(result, args.out / "prompt_cache_bench.md")


if __name__ == "__main__":
    main()
