"""One SAM step on a (real, fake, mask) batch: BCE + PCR + ICR, skipped as a whole when a loss is not finite."""

from __future__ import annotations

import torch
from pytorch_optimizer import SAM

from fiagen.train.config import TrainConfig
from fiagen.train.context import Context, all_finite, autocast
from fiagen.train.losses import detector_loss


def sam_step(net: torch.nn.Module, optimizer: SAM, batch: dict[str, torch.Tensor], cfg: TrainConfig,
             ctx: Context) -> dict[str, float] | None:
    """One SAM step (gradient, ascent to the perturbed weights, gradient there, SGD update).

    Returns the loss terms of the first pass, or None when a pass had a non-finite loss and the step was
    skipped (weights, momentum and normalisation statistics unchanged).
    """
    device = ctx.device
    real = batch["real"].to(device, non_blocking=True)
    fake = batch["fake"].to(device, non_blocking=True)
    mask = batch["mask"].to(device, non_blocking=True)
    x = torch.cat([real, fake])
    if cfg.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)

    def losses() -> dict[str, torch.Tensor]:
        with autocast(cfg, device):
            logits, fmap = net(x)
        return detector_loss(logits, fmap, mask, cfg.lambdas, cfg.tau, cfg.boundary)

    buffers = [b.detach().clone() for b in net.buffers()]  # BN statistics a bad batch would poison

    def skip() -> None:
        with torch.no_grad():
            for b, saved in zip(net.buffers(), buffers, strict=False):
                b.copy_(saved)
        optimizer.zero_grad(set_to_none=True)

    optimizer.zero_grad(set_to_none=True)
    terms = losses()
    if not all_finite(terms["loss"], ctx):
        skip()
        return None
    terms["loss"].backward()
    second_ok = []

    def closure() -> torch.Tensor:
        loss = losses()["loss"]
        ok = all_finite(loss, ctx)
        second_ok.append(ok)
        if ok:  # else no gradients: second_step restores the weights and SGD skips every parameter
            loss.backward()
        return loss

    optimizer.step(closure)
    optimizer.zero_grad(set_to_none=True)
    if not second_ok[0]:
        skip()
        return None
    return {k: float(v.detach()) for k, v in terms.items()}
