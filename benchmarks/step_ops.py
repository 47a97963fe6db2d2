"""Torch ops and wall per denoising step, s3dsl against the hand-written loop of
`handwritten_bench.py`: how many (and which) aten ops each side dispatches, 1 torch thread.
With --bytecodes: the Python bytecodes each side executes per run instead (a count that does not
depend on the machine's load), by kind: the model, the text work (decoding and the verifier) and
the engine (everything else). With --in-run F,G (functions of `s3dsl.runtime.rng`, e.g.
uniform): each call's time inside whole s3dsl runs ("cold": after the rest of a step ran)
against the same call repeated at once ("warm", as a micro-benchmark sees it). With --split:
each side's wall inside the model's calls and outside them (the engine: everything else, text
work included), interleaved repeats, as one markdown row (--header: the table's head first).
With --lengths: the mean length in tokens of the candidates each side decodes (the text work
follows it), per seed, then its mean and spread over seeds 0..repeats-1.

    python benchmarks/step_ops.py --model tiny-random --strategy best_of_k --particles 2 --gen 48
    python benchmarks/step_ops.py --model tiny-random --strategy s3 --bytecodes --repeats 7
    python benchmarks/step_ops.py --strategy best_of_k --in-run uniform,host_uniform
    python benchmarks/step_ops.py --strategy s3 --particles 2 --split --repeats 21 --header
    python benchmarks/step_ops.py --strategy s3 --particles 2 --lengths --repeats 80
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, str(Path(__file__).parent))
import handwritten_bench as hb  # noqa: E402


class OpCounter(TorchDispatchMode):
    """Counts every aten op dispatched (inside the model too)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: collections.Counter[str] = collections.Counter()
        self.sites: collections.Counter[str] = collections.Counter()  # innermost project frame

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[str(func.overloadpacket.__name__)] += 1
        frame = sys._getframe(1)
        while frame is not None and "s3dsl" not in frame.f_code.co_filename and \
                "handwritten_bench" not in frame.f_code.co_filename:
            frame = frame.f_back
        if frame is not None:
            self.sites[f"{Path(frame.f_code.co_filename).stem}.{frame.f_code.co_name}"] += 1
        return func(*args, **(kwargs or {}))


MODEL_FILES = {"transformer", "wrapper", "prompt_cache", "block_kv"}
TEXT_FILES = {"tokenizer", "hub_tokenizer", "confidence", "_text", "arith", "heuristic"}


def kind_of(code) -> str:
    """model | text | engine, by the file a bytecode ran in."""
    stem = Path(code.co_filename).stem
    if "torch/nn" in code.co_filename or stem in MODEL_FILES:
        return "model"
    if stem in TEXT_FILES or code.co_name == "completion_text":
        return "text"
    return "engine"


def bytecodes(run) -> collections.Counter:
    """Bytecodes executed by `run()`, per code object (a `sys.settrace` opcode trace)."""
    counts: collections.Counter = collections.Counter()

    def tracer(frame, event, arg):
        frame.f_trace_opcodes = True
        if event == "opcode":
            counts[frame.f_code] += 1
        return tracer

    sys.settrace(tracer)
    try:
        run()
    finally:
        sys.settrace(None)
    return counts


def report_bytecodes(sides: dict, repeats: int, top: int) -> None:
    """Mean bytecodes per run by kind over seeds 0..repeats-1, then s3dsl's busiest engine
    functions. Seeds matter: the text work follows the completions' lengths."""
    engine_top: collections.Counter = collections.Counter()
    for name, fn in sides.items():
        kinds: collections.Counter = collections.Counter()
        for rep in range(repeats):
            counts = bytecodes(lambda r=rep, f=fn: f(r))
            for code, n in counts.items():
                kinds[kind_of(code)] += n
                if name == "s3dsl" and kind_of(code) == "engine":
                    engine_top[f"{Path(code.co_filename).stem}.{code.co_name}"] += n
        print(f"{name:6s} bytecodes per run: " + "  ".join(
            f"{k} {kinds[k] / repeats / 1e3:7.1f}K" for k in ("model", "text", "engine")))
    print("\n## s3dsl: engine bytecodes per run by function")
    for site, n in engine_top.most_common(top):
        print(f"  {site:40s} {n / repeats / 1e3:7.1f}K")


