"""Validation: AUC, loss and per-group AUC on the val split's reals and their fixed pseudo-fakes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from fiagen.train.breakdown import batch_meta, breakdown
from fiagen.train.config import TrainConfig
from fiagen.train.context import Context, autocast


@dataclass
class Validation:
    """One validation: AUC, BCE loss, AUC per pseudo-fake group (None without "meta"), and every item's
    logit and label (0 real, 1 fake), gathered from all workers."""

    auc: float
    loss: float
    per_group: dict[str, float] | None
    logits: torch.Tensor
    labels: torch.Tensor


@torch.no_grad()
def validation(detector: torch.nn.Module, loader: DataLoader, cfg: TrainConfig, ctx: Context,
               groups: list[str] | None = None) -> Validation:
    """Score the val split's real frames and their fixed pseudo-fakes (`loader`: this worker's share, see
    `val_loader`). The breakdown (see fiagen.train.breakdown) covers `groups` (default: those the fakes
    fall in); None when the items carry no "meta"."""
    from sklearn.metrics import roc_auc_score

    was_training = detector.training
    detector.eval()
    logits, labels, metas = [], [], []
    for batch in loader:
        x = torch.cat([batch["real"], batch["fake"]]).to(ctx.device)
        with autocast(cfg, ctx.device):
            out = detector(x).float().cpu()
        logits.append(out)
        labels.append(torch.cat([torch.zeros(len(batch["real"])), torch.ones(len(batch["fake"]))]))
        metas += batch_meta(batch["meta"]) if "meta" in batch else []
    detector.train(was_training)
    mine = (torch.cat(logits) if logits else torch.zeros(0), torch.cat(labels) if labels else torch.zeros(0), metas)
    if ctx.world > 1:
        gathered: list[Any] = [None] * ctx.world
        dist.all_gather_object(gathered, mine)
        mine = (torch.cat([g[0] for g in gathered]), torch.cat([g[1] for g in gathered]),
                [m for g in gathered for m in g[2]])
    scores, truth, metas = mine
    loss = torch.nn.functional.binary_cross_entropy_with_logits(scores, truth).item()
    per_group = None
    if metas:
        found = breakdown(scores[truth == 0].numpy(), scores[truth == 1].numpy(), metas, groups)
        per_group = {name: auc for name, (auc, _) in found.items()}
    return Validation(float(roc_auc_score(truth.numpy(), scores.numpy())), loss, per_group, scores, truth)
