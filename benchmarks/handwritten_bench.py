"""s3dsl against straightforward hand-written batched PyTorch of the same algorithms.

The question (issue 11, item 5): is the compiled plan at least as fast as what a competent user
writes by hand in an afternoon? The hand-written side below is LLaDA `generate()`-style code,
batched over problems and particles, with a `torch.unique` dedup of identical rows, a vectorized
systematic resampler, and the same model object, verifier and problems as s3dsl. Both sides use
one torch thread and run interleaved (A B B A ...), so a busy core hurts both alike; the ratio
is s3dsl time / hand-written time per configuration (below 1: s3dsl is faster).

Strategies: best-of-K (K sampled decodes, the task verifier picks) and S3 (N particles x 4
candidates, expand | denoise | score | resample every step; systematic resampling on both sides,
so the resampler's algorithm is the same and only the engine differs). The hand-written side
builds the verifier's candidates with a plain per-row loop (no dedup of decoding). The two sides
draw their noise differently, so their tokens differ, and so do the rows dedup merges: on the
trained model whole problems' particles stay identical or split by luck (forward rows move in
steps of ~70 between seeds, on either side). The table therefore also gives the ratio per forward
row, and the rows of each side (mean over repeats).

Models (`--grid MODEL:GENS:PROBLEMS`): the trained arith model (128 positions: gen 48 and 96) and
the untrained `tiny-random` model (256 positions: gen 192). On an untrained model particles
disagree from the first step, so dedup merges little and far more rows are spent.

    python benchmarks/handwritten_bench.py --out benchmarks/results          # ~30 min, 1 thread
    python benchmarks/handwritten_bench.py --quick                           # ~1 min
    python benchmarks/handwritten_bench.py --device cuda --model 8b --problems 1 --gens 64
        # an 8B-shaped random bf16 model built on the GPU (benchmarks/gpu.sh runs this)
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from s3dsl.catalog import resolve_strategy
from s3dsl.compiler.passes import plan
from s3dsl.models.registry import load_model
from s3dsl.runtime.scoring import completion_text
from s3dsl.session import compile_file, run_strategy
from s3dsl.tasks.registry import get_task
from s3dsl.verifiers import get_verifier
from s3dsl.verifiers.base import Candidate

CANDIDATES = 4  # S3's b
H200_BF16_DENSE_FLOPS = 790e12  # the lent GPU's measured bf16 matrix rate (device tool notes)


@dataclass(frozen=True)
class Config:
    strategy: str  # best_of_k | s3
    particles: int  # K for best-of-K, N for S3
    gen_length: int

    @property
    def label(self) -> str:
        return f"{self.strategy} particles={self.particles} gen={self.gen_length}"


# -- the hand-written side --------------------------------------------------------------------
def left_pad(prompts: list[list[int]], pad: int, gen: int, mask: int) -> tuple[torch.Tensor, int]:
    width = max(map(len, prompts))
    rows = [[pad] * (width - len(p)) + p + [mask] * gen for p in prompts]
    return torch.tensor(rows), width


def candidates(prompts, tokens, logps, filled, tok) -> list[Candidate]:
    """What the verifier reads, row by row: the straightforward loop (no dedup of decoding)."""
    out = []
    for prompt, t, lp, fill in zip(prompts, tokens.tolist(), logps.tolist(), filled.tolist()):
        text, cut = completion_text(t, tok)
        out.append(Candidate(prompt, text, tuple(lp[:cut]), tuple(fill[:cut])))
    return out


def forward_logp(model, x: torch.Tensor, attn: torch.Tensor, gen: int, dedup: bool):
    """log-softmax over the answer positions, identical rows computed once."""
    if dedup:
        uniq, inverse = torch.unique(x, dim=0, return_inverse=True)
        first = torch.zeros(len(uniq), dtype=torch.long, device=x.device).scatter_(
            0, inverse, torch.arange(len(x), device=x.device))
        logits = model.forward(uniq, attn[first], gen)[:, -gen:]
        return torch.log_softmax(logits.float(), -1)[inverse], len(uniq)
    logits = model.forward(x, attn, gen)[:, -gen:]
    return torch.log_softmax(logits.float(), -1), len(x)


def commit_step(x, logp, start, block_end, k, mask_id, temperature, gen_rng):
    """One LLaDA step on every row: Gumbel-max proposal, low-confidence commit of k per row."""
    ans = x[:, start:]
    noise = -torch.log(-torch.log(torch.rand(logp.shape, dtype=torch.float64, generator=gen_rng,
                                             device=logp.device)))
    scores = logp.double() + temperature * noise
    scores[..., mask_id] = -math.inf
    x0 = scores.argmax(-1)
    conf = logp.gather(-1, x0.unsqueeze(-1)).squeeze(-1)
    masked = ans == mask_id
    masked[:, block_end:] = False
    conf = conf.masked_fill(~masked, -math.inf)
    rank = conf.argsort(1, descending=True).argsort(1)
    commit = masked & (rank < k.unsqueeze(1))
    ans = torch.where(commit, x0, ans)
    out = x.clone()
    out[:, start:] = ans
    return out, torch.where(commit, conf, torch.zeros_like(conf))


def schedule(gen: int, block: int, steps: int) -> list[tuple[int, int]]:
    """(block_end, commits) per step: LLaDA's per-block budget, remainder first."""
    per_block = steps // (gen // block)
    out = []
    for b in range(gen // block):
        base, rem = divmod(block, per_block)
        out += [((b + 1) * block, base + (i < rem)) for i in range(per_block)]
    return out


def handwritten(model, task, problems, cfg: Config, seed: int) -> dict:
    tok, mask_id, gen = model.tokenizer, model.mask_id, cfg.gen_length
    verifier = get_verifier(task.default_verifier)
    dev = model.device
    gen_rng = torch.Generator(device=dev).manual_seed(seed)
    prompts = [tok.encode(p.prompt) for p in problems]
    base, start = left_pad(prompts, tok.pad_id, gen, mask_id)
    base = base.to(dev)
    n_prob = len(problems)
    width = cfg.particles * (CANDIDATES if cfg.strategy == "s3" else 1)
    rows = 0
    if cfg.strategy == "best_of_k":
        x = base.repeat_interleave(cfg.particles, 0)
        attn = x != tok.pad_id
        committed = None
        for block_end, k in schedule(gen, gen // 4, gen):
            logp, n = forward_logp(model, x, attn, gen, dedup=True)
            rows += n
            x, lp = commit_step(x, logp, start, block_end, torch.full((len(x),), k, device=dev),
                                mask_id, 1.0, gen_rng)
            committed = lp if committed is None else committed + lp
        ans = x[:, start:]
        texts_rep = [p.prompt for p in problems for _ in range(cfg.particles)]
        cands = candidates(texts_rep, ans, committed, ans == mask_id, tok)
        score = torch.tensor(verifier.score(cands, None)).view(n_prob, cfg.particles)
        best = score.argmax(-1) + torch.arange(n_prob) * cfg.particles  # on the host
        return {"rows": rows, "texts": [cands[i].completion for i in best.tolist()]}
    # S3: the scoring forward of a candidate is also the logits of its next step
    x = base.repeat_interleave(cfg.particles, 0)
    attn_n = x != tok.pad_id
    attn_c = attn_n.repeat_interleave(CANDIDATES, 0)
    logp, rows = forward_logp(model, x, attn_n, gen, dedup=True)
    committed = torch.zeros(x.shape[0], gen, device=dev)
    texts_rep = [p.prompt for p in problems for _ in range(width)]
    for block_end, k in schedule(gen, gen // 4, gen):
        xc = x.repeat_interleave(CANDIDATES, 0)
        xc, lp = commit_step(xc, logp.repeat_interleave(CANDIDATES, 0), start, block_end,
                             torch.full((len(xc),), k, device=dev), mask_id, 1.0, gen_rng)
        lp = lp + committed.repeat_interleave(CANDIDATES, 0)
        logp_c, n = forward_logp(model, xc, attn_c, gen, dedup=True)
        rows += n
        ans = xc[:, start:]
        filled = ans == mask_id
        best_lp, best_tok = logp_c.max(-1)
        clean = torch.where(filled, best_tok, ans)
        cands = candidates(texts_rep, clean, torch.where(filled, best_lp, lp), filled, tok)
        score = torch.tensor(verifier.score(cands, None), dtype=torch.float64, device=dev)
        w = torch.softmax(score.view(n_prob, width) / 0.5, -1)  # beta = 0.5
        u = torch.rand(n_prob, 1, dtype=torch.float64, generator=gen_rng, device=dev)
        points = (torch.arange(cfg.particles, dtype=torch.float64, device=dev) + u) / cfg.particles
        cdf = w.cumsum(-1)
        cdf[:, -1] = 1.0 + 1e-12
        anc = torch.searchsorted(cdf, points, right=True).clamp_max(width - 1)
        anc = (anc + torch.arange(n_prob, device=dev).unsqueeze(1) * width).flatten()
        x, logp, committed = xc[anc], logp_c[anc], lp[anc]
    texts = [tok.decode(r) for r in x[:, start:].tolist()]
    return {"rows": rows, "texts": texts}


# -- the s3dsl side ----------------------------------------------------------------------------
S3_SYSTEMATIC = """name: s3_systematic
params: {particles: 4, candidates: 4, beta: 0.5, temperature: 1.0}
decode: {block_length: "${gen_length // 4}", temperature: "${temperature}", commit: confidence}
verifiers: {v: task-default}
program:
  init: expand(${particles})
  step: expand(${candidates}) | denoise | score(v) | resample(${particles}, method=systematic,
    beta=${beta})
  final: select(by=vote)
"""


def strategy_of(cfg: Config, strategy_dir: Path) -> tuple[str | Path, dict[str, str]]:
    if cfg.strategy == "best_of_k":
        strategy, overrides = "best_of_k", {"k": str(cfg.particles)}
    else:
        strategy = strategy_dir / "s3_systematic.yaml"
        overrides = {"particles": str(cfg.particles), "candidates": str(CANDIDATES)}
    return strategy, {**overrides, "gen_length": str(cfg.gen_length)}


def planning_s(cfg: Config, strategy_dir: Path) -> float:
    """Parsing and planning the strategy, uncached: what the first call of a configuration pays
    on top (run_strategy plans a file once per process: session.planned)."""
    strategy, overrides = strategy_of(cfg, strategy_dir)
    task = get_task("arith")
    start = time.perf_counter()
    plan(compile_file(resolve_strategy(str(strategy)), overrides, task.gen_length,
                      task.default_verifier))
    return time.perf_counter() - start


def s3dsl_run(model, problems, cfg: Config, seed: int, strategy_dir: Path) -> dict:
    strategy, overrides = strategy_of(cfg, strategy_dir)
    summary = run_strategy(strategy, model, task="arith", overrides=overrides, seed=seed,
                           batch_size=len(problems), problems=problems)
    return {"rows": summary.counters.get("forward_rows", 0), "texts": None,
            "execute_s": summary.wall_s}  # the run without parsing and planning the strategy



def timed(fn, device: torch.device) -> tuple[float, dict]:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    out = fn()
    sync()
    return time.perf_counter() - t0, out


def bench_model(name: str, device: str):
    """A model by name: the shipped trained `arith`, the shipped `tiny-random` (randomly
    initialised, 256 positions: room for gen 192), or an 8B-shaped random bf16 LLaDA-layout model
    built on the device (`8b`)."""
    if name == "arith":
        return load_model("arith", device=device), "arith (trained, 0.88M, 128 positions)"
    if name == "arith-random-256":  # the arith architecture, untrained, room for gen 192
        import dataclasses

        from s3dsl.models.config import ModelConfig
        from s3dsl.models.registry import WEIGHTS_DIR, build_random_model

        config = ModelConfig.from_json(WEIGHTS_DIR / "arith" / "config.json")
        config = dataclasses.replace(config, max_len=256, name=name)
        model = build_random_model(config, seed=0, device=device)
        return model, (f"arith-random-256 (the arith architecture untrained, "
                       f"{model.num_parameters() / 1e6:.2f}M, 256 positions)")
    if name == "tiny-random":
        model = load_model("tiny-random", device=device)
        return model, (f"tiny-random (untrained, {model.num_parameters() / 1e3:.0f}K, "
                       "256 positions, arith tokenizer)")
    sys.path.insert(0, str(Path(__file__).parent))
    from compiler_bench import GPU_8B, build_on_device

    model = build_on_device(GPU_8B, device, torch.bfloat16)
    return model, f"{GPU_8B.name} ({model.num_parameters() / 1e9:.2f}B, random bf16)"


def ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x)


@dataclass(frozen=True)
class Grid:
    """One model's part of the benchmark: which gen lengths, on how many problems."""

    model: str
    gens: tuple[int, ...]
    problems: int

    @classmethod
    def parse(cls, text: str) -> Grid:
        """MODEL:GENS:PROBLEMS, e.g. `arith:48,96:4`."""
        model, gens, problems = text.split(":")
        return cls(model, ints(gens), int(problems))


# The trained model fits gen 48 and 96 (128 positions with the prompt); gen 192 runs on the
# untrained tiny-random model (and, with --grid arith-random-256:192:1, on the arith architecture
# untrained), on one problem: without a trained model's agreement dedup merges little, so every
# particle is a forward row and the grid would take hours on 4 problems.
DEFAULT_GRIDS = ("arith:48,96:4", "tiny-random:48,96,192:1")


class DecodedChars:
    """Counts the characters the tokenizer decodes (both sides decode every candidate the
    verifier reads): how much text work a run did. On an untrained model the completions' lengths
    follow the search's luck (where an end-of-sequence token was committed), and the verifier's
    cost follows their length, so two sides drawing different numbers can do unequal text work."""

    def __init__(self, tokenizer) -> None:
        self.count, self.tokenizer, self.decode = 0, tokenizer, tokenizer.decode

        def counting(ids, *args, **kwargs):
            text = self.decode(ids, *args, **kwargs)
            self.count += len(text)
            return text

        tokenizer.decode = counting

    def take(self) -> int:
        count, self.count = self.count, 0
        return count

    def close(self) -> None:
        del self.tokenizer.decode  # the class's method again


def measure(model, task, problems, cfg: Config, repeats: int, tmp: Path) -> dict:
    """Both sides, interleaved (A B B A ...), seed = repeat on both; wall, forward rows and
    decoded characters each."""
    ours, theirs, executes = [], [], []
    chars: dict[str, list[int]] = {"s3dsl": [], "hand": []}
    plan_s = statistics.median(planning_s(cfg, tmp) for _ in range(3))
    counter = DecodedChars(model.tokenizer)
    for rep in range(repeats):
        pair = [
            ("s3dsl", lambda c=cfg, r=rep: s3dsl_run(model, problems, c, r, tmp)),
            ("hand", lambda c=cfg, r=rep: handwritten(model, task, problems, c, r)),
        ]
        if model.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        for name, fn in pair if rep % 2 == 0 else pair[::-1]:
            counter.take()
            wall, out = timed(fn, model.device)
            (ours if name == "s3dsl" else theirs).append((wall, out["rows"]))
            chars[name].append(counter.take())
            if name == "s3dsl":
                executes.append(out["execute_s"])
    counter.close()
    s_wall = statistics.median(w for w, _ in ours)
    h_wall = statistics.median(w for w, _ in theirs)
    s_rows, h_rows = (sum(r for _, r in side) for side in (ours, theirs))
    s_total, h_total = (sum(w for w, _ in side) for side in (ours, theirs))
    row = {"config": cfg.label, "s3dsl_s": s_wall, "hand_s": h_wall, "ratio": s_wall / h_wall,
           "s3dsl_rows": s_rows / repeats, "hand_rows": h_rows / repeats,
           "per_row_ratio": (s_total / s_rows) / (h_total / h_rows),
           "paired_ratio": statistics.median(a / b for (a, _), (b, _) in zip(ours, theirs)),
           "repeats": repeats,
           "s3dsl_execute_s": statistics.median(executes),
           "execute_ratio": statistics.median(executes) / h_wall, "plan_ms": 1000 * plan_s,
           "s3dsl_walls": [w for w, _ in ours], "hand_walls": [w for w, _ in theirs],
           "s3dsl_execute_walls": executes,
           "s3dsl_rows_each": [r for _, r in ours], "hand_rows_each": [r for _, r in theirs],
           "s3dsl_chars": statistics.mean(chars["s3dsl"]),
           "hand_chars": statistics.mean(chars["hand"]),
           "s3dsl_chars_each": chars["s3dsl"], "hand_chars_each": chars["hand"]}
    if model.device.type == "cuda":
        length = max(len(model.tokenizer.encode(p.prompt)) for p in problems)
        flops = 2.0 * model.num_parameters() * ours[0][1] * (length + cfg.gen_length)
        row["s3dsl_mfu"] = flops / s_wall / H200_BF16_DENSE_FLOPS
        row["s3dsl_tokens_per_s"] = len(problems) * cfg.gen_length / s_wall
        row["peak_memory_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", action="append", default=None, type=Grid.parse,
                    help=f"MODEL:GENS:PROBLEMS, repeatable (default: {' '.join(DEFAULT_GRIDS)})")
    ap.add_argument("--problems", type=int, default=None, help="override every grid's count")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="a few configurations, 1 repeat")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--model", choices=("arith", "arith-random-256", "tiny-random", "8b"),
                    default=None,
                    help="one model only, with --gens (the GPU script's form)")
    ap.add_argument("--particles", type=ints, default=None, help="e.g. 2,8,32")
    ap.add_argument("--gens", type=ints, default=None, help="gen lengths, with --model")
    ap.add_argument("--strategies", default="best_of_k,s3")
    ap.add_argument("--merge", type=Path, nargs="+", default=None,
                    help="write --out from these runs' JSON instead of running (a row of a later "
                         "file replaces the same model and configuration of an earlier one)")
    ap.add_argument("--note", default="", help="with --merge: appended to the header")
    args = ap.parse_args()
    if args.merge:
        merge(args.merge, args.out, args.note)
        return
    torch.set_num_threads(1)
    if args.model is not None:
        grids = [Grid(args.model, args.gens or (48, 96), args.problems or 4)]
    elif args.quick:
        grids = [Grid("arith", (48,), 4)]
    else:
        grids = args.grid or [Grid.parse(g) for g in DEFAULT_GRIDS]
    particles = args.particles or ((2, 8) if args.quick else (2, 8, 32))
    repeats = 1 if args.quick else args.repeats
    strategies = args.strategies.split(",")
    task = get_task("arith")
    rows, setups = [], []
    with tempfile.TemporaryDirectory() as tmp, torch.inference_mode():
        (Path(tmp) / "s3_systematic.yaml").write_text(S3_SYSTEMATIC)
        for grid in grids:
            model, model_label = bench_model(grid.model, args.device)
            problems = task.problems("test", args.problems or grid.problems)
            setups.append(f"{model_label}: {len(problems)} arith test problem(s) in one batch")
            warm = Config(strategies[0], particles[0], grid.gens[0])  # grammar, caches: untimed
            s3dsl_run(model, problems, warm, 0, Path(tmp))
            handwritten(model, task, problems, warm, 0)
            for cfg in (Config(s, p, g) for s in strategies for p in particles for g in grid.gens):
                row = {"model": model_label, "problems": len(problems),
                       **measure(model, task, problems, cfg, repeats, Path(tmp))}
                rows.append(row)
                print(f"{grid.model:12s} {cfg.label:36s} s3dsl {row['s3dsl_s']:7.2f}s  "
                      f"hand {row['hand_s']:7.2f}s  ratio {row['ratio']:.2f}  per row "
                      f"{row['per_row_ratio']:.2f}  rows {row['s3dsl_rows']:.0f}/"
                      f"{row['hand_rows']:.0f}", flush=True)
                if args.out is not None:  # after every row: a long run stopped keeps its rows
                    write_tables(args.out, [header_of(args, repeats, setups)], rows)
    header = header_of(args, repeats, setups)
    print(header)
    if args.out is not None:
        write_tables(args.out, [header], rows)


