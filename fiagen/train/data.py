"""The data of a run: the FIA-USA train and val datasets over the shards, and their loaders (workers
started once per run; each worker's share of the val pairs)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from torch.utils.data import DataLoader, Dataset, Subset

from fiagen.generate.config import generate_config
from fiagen.generate.dataset import FIAUSADataset
from fiagen.generate.loader import AtEpoch, EpochSampler, pair_loader
from fiagen.train.config import TrainConfig
from fiagen.train.context import Context, TrainingError


def run_datasets(cfg: TrainConfig) -> tuple[Dataset, Dataset]:
    """The FIA-USA train and val datasets over `cfg.shards`; one error line when either is too small."""
    recipe = dict(size=cfg.size, seed=cfg.seed, ablation=cfg.ablation,
                  config=generate_config(cfg.generate, affine=cfg.affine))
    train = FIAUSADataset(cfg.shards, split="train", train=True, epochs=cfg.epochs, **recipe)
    val = FIAUSADataset(cfg.shards, split="val", train=False, **recipe)
    if len(train) < cfg.batch_size:
        raise TrainingError(f"{cfg.shards}: the train split has {len(train)} frames, fewer than one batch "
                            f"of {cfg.batch_size}")
    if len(val) == 0:
        raise TrainingError(f"{cfg.shards}: the val split is empty; checkpoints are selected on val")
    return train, val


def _loader(ds: Dataset, cfg: TrainConfig, ctx: Context, sampler: Any = None, drop_last: bool = True) -> DataLoader:
    """A loader for the whole run: its worker processes start once and live until the run ends."""
    workers = cfg.loader_workers if cfg.loader_workers is not None else min(4, os.cpu_count() or 1)
    return pair_loader(ds, cfg.batch_size, sampler=sampler, drop_last=drop_last, num_workers=workers,
                       pin_memory=ctx.device.type == "cuda", persistent_workers=workers > 0)


def make_train_loader(train_ds: Dataset, cfg: TrainConfig, ctx: Context) -> tuple[DataLoader, EpochSampler]:
    """The training batches of a run and their sampler (set its epoch and skip before each pass)."""
    sampler = EpochSampler(train_ds, ctx.world, ctx.rank, cfg.seed)
    return _loader(AtEpoch(train_ds), cfg, ctx, sampler), sampler


def val_loader(val_ds: Dataset, cfg: TrainConfig, ctx: Context) -> DataLoader:
    """This worker's share of the val pairs (the first --val-limit frames, or all)."""
    n = len(val_ds) if cfg.val_limit is None else min(len(val_ds), cfg.val_limit)
    return _loader(Subset(val_ds, list(range(ctx.rank, n, ctx.world))), cfg, ctx, drop_last=False)


def train_data_text(cfg: TrainConfig, injected: Dataset | None) -> str:
    """A one-line description of the training data for the checkpoint's info."""
    if injected is not None:
        return f"{type(injected).__name__} ({len(injected)} pairs)"
    try:
        src = json.loads((Path(cfg.shards) / "run.json").read_text())["config"]["src"]
    except (OSError, KeyError, ValueError):
        src = "unknown source"
    return f"{src} train split, FIA-USA {cfg.ablation}, from {Path(cfg.shards).resolve()}"