def report_in_run(run, names: list[str], repeats: int) -> None:
    """Median time per call of `rng.<name>` within whole runs, and of the same call repeated
    right after it: the cost a step pays for code and data that the rest of the step evicted."""
    from s3dsl.runtime import rng

    times: dict[str, tuple[list[float], list[float]]] = {}
    saved = {name: getattr(rng, name) for name in names}

    def timed(name: str, fn):
        def call(*args, **kwargs):
            t0 = time.perf_counter()
            out = fn(*args, **kwargs)
            t1 = time.perf_counter()
            fn(*args, **kwargs)
            cold, warm = times.setdefault(name, ([], []))
            cold.append(t1 - t0)
            warm.append(time.perf_counter() - t1)
            return out
        return call

    for name, fn in saved.items():
        setattr(rng, name, timed(name, fn))
    try:
        for rep in range(repeats):
            run(rep)
    finally:
        for name, fn in saved.items():
            setattr(rng, name, fn)
    for name, (cold, warm) in times.items():
        print(f"  rng.{name:20s} {len(cold) / repeats:6.1f} calls/run  in run "
              f"{statistics.median(cold) * 1e6:7.1f} us  repeated at once "
              f"{statistics.median(warm) * 1e6:7.1f} us")


SPLIT_HEAD = ("| model | configuration | repeats | wall s3dsl / hand (ms) | ratio | in the model "
              "s3dsl / hand (ms) | outside the model s3dsl / hand (ms) | outside ratio |\n"
              "|---|---|---:|---:|---:|---:|---:|---:|")


def report_split(sides: dict, model, label: str, cfg, repeats: int) -> None:
    """Medians over interleaved repeats (seed = repeat) of each side's wall, its time inside the
    model's calls, and the rest; one markdown row. `sides` run on `model`, a
    `timed_model.TimedModel`."""
    rows: dict[str, list[tuple[float, float]]] = {k: [] for k in sides}
    for rep in range(repeats):
        for name in (sides if rep % 2 == 0 else list(sides)[::-1]):
            model.take_busy()
            t0 = time.perf_counter()
            sides[name](rep)
            rows[name].append((time.perf_counter() - t0, model.take_busy()))
    med = {name: [statistics.median(w for w, _ in v), statistics.median(m for _, m in v),
                  statistics.median(w - m for w, m in v)] for name, v in rows.items()}
    (sw, sm, so), (hw, hm, ho) = med["s3dsl"], med["hand"]
    print(f"| {label.split(' (')[0]} | {cfg.label} | {repeats} | {sw * 1e3:.1f} / {hw * 1e3:.1f} | "
          f"{sw / hw:.2f} | {sm * 1e3:.1f} / {hm * 1e3:.1f} | {so * 1e3:.1f} / {ho * 1e3:.1f} | "
          f"{so / ho:.2f} |", flush=True)