def merge(runs: list[Path], out: Path | None, note: str) -> None:
    """One table from several runs (e.g. a grid, then its cells near 1 again with more repeats)."""
    rows: dict[tuple[str, str], dict] = {}
    setups: list[str] = []
    for path in runs:
        run = json.loads(path.read_text())
        setups += run.get("setups") or setup_parts(run["setup"])
        for row in run["rows"]:
            pairs = list(zip(row["s3dsl_walls"], row["hand_walls"]))
            row.setdefault("paired_ratio", statistics.median(a / b for a, b in pairs))
            row.setdefault("repeats", len(pairs))
            rows[(row["model"], row["config"])] = row
    if note:
        setups.append(note)
    if out is None:
        print("\n".join(setups))
        return
    write_tables(out, setups, list(rows.values()))


def setup_parts(setup: str) -> list[str]:
    """The parts of a merged run's one-line setup as written before `setups` was a list:
    "Merged runs. `a.json`: PART | `b.json`: PART", merges nested inside the first part."""
    if not setup.startswith("Merged runs. "):
        return [setup]
    parts = re.split(r" \| (?=`[^`]+`: )", setup[len("Merged runs. "):])
    return [re.sub(r"^(?:`[^`]+`: (?:Merged runs\. )?)+", "", part) for part in parts]


