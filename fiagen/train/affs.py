"""AFFS, automatic forgery-aware feature selection: keep the backbone channels whose real/fake
difference looks most like the forgery mask (docs/method.md §3, paper Eq. 3 and Table 7).

For pyramid level i and channel k: L[i,k] = mean_n mean_pixels (Norm(|f_ik(R_n) − f_ik(F_n)|) − M_n)²,
where Norm min-max scales each difference map to [0,1] and M_n is area-resized to the map. The paper
writes the signed difference; a channel whose response drops inside the forged region is as useful as
one whose response rises (the FPN's convolutions can flip a sign), but min-max scaling would turn the
signed map of the first into the mask's complement, so the magnitude is ranked instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F

from fiagen.train.model import Detector

# Table 7: stage widths before -> after AFFS (EfficientNet-B4, -B1, ResNet-50/101).
TABLE7 = {
    (32, 56, 160, 448): (24, 32, 56, 160),
    (24, 40, 112, 320): (16, 24, 40, 112),
    (256, 512, 1024, 2048): (196, 384, 768, 1536),
}


def affs_widths(channels: Sequence[int], ratio: float = 0.75) -> list[int]:
    """Channels kept per level: the Table 7 row for these widths, else round(ratio·C) (at least 1)."""
    row = TABLE7.get(tuple(int(c) for c in channels))
    if row is not None:
        return list(row)
    return [max(1, round(ratio * c)) for c in channels]


def channel_errors(real: torch.Tensor, fake: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per sample and channel, mean (Norm|real − fake| − mask)² for maps (B,C,h,w), mask (B,1,H,W) -> (B,C)."""
    diff = (real.float() - fake.float()).abs()
    low = diff.amin(dim=(2, 3), keepdim=True)
    span = diff.amax(dim=(2, 3), keepdim=True) - low
    norm = (diff - low) / span.clamp_min(1e-12)
    target = F.adaptive_avg_pool2d(mask.float(), diff.shape[-2:])
    return ((norm - target) ** 2).mean(dim=(2, 3))


@dataclass
class AFFSSelection:
    """Kept channel indices per level (best first) with every channel's score, and what they came from."""

    indices: list[list[int]]
    scores: list[list[float]]
    channels: list[int]
    pairs: int

    def to_dict(self) -> dict[str, Any]:
        return {"indices": self.indices, "scores": self.scores, "channels": self.channels,
                "kept": [len(i) for i in self.indices], "pairs": self.pairs}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AFFSSelection:
        return cls([list(map(int, i)) for i in data["indices"]], [list(map(float, s)) for s in data["scores"]],
                   list(map(int, data["channels"])), int(data["pairs"]))


@torch.no_grad()
def select_channels(detector: Detector, batches: Iterable[dict[str, torch.Tensor]], keep: Sequence[int],
                    device: torch.device | str = "cpu",
                    on_batch: Callable[[int], None] | None = None) -> AFFSSelection:
    """Rank every channel of the four pyramid levels over (real, fake, mask) batches; keep `keep[i]` per level.

    Under torch.distributed the sums are all-reduced, so every rank selects the same channels.
    `on_batch(pairs)` is called after each batch (progress).
    """
    was_training = detector.training
    detector.eval()
    sums = [torch.zeros(c, dtype=torch.float64, device=device) for c in detector.stage_channels]
    count = torch.zeros((), dtype=torch.float64, device=device)
    for batch in batches:
        real, fake = batch["real"].to(device), batch["fake"].to(device)
        mask = batch["mask"].to(device)
        _, maps = detector.features(torch.cat([real, fake]))
        b = real.shape[0]
        for i, fmap in enumerate(maps):
            sums[i] += channel_errors(fmap[:b], fmap[b:], mask).sum(dim=0).double()
        count += b
        if on_batch:
            on_batch(b)
    if dist.is_available() and dist.is_initialized():
        for s in [*sums, count]:
            dist.all_reduce(s)
    detector.train(was_training)
    if count.item() == 0:
        raise ValueError("AFFS saw no pairs")
    scores = [(s / count).cpu() for s in sums]
    indices = [torch.argsort(s, stable=True)[:k].tolist() for s, k in zip(scores, keep, strict=False)]
    return AFFSSelection(indices, [s.tolist() for s in scores], list(detector.stage_channels), int(count.item()))
