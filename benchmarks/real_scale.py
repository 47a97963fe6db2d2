"""An 8B-shaped LLaDA checkpoint (random weights, bf16, sharded safetensors) loaded natively and
run with `single` and `s3`: load time, tokens/s and peak GPU memory.

Meant for a GPU machine (the checkpoint is 16 GB on disk; generating it takes about 32 GB of RAM):

    python benchmarks/real_scale.py --device cuda --dir /tmp/llada-8b-random

`--shape tiny` runs the same path with the tiny layout (a CPU smoke test). Random weights say
nothing about accuracy; only the speed and memory figures mean something. Results go to
benchmarks/results/real_scale.md; every row names the strategy, the model shape and the device.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from s3dsl.compiler.passes import plan
from s3dsl.models.checkpoint import load_checkpoint
from s3dsl.models.tiny_official import write_checkpoint
from s3dsl.session import compile_file, execute
from s3dsl.tasks.base import Problem

SHAPES = {  # config.json keys of LLaDA-8B-Base/Instruct (same architecture as LLaDA-1.5)
    "8b": {"d_model": 4096, "n_layers": 32, "n_heads": 32, "n_kv_heads": 32,
           "mlp_hidden_size": 12288, "max_sequence_length": 4096},
    "tiny": {},
}
OUT = Path(__file__).parent / "results" / "real_scale.md"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=SHAPES, default="8b")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/s3dsl-llada-random"))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--gen-length", type=int, default=128)
    parser.add_argument("--problems", type=int, default=8)
    parser.add_argument("--strategies", default="single,s3")
    args = parser.parse_args()
    dtype = getattr(torch, args.dtype)
    if not (args.dir / "config.json").is_file():
        start = time.perf_counter()
        write_checkpoint(args.dir, "llada", seed=0, shards=4 if args.shape == "8b" else 2,
                         shape=SHAPES[args.shape], dtype=dtype)
        print(f"wrote {args.dir} in {time.perf_counter() - start:.0f} s")
    start = time.perf_counter()
    model = load_checkpoint(args.dir, device=args.device, dtype=dtype, chat=False)
    load_s = time.perf_counter() - start
    print(f"loaded {model} in {load_s:.1f} s")
    problems = [Problem(str(i), " ".join(f"w{100 + 7 * i + j}" for j in range(40)), "")
                for i in range(args.problems)]
    rows = []
    for name in args.strategies.split(","):
        from s3dsl.catalog import resolve_strategy

        sets = {"gen_length": str(args.gen_length), "steps": str(args.gen_length)}
        if name == "s3":
            sets.update(particles="4", candidates="2")
        program = compile_file(resolve_strategy(name), sets, args.gen_length, "confidence")
        if args.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
            torch.cuda.synchronize()
        start = time.perf_counter()
        results, _ = execute(plan(program, 2), model, problems, lambda t: t, lambda a, b: False,
                             0, batch_size=args.problems)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        wall = time.perf_counter() - start
        peak = torch.cuda.max_memory_allocated() / 2**30 if args.device.startswith("cuda") else 0
        tokens = args.gen_length * len(problems)
        nfe = sum(r.nfe for r in results) / len(results)
        rows.append(f"| {name} | LLaDA {args.shape} ({model.num_parameters():,} params, "
                    f"{args.dtype}) | {args.device} | {len(problems)} | {args.gen_length} | "
                    f"{nfe:.0f} | {wall:.1f} | {tokens / wall:.1f} | {peak:.1f} |")
        print(rows[-1])
    header = ("| strategy | model | device | problems | gen tokens | forwards/problem | wall s "
              "| answer tokens/s | peak GPU GiB |\n| --- | --- | --- | ---: | ---: | ---: | ---: "
              "| ---: | ---: |")
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(f"# Real-scale run (random weights)\n\nload: {load_s:.1f} s\n\n{header}\n"
                   + "\n".join(rows) + "\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main()
