"""Distributed data parallel helpers for runs started with ``torchrun``.

``torchrun --nproc_per_node=N -m slaf_cli.cli.train ...`` sets RANK, WORLD_SIZE and
LOCAL_RANK in each process. Every rank trains on its shard of each epoch; rank 0
alone writes logs, TensorBoard events, checkpoints and summaries.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def context_from_env() -> DistContext:
    """Read the torchrun variables; a plain process is rank 0 of 1."""
    return DistContext(
        rank=int(os.environ.get("RANK", 0)),
        world_size=int(os.environ.get("WORLD_SIZE", 1)),
        local_rank=int(os.environ.get("LOCAL_RANK", 0)),
    )


def init_process_group(context: DistContext, device: torch.device) -> None:
    """Join the process group: NCCL for CUDA devices, Gloo for the CPU."""
    if not context.enabled or dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend, timeout=timedelta(minutes=30))
    log.info(
        "Rank %d of %d joined the %s process group",
        context.rank,
        context.world_size,
        backend,
    )


def destroy_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum ``values`` over ranks in place (no-op outside a process group)."""
    if dist.is_initialized():
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def any_rank(flags: list[bool], device: torch.device) -> list[bool]:
    """For each flag, whether it is true on at least one rank.

    One collective for all flags, so every rank takes the same branch afterwards.
    """
    if not dist.is_initialized():
        return flags
    values = torch.tensor([1.0 if flag else 0.0 for flag in flags], device=device)
    dist.all_reduce(values, op=dist.ReduceOp.MAX)
    return [bool(v > 0) for v in values.tolist()]


def broadcast_from_main(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (picklable objects only)."""
    if not dist.is_initialized():
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()