def report_lengths(sides: dict, repeats: int) -> None:
    """Per side, the mean token length (up to EOS) of the candidates it decoded for the verifier
    in each run (seed = repeat; the final particles' decode is not counted on either side): on an
    untrained model it follows each side's own draws."""
    from s3dsl.runtime import scoring

    decoded = scoring.completion_text
    cuts: list[int] = []

    def counting(tokens, tokenizer):
        text, cut = decoded(tokens, tokenizer)
        cuts.append(cut)
        return text, cut

    per_run: dict[str, list[float]] = {k: [] for k in sides}
    scoring.completion_text = hb.completion_text = counting
    try:
        for rep in range(repeats):
            for name, fn in sides.items():
                cuts.clear()
                fn(rep)
                per_run[name].append(statistics.mean(cuts) if cuts else 0.0)
    finally:
        scoring.completion_text = hb.completion_text = decoded
    for name, means in per_run.items():
        spread = statistics.stdev(means) if len(means) > 1 else 0.0
        print(f"{name:6s} tokens per decoded candidate, mean over seeds 0-{repeats - 1}: "
              f"{statistics.mean(means):.1f} (sd over seeds {spread:.1f}); first seeds: "
              + " ".join(f"{m:.0f}" for m in means[:10]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny-random")
    ap.add_argument("--strategy", default="best_of_k")
    ap.add_argument("--particles", type=int, default=2)
    ap.add_argument("--gen", type=int, default=48)
    ap.add_argument("--problems", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--bytecodes", action="store_true",
                    help="Python bytecodes per run by kind (deterministic) instead of ops")
    ap.add_argument("--in-run", default="", metavar="F,G",
                    help="time these rng functions within whole runs and repeated at once")
    ap.add_argument("--split", action="store_true",
                    help="wall inside and outside the model's calls, both sides (a markdown row)")
    ap.add_argument("--header", action="store_true", help="with --split: the table's head first")
    ap.add_argument("--lengths", action="store_true",
                    help="mean token length of the candidates each side decodes, per seed")
    args = ap.parse_args()
    torch.set_num_threads(1)
    model, label = hb.bench_model(args.model, "cpu")
    task = hb.get_task("arith")
    problems = task.problems("test", args.problems)
    cfg = hb.Config(args.strategy, args.particles, args.gen)
    steps = args.gen  # one denoising step per position (the bench's schedule)
    if args.split:
        from timed_model import TimedModel

        model = TimedModel(model)
    with tempfile.TemporaryDirectory() as tmp, torch.inference_mode():
        (Path(tmp) / "s3_systematic.yaml").write_text(hb.S3_SYSTEMATIC)
        sides = {"s3dsl": lambda r: hb.s3dsl_run(model, problems, cfg, r, Path(tmp)),
                 "hand": lambda r: hb.handwritten(model, task, problems, cfg, r)}
        for fn in sides.values():
            fn(0)
        if args.split:
            if args.header:
                print(SPLIT_HEAD)
            report_split(sides, model, label, cfg, args.repeats)
            return
        if args.lengths:
            print(f"# {cfg.label}, model {label}, {len(problems)} problem(s)")
            report_lengths(sides, args.repeats)
            return
        if args.in_run:
            print(f"# {cfg.label}, model {label}, s3dsl, {args.repeats} runs, 1 thread")
            report_in_run(sides["s3dsl"], args.in_run.split(","), args.repeats)
            return
        if args.bytecodes:
            print(f"# {cfg.label}, model {label}, {len(problems)} problem(s), seeds "
                  f"0-{args.repeats - 1}")
            report_bytecodes(sides, args.repeats, args.top)
            return
        walls: dict[str, list[float]] = {k: [] for k in sides}
        for rep in range(args.repeats):
            for name in (sides if rep % 2 == 0 else list(sides)[::-1]):
                t0 = time.perf_counter()
                sides[name](rep)
                walls[name].append(time.perf_counter() - t0)
        print(f"# {cfg.label}, model {label}, {len(problems)} problem(s), 1 thread, "
              f"{args.repeats} interleaved repeats")
        counts, sites = {}, {}
        for name, fn in sides.items():
            with OpCounter() as counter:
                fn(0)
            counts[name] = counter.ops
            sites[name] = counter.sites
            total = sum(counter.ops.values())
            print(f"{name:6s} median wall {statistics.median(walls[name]) * 1e3:8.1f} ms  "
                  f"per step {statistics.median(walls[name]) / steps * 1e3:6.2f} ms  "
                  f"aten ops {total} ({total / steps:.0f} per step)")
        for name, ops in counts.items():
            print(f"\n## {name}: top ops per step")
            for op, c in ops.most_common(args.top):
                print(f"  {op:28s} {c / steps:7.1f}")
            print(f"\n## {name}: ops per step by the innermost project function")
            for site, c in sites[name].most_common(args.top):
                print(f"  {site:40s} {c / steps:7.1f}")


if __name__ == "__main__":
    main()
