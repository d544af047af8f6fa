"""The training loss L = λ1·BCE + λ2·PCR + λ3·ICR (docs/method.md §4).

RCR, region-aware contrastive regularisation, works on the finest FPN map H with the fake's mask
resized to it. δ(a, b) is the mean cosine similarity over all pairs of pixel features of regions a and b;
since the mean of dot products is the dot product of means, δ(a, b) = mean(â)·mean(b̂) with x̂ = x/|x|.
- PCR, patch-level: inside and outside agree on real faces, not on fakes.
- ICR, image-level: the outsides of a real/fake pair agree, their insides do not.
Boundary pixels (neither clearly inside nor clearly outside the mask) are dropped; a sample without
both regions takes no part in RCR.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def region_masks(mask: torch.Tensor, size: Sequence[int], boundary: Sequence[float] = (0.1, 0.9)
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """(inside, outside) as float 0/1 maps (B,1,h,w) of a soft mask (B,1,H,W) area-resized to `size`.

    With peak = the resized mask's maximum per sample (masks are scaled by a blend ratio), a pixel is
    inside when >= HIGH·peak, outside when <= LOW·peak, else boundary (in neither). An all-zero mask
    has no inside.
    """
    low, high = boundary
    m = F.adaptive_avg_pool2d(mask.float(), tuple(size))
    peak = m.amax(dim=(1, 2, 3), keepdim=True)
    inside = (m >= high * peak) & (peak > 0)
    outside = m <= low * peak
    outside = outside & ~inside
    return inside.float(), outside.float()


def region_mean(unit: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """Mean of the unit pixel features (B,C,h,w) over a 0/1 region (B,1,h,w) -> (B,C)."""
    total = (unit * region).sum(dim=(2, 3))
    return total / region.sum(dim=(2, 3)).clamp_min(1.0)


def _contrast(positive: torch.Tensor, negative: torch.Tensor, valid: torch.Tensor, tau: float) -> torch.Tensor:
    """-log(Σ e^{pos/τ} / (Σ e^{pos/τ} + Σ e^{neg/τ})) over the valid samples, stably."""
    pos = positive[valid] / tau
    neg = negative[valid] / tau
    return torch.logsumexp(torch.cat([pos, neg]), 0) - torch.logsumexp(pos, 0)


def rcr_losses(h_real: torch.Tensor, h_fake: torch.Tensor, mask: torch.Tensor, tau: float = 0.7,
               boundary: Sequence[float] = (0.1, 0.9)) -> dict[str, torch.Tensor]:
    """{"pcr", "icr"} for paired FPN maps (B,C,h,w) and the fakes' masks (B,1,H,W) (also the reals' masks)."""
    inside, outside = region_masks(mask, h_real.shape[-2:], boundary)
    valid = (inside.sum(dim=(1, 2, 3)) > 0) & (outside.sum(dim=(1, 2, 3)) > 0)
    if not bool(valid.any()):
        zero = (h_real.sum() + h_fake.sum()) * 0.0  # keeps the graph (and DDP) connected
        return {"pcr": zero, "icr": zero}
    real = F.normalize(h_real.float(), dim=1)
    fake = F.normalize(h_fake.float(), dim=1)
    in_r, out_r = region_mean(real, inside), region_mean(real, outside)
    in_f, out_f = region_mean(fake, inside), region_mean(fake, outside)
    delta = lambda a, b: (a * b).sum(dim=1)  # noqa: E731 - δ of two region means
    return {
        "pcr": _contrast(delta(in_r, out_r), delta(in_f, out_f), valid, tau),
        "icr": _contrast(delta(out_r, out_f), delta(in_r, in_f), valid, tau),
    }


def detector_loss(logits: torch.Tensor, fpn_map: torch.Tensor | None, mask: torch.Tensor,
                  lambdas: Sequence[float] = (1.0, 2.5, 0.25), tau: float = 0.7,
                  boundary: Sequence[float] = (0.1, 0.9)) -> dict[str, torch.Tensor]:
    """{"loss", "bce", "pcr", "icr"} for a batch laid out as [B reals; their B fakes].

    `logits` (2B,), `fpn_map` (2B,C,h,w) or None when PCR and ICR are off, `mask` (B,1,H,W).
    """
    b = mask.shape[0]
    labels = torch.cat([torch.zeros(b), torch.ones(b)]).to(logits.device)
    bce = F.binary_cross_entropy_with_logits(logits.float(), labels)
    terms = {"bce": bce}
    if fpn_map is not None and (lambdas[1] > 0 or lambdas[2] > 0):
        terms.update(rcr_losses(fpn_map[:b], fpn_map[b:], mask, tau, boundary))
    else:
        terms.update(pcr=bce.new_zeros(()), icr=bce.new_zeros(()))
    terms["loss"] = lambdas[0] * terms["bce"] + lambdas[1] * terms["pcr"] + lambdas[2] * terms["icr"]
    return terms
