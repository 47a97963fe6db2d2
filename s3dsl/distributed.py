"""Runs spread over processes: `torchrun --nproc-per-node N -m s3dsl run ...`.

Problems are sharded over ranks in whole batches (rank r runs the batches r, r + N, ... of the
one-process run); randomness is per problem (`rng.root_key(seed, id)`), so a sharded run gives
exactly the tokens, and every batch's forwards the shapes, hence the floats, of one process. Only
rank 0 touches the results store: it reads which problems are finished, tells every rank the
pending ones, and after every round of batches gathers the ranks' results and commits them, so
an interrupted sharded run resumes (under any world size) like a one-process run does.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from s3dsl.errors import S3DSLError


@dataclass(frozen=True)
class World:
    """This process's place among the processes of one run (torchrun's environment)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, items: Sequence[Any]) -> list[Any]:
        """This rank's share: every `size`-th item from `rank` on (balanced to within one)."""
        return list(items[self.rank :: self.size])

    def rounds(self, n_items: int, batch_size: int) -> int:
        """Batches per rank for `n_items` sharded items: the same number on every rank, so each
        round's collective call is made by all of them."""
        per_rank = -(-n_items // self.size)
        return -(-per_rank // batch_size)

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank."""
        if self.size == 1:
            return obj
        box = [obj]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's `obj`, in rank order, on every rank."""
        if self.size == 1:
            return [obj]
        out: list[Any] = [None] * self.size
        torch.distributed.all_gather_object(out, obj)
        return out

    def finish(self) -> None:
        """Leave the process group together: a rank that exits while another still holds its
        connections makes gloo abort that other rank."""
        if self.size > 1 and torch.distributed.is_initialized():
            torch.distributed.barrier()
            torch.distributed.destroy_process_group()

    def device(self, device: str) -> str:
        """Under torchrun, a plain `cuda` means this process's GPU, `cuda:LOCAL_RANK`."""
        return f"cuda:{self.local_rank}" if self.size > 1 and device == "cuda" else device


SINGLE = World()


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise S3DSLError(f"environment variable {name}={raw!r} is not an integer",
                         hint="it is set by torchrun; unset it for a one-process run") from None


def current_world(device: str = "cpu") -> World:
    """The world torchrun (or accelerate) started this process in; one process otherwise. Joins
    the process group on first use: gloo on CPU, nccl on CUDA."""
    size = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local = _env_int("LOCAL_RANK", rank)
    if size < 1 or not 0 <= rank < size:
        raise S3DSLError(f"RANK={rank} and WORLD_SIZE={size} do not describe a process group",
                         hint="launch with torchrun --nproc-per-node N -m s3dsl ...")
    if size == 1:
        return SINGLE
    dist = torch.distributed
    if not dist.is_available():
        raise S3DSLError("this torch build has no torch.distributed", hint="run one process")
    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local)  # nccl's object collectives use the current device
        dist.init_process_group(backend=backend)
    return World(rank, size, local)
