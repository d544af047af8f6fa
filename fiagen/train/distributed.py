"""Data-parallel training through Ray Train's TorchTrainer (`--train-workers N --gpus-per-worker G`).

Every worker runs the same loop (`run_training`) on its share of each epoch (DistributedSampler with
set_epoch); gradients are averaged by DDP; rank 0 validates with the others' scores gathered, writes
checkpoints and metrics into the run folder. On a cluster the shards and the run folder must be on
storage every node sees at the same path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fiagen.errors import message_line
from fiagen.train.checkpoint import read_checkpoint
from fiagen.train.config import TrainConfig
from fiagen.train.context import Context, TrainingError
from fiagen.train.loop import TrainResult, run_training


def _worker(config: dict[str, Any]) -> None:
    """The per-worker entry Ray Train calls (torch.distributed is already set up)."""
    import ray.train
    import ray.train.torch

    values = {k: tuple(v) if isinstance(v, list) else v for k, v in config["cfg"].items()}
    cfg = TrainConfig(**values)
    ctx = ray.train.get_context()
    run_training(cfg, Context(rank=ctx.get_world_rank(), world=ctx.get_world_size(),
                              device=ray.train.torch.get_device()))


def _first_line(err: BaseException) -> str:
    """The most specific message of a Ray Train failure (the worker's own error, one line)."""
    for line in str(err).splitlines():
        if "Error:" in line and "Traceback" not in line:
            return line.strip()
    return message_line(err)


def train_distributed(cfg: TrainConfig) -> TrainResult:
    """Run `cfg.train_workers` Ray Train workers (local Ray unless `cfg.address`); return what rank 0 wrote."""
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from fiagen.pipeline.cluster import ray_session

    run = Path(cfg.run).resolve()
    resources = {"CPU": 1, **({"GPU": cfg.gpus_per_worker} if cfg.gpus_per_worker else {})}
    local_cpus = None if cfg.address else max(os.cpu_count() or 1, cfg.train_workers)
    with ray_session(cfg.address, local_cpus):
        trainer = TorchTrainer(
            _worker,
            train_loop_config={"cfg": {**cfg.to_dict(), "run": str(run), "shards": str(Path(cfg.shards).resolve())}},
            scaling_config=ScalingConfig(num_workers=cfg.train_workers, use_gpu=cfg.gpus_per_worker > 0,
                                         resources_per_worker=resources),
            run_config=RunConfig(name=run.name, storage_path=str(run / "ray"),
                                 failure_config=FailureConfig(max_failures=0)),
        )
        try:
            trainer.fit()
        except Exception as err:  # noqa: BLE001 - Ray Train wraps a worker's failure in version-specific types: one line
            raise TrainingError(f"Ray Train run failed: {_first_line(err)}") from None
    last = run / "last.pt"
    state = read_checkpoint(last)["training"]
    best = run / "best.pt"
    return TrainResult(run, last, best if best.exists() else None, state["best_auc"], cfg.epochs, state["step"],
                       state["nonfinite"])
