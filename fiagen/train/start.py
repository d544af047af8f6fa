"""A new run's network: the backbone with its pretrained weights, AFFS channel ranking on training pairs
(docs/method.md §5), the FPN."""

from __future__ import annotations

import itertools
import json
import logging
import math
from collections.abc import Iterator
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from fiagen.core.files import write_text
from fiagen.core.progress import stage_progress
from fiagen.generate.loader import EpochSampler
from fiagen.train.affs import AFFSSelection, affs_widths, select_channels
from fiagen.train.config import TrainConfig
from fiagen.train.context import Context, autocast
from fiagen.train.model import TrainNet, build_detector, default_fpn_channels

log = logging.getLogger(__name__)
AFFS_PASSES = 5  # paper: AFFS ranks channels over 5 passes of the training set


def new_train_net(cfg: TrainConfig, loader: DataLoader, sampler: EpochSampler, ctx: Context,
              run: Path) -> tuple[TrainNet, AFFSSelection | None]:
    """A new TrainNet: backbone (+ pretrained weights), AFFS ranking on training pairs (epochs 0, 1, ...
    of `loader`), FPN."""
    torch.manual_seed(cfg.seed)
    detector = build_detector(cfg.backbone, cfg.size, cfg.pretrained, cfg.drop_rate, cfg.drop_path_rate)
    init = detector.init
    if init["source"] == "none" and ctx.main:
        log.warning("--pretrained none: %s starts from random weights; detection results will be poor (pass "
                    "--pretrained auto, timm or a weights file)", cfg.backbone)
    elif ctx.main and not cfg.quiet:
        log.info("%s starts from %s (%s): %s tensors loaded, a new 1-logit head", init["arch"], init["weights"],
                 init["source"], init["tensors_loaded"])
    selection = None
    if cfg.uses_rcr and cfg.affs:
        detector.to(ctx.device)
        per_pass = len(sampler) // cfg.batch_size
        budget = cfg.affs_batches if cfg.affs_batches is not None else AFFS_PASSES * per_pass * ctx.world
        budget = max(1, math.ceil(budget / ctx.world))

        def batches() -> Iterator[dict[str, torch.Tensor]]:
            done = 0
            for p in itertools.count():
                sampler.set_epoch(p)
                for batch in loader:
                    yield batch
                    done += 1
                    if done >= budget:
                        return

        with stage_progress(cfg.quiet or not ctx.main, unit="pairs", rate_field="stats") as bar:
            task = bar.add_task("AFFS", total=budget * cfg.batch_size, stats="")
            with autocast(cfg, ctx.device):
                selection = select_channels(detector, batches(), affs_widths(detector.stage_channels, cfg.affs_ratio),
                                            ctx.device, on_batch=lambda b: bar.advance(task, b))
        if ctx.main:
            write_text(run / "affs.json", json.dumps({"backbone": cfg.backbone, **selection.to_dict()}, indent=1))
    fpn = (cfg.fpn_channels or default_fpn_channels(cfg.backbone)) if cfg.uses_rcr else None
    return TrainNet(detector, selection.indices if selection else None, fpn), selection
