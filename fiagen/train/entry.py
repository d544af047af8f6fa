"""`train(cfg)`: the training stage's one entry point, used by `fiagen train`, `fiagen run` and the demo.

It picks where the loop runs: in this process, or on Ray Train workers (`train/distributed.py`) when
`cfg.train_workers` > 1 or a Ray `cfg.address` is given.
"""

from __future__ import annotations

from pathlib import Path

from fiagen.core import stop
from fiagen.core.outputs import hold_folder
from fiagen.train.config import TrainConfig, check_run_folder
from fiagen.train.context import Context, resolve_device
from fiagen.train.loop import TrainResult, run_training
from fiagen.train.pretrained import fetch, resolve_init


def train(cfg: TrainConfig) -> TrainResult:
    """Run `fiagen train` (the CLI's and `fiagen run`'s entry): one local process, or Ray Train workers when
    `cfg.train_workers` > 1 or a Ray `cfg.address` is given. The backbone's weights are fetched (or found missing:
    one error line) before any data is read."""
    if not cfg.resume:
        fetch(resolve_init(cfg.backbone, cfg.pretrained))
    try:
        with hold_folder(cfg.run):  # one run per folder; before Ray starts
            if cfg.address or cfg.train_workers > 1:
                from fiagen.train.distributed import train_distributed

                check_run_folder(cfg)  # before starting Ray

                result = train_distributed(cfg)
            else:
                result = run_training(cfg, Context(device=resolve_device(cfg.device)))
    except stop.Stopped as err:  # resumed with --resume once there is a last.pt, else by the same command
        resume = ("--resume",) if (Path(cfg.run) / "last.pt").is_file() else ()
        raise stop.Stopped(err.signum, err.detail, resume, "train") from None
    return result