def header_of(args: argparse.Namespace, repeats: int, setups: list[str]) -> str:
    where = (torch.cuda.get_device_name() if args.device.startswith("cuda")
             else f"{platform.machine()} CPU")
    return (f"verifier arith-heuristic (the arith task's), {repeats} interleaved repeat(s) "
            f"(seed = repeat, both sides), 1 torch thread, {where}, torch {torch.__version__}; "
            + "; ".join(setups))


def _fmt(x: float | None, spec: str = ".2f") -> str:
    return "-" if x is None else format(x, spec)


def _chars(row: dict) -> str:
    if "s3dsl_chars" not in row:  # a row measured before the count existed
        return "-"
    return f"{row['s3dsl_chars']:.0f} / {row['hand_chars']:.0f}"


def write_tables(out: Path, setups: list[str], rows: list[dict]) -> None:
    """The JSON (`setups`: what ran, in the order the runs were merged) and the markdown."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "handwritten_bench.json").write_text(json.dumps(
        {"setup": " | ".join(setups), "setups": setups, "rows": rows}, indent=2))
    what_ran = (setups[0] + "\n" if len(setups) == 1 else
                "What ran (merged runs: a row of a later run replaces the same model and "
                "configuration of an earlier one):\n\n" + "\n".join(f"- {s}" for s in setups)
                + "\n")
    lines = ["# s3dsl vs hand-written batched PyTorch\n", what_ran,
             "ratio = median s3dsl wall / median hand-written wall (below 1: s3dsl faster); per "
             "row = the same per forward row spent (total wall / total rows), which removes the "
             "luck of how many rows each side's dedup merged; run only = s3dsl's median time "
             "without parsing and planning the strategy file (the same calls), over the "
             "hand-written median; paired = the median over repeats of s3dsl / hand-written "
             "wall of the same repeat (the two ran back to back, so a change of load between "
             "repeats cancels); fastest = fastest s3dsl wall / fastest hand-written wall (the "
             "repeat least disturbed by other work on the machine); planning = parsing and "
             "planning the strategy uncached (median of 3), which run_strategy does once per "
             "process and configuration (session.planned): the first repeat pays it, the "
             "others not; decoded characters = the text the tokenizer decoded per run (every "
             "candidate the verifier reads, mean over repeats): on an untrained model "
             "completions end wherever an end-of-sequence token was committed, so this text "
             "work, like the forward rows, follows each side's draws.\n",
             "| model | configuration | repeats | s3dsl (s) | hand-written + dedup (s) | ratio | "
             "paired | fastest | per row | run only | planning (ms) | "
             "forward rows s3dsl / hand (mean) | decoded characters s3dsl / hand (mean) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['model'].split(' (')[0]} | {r['config']} | {_fmt(r.get('repeats'), 'd')} | "
              f"{r['s3dsl_s']:.2f} | {r['hand_s']:.2f} | {r['ratio']:.2f} | "
              f"{_fmt(r.get('paired_ratio'))} | "
              f"{min(r['s3dsl_walls']) / min(r['hand_walls']):.2f} | {r['per_row_ratio']:.2f} | "
              f"{_fmt(r.get('execute_ratio'))} | {_fmt(r.get('plan_ms'), '.1f')} | "
              f"{r['s3dsl_rows']:.0f} / {r['hand_rows']:.0f} | {_chars(r)} |" for r in rows]
    (out / "handwritten_bench.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
