"""Data-parallel training through Ray Train's TorchTrainer (`--train-workers N --gpus-per-worker G`).

Every worker runs the same loop (`run_training`) on its share of each epoch (DistributedSampler with
set_epoch); gradients are averaged by DDP; rank 0 validates with the others' scores gathered, writes
checkpoints and metrics into the run folder. On a cluster the shards and the run folder must be on
storage every node sees at the same path.

A signal to the driver stops the workers at a safe point: the driver relays it (fiagen.cluster.relay),
the workers agree on the step (fiagen.train.context.stop_signal), rank 0 saves last.pt there and records
the stop in run.json, and the driver raises Stopped with the resume command.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path
from typing import Any

from fiagen.core import stop
from fiagen.core.errors import message_line
from fiagen.core.files import write_text
from fiagen.train.checkpoint import read_checkpoint
from fiagen.train.config import TrainConfig
from fiagen.train.context import Context, TrainingError
from fiagen.train.loop import RUN_RECORD, TrainResult, run_training


def _worker(config: dict[str, Any]) -> None:
    """The per-worker entry Ray Train calls (torch.distributed is already set up)."""
    import ray.train
    import ray.train.torch

    from fiagen.cluster.relay import listening

    values = {k: tuple(v) if isinstance(v, list) else v for k, v in config["cfg"].items()}
    cfg = TrainConfig(**values)
    ctx = ray.train.get_context()
    with listening(config["stop_flag"]):
        try:
            run_training(cfg, Context(rank=ctx.get_world_rank(), world=ctx.get_world_size(),
                                      device=ray.train.torch.get_device()))
        except stop.Stopped:  # at the step all workers agreed on; rank 0 saved last.pt and run.json there
            return


def _first_line(err: BaseException) -> str:
    """The most specific message of a Ray Train failure (the worker's own error, one line)."""
    for line in str(err).splitlines():
        if "Error:" in line and "Traceback" not in line:
            return line.strip()
    return message_line(err)


def _fit(trainer: Any, flag: Any) -> bool:
    """trainer.fit() in a thread (so Ray Train keeps its SIGINT handler out of fiagen's way) while this thread
    passes a signal's stop on to the workers; a second signal stops at once. False where the workers were
    lost after a signal (the process group's signal ended a local Ray's daemons too)."""
    from fiagen.cluster.relay import POLL_S, relay

    failed: list[Exception] = []

    def fit() -> None:
        try:
            trainer.fit()
        except Exception as err:  # noqa: BLE001 - Ray Train wraps a worker's failure in version-specific types
            failed.append(err)

    thread, relayed = threading.Thread(target=fit, name="fiagen-ray-train", daemon=True), []
    thread.start()
    with stop.safe_points():
        while thread.is_alive():
            thread.join(POLL_S)
            relay(flag, relayed)
    if failed and stop.requested() is None:
        raise TrainingError(f"Ray Train run failed: {_first_line(failed[0])}") from None
    return not failed


def _workers_lost(run: Path, signum: int) -> stop.Stopped:
    """The stop of a run whose workers ended with the signal: it resumes from the last saved last.pt, which
    run.json names."""
    if not (run / "last.pt").is_file():
        return stop.Stopped(signum, "before a first checkpoint")
    step = read_checkpoint(run / "last.pt")["training"]["step"]
    record = {"status": stop.STATUS, "step": step, "signal": signal.Signals(signum).name, "workers": "lost"}
    write_text(run / RUN_RECORD, json.dumps(record, indent=2) + "\n")
    return stop.Stopped(signum, f"with its Ray workers gone; last.pt holds step {step}", ("--resume",), "train")


def train_distributed(cfg: TrainConfig) -> TrainResult:
    """Run `cfg.train_workers` Ray Train workers (local Ray unless `cfg.address`); return what rank 0 wrote."""
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from fiagen.cluster.relay import new_flag
    from fiagen.cluster.session import ray_session

    run = Path(cfg.run).resolve()
    resources = {"CPU": 1, **({"GPU": cfg.gpus_per_worker} if cfg.gpus_per_worker else {})}
    local_cpus = None if cfg.address else max(os.cpu_count() or 1, cfg.train_workers)
    with ray_session(cfg.address, local_cpus):
        trainer = TorchTrainer(
            _worker,
            train_loop_config={"cfg": {**cfg.to_dict(), "run": str(run), "shards": str(Path(cfg.shards).resolve())},
                               "stop_flag": (flag := new_flag())},
            scaling_config=ScalingConfig(num_workers=cfg.train_workers, use_gpu=cfg.gpus_per_worker > 0,
                                         resources_per_worker=resources),
            run_config=RunConfig(name=run.name, storage_path=str(run / "ray"),
                                 failure_config=FailureConfig(max_failures=0)),
        )
        if not _fit(trainer, flag):
            raise _workers_lost(run, stop.requested())
    record = json.loads((run / RUN_RECORD).read_text()) if (run / RUN_RECORD).is_file() else {}
    if stop.requested() is not None and record.get("status") == stop.STATUS:
        raise stop.Stopped(stop.requested(), f"after step {record['step']}", ("--resume",), "train")
    last = run / "last.pt"
    state = read_checkpoint(last)["training"]
    best = run / "best.pt"
    return TrainResult(run, last, best if best.exists() else None, state["best_auc"], cfg.epochs, state["step"],
                       state["nonfinite"])
