"""cProfile of one S3 run (the handwritten_bench S3 strategy, systematic resampling) on the
shipped arith model, 1 torch thread, after one warm-up run: where host time goes.

    python benchmarks/profile_s3.py --particles 8 --gen 96 --problems 4 > profile.txt
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import handwritten_bench as hb  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--particles", type=int, default=8)
    ap.add_argument("--gen", type=int, default=96)
    ap.add_argument("--problems", type=int, default=4)
    ap.add_argument("--top", type=int, default=30)
    args = ap.parse_args()
    torch.set_num_threads(1)
    model, label = hb.bench_model("arith", "cpu")
    problems = hb.get_task("arith").problems("test", args.problems)
    cfg = hb.Config("s3", args.particles, args.gen)
    with tempfile.TemporaryDirectory() as tmp, torch.inference_mode():
        (Path(tmp) / "s3_systematic.yaml").write_text(hb.S3_SYSTEMATIC)
        hb.s3dsl_run(model, problems, cfg, 0, Path(tmp))
        profile = cProfile.Profile()
        profile.enable()
        hb.s3dsl_run(model, problems, cfg, 1, Path(tmp))
        profile.disable()
    print(f"# {cfg.label}, model {label}, {args.problems} arith problems, 1 torch thread")
    for order in ("tottime", "cumulative"):
        text = io.StringIO()
        pstats.Stats(profile, stream=text).sort_stats(order).print_stats(args.top)
        print(text.getvalue())


if __name__ == "__main__":
    main()
