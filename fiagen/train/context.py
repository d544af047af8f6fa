"""Where a training process runs: its rank among data-parallel workers, its device, mixed precision, and
the agreement of all workers on whether a loss is finite and on whether to stop."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from fiagen.core import stop
from fiagen.core.errors import FiagenError
from fiagen.train.config import TrainConfig


class TrainingError(FiagenError):
    """A run that cannot start or cannot go on (empty split, existing run, too many non-finite losses)."""


@dataclass(frozen=True)
class Context:
    """Where this process trains: its rank among `world` data-parallel workers and its device."""

    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


def resolve_device(name: str) -> torch.device:
    """auto -> cuda when available, else cpu; a CUDA device asked for on a machine without one is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError(f"--device {name}: CUDA is not available here")
    return device


def autocast(cfg: TrainConfig, device: torch.device) -> Any:
    """bf16 autocast on CUDA when cfg.amp; otherwise a no-op context."""
    if device.type == "cuda" and cfg.amp:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def all_finite(value: torch.Tensor, ctx: Context) -> bool:
    """Whether the loss is finite on every worker (all must skip together, or DDP would hang)."""
    ok = torch.isfinite(value.detach()).float().reshape(1)
    if ctx.world > 1:
        dist.all_reduce(ok, op=dist.ReduceOp.MIN)
    return bool(ok.item() > 0)


def stop_signal(ctx: Context) -> int | None:
    """The signal that stops training at this step (fiagen.core.stop.requested on any worker: all stop at the
    same step, or DDP would hang); every worker calls it at the same points."""
    signum = stop.requested()
    if ctx.world == 1:
        return signum
    flag = torch.tensor([signum or 0], device=ctx.device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return int(flag.item()) or None
