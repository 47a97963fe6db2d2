"""Train a built-in model with the masked-diffusion objective (LLaDA SFT style).

Per sequence a mask ratio t ~ U(eps, 1) (stratified over the batch); every generated position
(the target, then EOS up to `gen_length`) is masked with probability t; the loss is the
cross-entropy on masked positions weighted by 1/t, averaged over generated positions. The prompt
is never masked. Data is the task's train split (deterministic) and the seeds are fixed.

    python -m s3dsl.models.train --task arith [--threads 2]
    python -m s3dsl.models.train --task sudoku --quick     # a few steps, for tests
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from s3dsl.models.config import ModelConfig
from s3dsl.models.registry import WEIGHTS_DIR, save_model
from s3dsl.models.tokenizer import CharTokenizer
from s3dsl.models.transformer import MaskPredictor
from s3dsl.tasks.base import Problem
from s3dsl.tasks.registry import get_task

MASK_EPS = 1e-3


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings; `RECIPES` holds the ones used for the shipped checkpoints."""

    steps: int = 2000
    batch_size: int = 64
    lr: float = 2e-3
    min_lr_frac: float = 0.1
    warmup: int = 100
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    seed: int = 0
    log_every: int = 100
    stratified: bool = True  # stratify mask ratios over the batch (False: i.i.d. per sequence)


RECIPES: dict[str, tuple[ModelConfig, TrainConfig]] = {
    "arith": (
        ModelConfig(
            d_model=128, n_layers=4, n_heads=4, d_ff=384, max_len=128, name="arith",
            abs_positions=True, isolate_prompt=True,
        ),
        TrainConfig(steps=12000, batch_size=32),
    ),
    "sudoku": (
        ModelConfig(
            d_model=128, n_layers=4, n_heads=4, d_ff=384, max_len=192, name="sudoku",
            abs_positions=True, isolate_prompt=True,
        ),
        TrainConfig(steps=3000, batch_size=32, stratified=False),
    ),
}


def make_batch(
    problems: list[Problem], tok: CharTokenizer, gen_length: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Left-padded prompts + gold generated region: (ids, attention_mask, gen_mask)."""
    prompts = [tok.encode(p.prompt) for p in problems]
    width = max(map(len, prompts))
    rows, attn = [], []
    for p, prompt in zip(problems, prompts, strict=False):
        target = tok.encode(p.target)
        if len(target) > gen_length:
            raise ValueError(f"target of {p.id} is longer than gen_length={gen_length}")
        pad = width - len(prompt)
        rows.append(
            [tok.pad_id] * pad + prompt + target + [tok.eos_id] * (gen_length - len(target))
        )
        attn.append([False] * pad + [True] * (len(prompt) + gen_length))
    ids = torch.tensor(rows)
    gen_mask = torch.zeros_like(ids, dtype=torch.bool)
    gen_mask[:, width:] = True
    return ids, torch.tensor(attn), gen_mask


def diffusion_loss(
    module: MaskPredictor,
    ids: torch.Tensor,
    attn: torch.Tensor,
    gen_mask: torch.Tensor,
    mask_id: int,
    generator: torch.Generator,
    stratified: bool = True,
) -> torch.Tensor:
    """The masked-diffusion ELBO term: 1/t-weighted CE on masked generated positions."""
    b = ids.shape[0]
    # stratified over the batch (row i draws from [i/b, (i+1)/b)): each t is still U(0, 1), but
    # the batch covers the whole range, which tames the variance of the 1/t weights
    u = torch.rand(b, 1, generator=generator)
    if stratified:
        u = (torch.arange(b).unsqueeze(1) + u) / b
    t = (1 - MASK_EPS) * u + MASK_EPS
    masked = (torch.rand(ids.shape, generator=generator) < t) & gen_mask
    noisy = torch.where(masked, torch.full_like(ids, mask_id), ids)
    logits = module(noisy, attn, gen_length=int(gen_mask[0].sum()))
    ce = F.cross_entropy(logits.flatten(0, 1), ids.flatten(), reduction="none").view_as(ids)
    weighted = (ce * masked / t).sum()
    return weighted / gen_mask.sum()


def lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return cfg.lr * (cfg.min_lr_frac + (1 - cfg.min_lr_frac) * cosine)


def batches(task_name: str, batch_size: int, seed: int) -> Iterator[list[Problem]]:
    stream = get_task(task_name).train_stream(seed)
    while True:
        yield [next(stream) for _ in range(batch_size)]


def train(
    task_name: str, model_cfg: ModelConfig, cfg: TrainConfig, out: Path | None, quiet: bool = False
) -> tuple[MaskPredictor, float]:
    """Train from scratch; returns the module and the wall time in seconds. Saves if `out`."""
    torch.manual_seed(cfg.seed)
    task = get_task(task_name)
    tok = CharTokenizer(model_cfg.chars)
    module = MaskPredictor(model_cfg)
    module.reset_parameters(torch.Generator().manual_seed(cfg.seed))
    module.train()
    decay = [p for p in module.parameters() if p.dim() > 1]
    no_decay = [p for p in module.parameters() if p.dim() <= 1]
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0},
        ],
        lr=cfg.lr,
        betas=(0.9, 0.98),
    )
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    n_params = sum(p.numel() for p in module.parameters())
    if not quiet:
        print(f"training {task_name}: {n_params:,} params, {cfg.steps} steps x {cfg.batch_size}")
    start, cpu_start, running = time.perf_counter(), time.process_time(), 0.0
    data = batches(task_name, cfg.batch_size, cfg.seed)
    for step in range(cfg.steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        ids, attn, gen_mask = make_batch(next(data), tok, task.gen_length)
        loss = diffusion_loss(module, ids, attn, gen_mask, tok.mask_id, gen, cfg.stratified)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), cfg.grad_clip)
        opt.step()
        running = loss.item() if step == 0 else 0.95 * running + 0.05 * loss.item()
        if not quiet and ((step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps):
            elapsed = time.perf_counter() - start
            print(
                f"step {step + 1:5d}  loss {running:.4f}  lr {lr_at(step, cfg):.2e}"
                f"  {elapsed:6.1f}s",
                flush=True,
            )
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    module.eval()
    if out is not None:
        save_model(module, out)
        if not quiet:
            print(f"saved {out} ({wall:.1f}s wall, {cpu:.1f}s CPU)")
    return module, wall


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", required=True, choices=sorted(RECIPES))
    parser.add_argument("--steps", type=int, default=None, help="override the recipe's steps")
    parser.add_argument("--quick", action="store_true", help="5 steps, nothing saved unless --out")
    parser.add_argument("--out", type=Path, default=None, help="default: the shipped weights dir")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model_cfg, cfg = RECIPES[args.task]
    if args.quick:
        cfg = replace(cfg, steps=5, warmup=2, log_every=1)
    if args.steps is not None:
        cfg = replace(cfg, steps=args.steps, log_every=min(cfg.log_every, args.steps))
    out = args.out if args.out is not None or args.quick else WEIGHTS_DIR / args.task
    train(args.task, model_cfg, cfg, out)


if __name__ == "__main__":
    main()
