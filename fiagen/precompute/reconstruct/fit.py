"""Fitting a builtin reconstructor on random patches of a source's real train crops."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from skimage.metrics import peak_signal_noise_ratio

from fiagen.precompute.reconstruct.base import ReconstructorError, downscale, super_resolve, to_tensor, to_uint8
from fiagen.precompute.reconstruct.builtin import ARCHS, SR_ARCH, BuiltinReconstructor, build_net

CURVE_POINTS = 50
# Measured on FF++-like crops: the AE converges ~2x faster at 1e-2; the SR, starting as bicubic, at 2e-3.
DEFAULT_LR = {"ae": 1e-2, "sr": 2e-3}


@dataclass(frozen=True)
class FitSettings:
    """How a builtin reconstructor is fit: Adam with cosine decay on L1, random crops of the train crops.
    `lr` None takes the kind's default (DEFAULT_LR)."""

    steps: int = 1000
    patch: int = 64
    batch: int = 16
    lr: float | None = None
    seed: int = 0

    def lr_for(self, kind: str) -> float:
        return self.lr if self.lr is not None else DEFAULT_LR[kind]


def sample_patches(crops: Sequence[np.ndarray], n: int, patch: int, rng: np.random.Generator) -> torch.Tensor:
    """`n` random `patch`-square patches (random crop, random horizontal flip) as (n, 3, p, p) in [0, 1]."""
    picks = rng.integers(len(crops), size=n)
    out = np.empty((n, patch, patch, 3), dtype=np.uint8)
    for i, c in enumerate(picks):
        crop = crops[c]
        y = rng.integers(crop.shape[0] - patch + 1)
        x = rng.integers(crop.shape[1] - patch + 1)
        p = crop[y:y + patch, x:x + patch]
        out[i] = p[:, ::-1] if rng.random() < 0.5 else p
    return torch.from_numpy(out).permute(0, 3, 1, 2).float() / 255.0


def mean_psnr(originals: Sequence[np.ndarray], reconstructions: Sequence[np.ndarray]) -> float:
    """Mean PSNR (dB, data range 255) of uint8 reconstructions against their originals."""
    values = [peak_signal_noise_ratio(o, r, data_range=255) for o, r in zip(originals, reconstructions, strict=False)]
    return float(np.mean(values))


def bicubic_sr(image: np.ndarray, scale: int) -> np.ndarray:
    """The bicubic reference for SR: the same x`scale` downscale, upscaled back by bicubic interpolation."""
    def upscale(lr: torch.Tensor) -> torch.Tensor:
        return F.interpolate(lr, scale_factor=scale, mode="bicubic", align_corners=False)

    return to_uint8(super_resolve(to_tensor(image, torch.device("cpu")), scale, upscale))


def fit_builtin(kind: str, train: Sequence[np.ndarray], val: Sequence[np.ndarray], settings: FitSettings,
                device: torch.device | str = "cpu") -> tuple[BuiltinReconstructor, dict[str, Any]]:
    """Fit the builtin `kind` net on patches of the `train` crops; return it and its record.

    The record holds the settings, the loss curve (mean L1 per interval), and the mean PSNR on the
    held-out `val` crops (for SR also the bicubic reference PSNR on the same crops).
    """
    check_settings(settings)
    device = torch.device(device)
    usable = [c for c in train if min(c.shape[:2]) >= settings.patch]
    if not usable:
        raise ReconstructorError(f"builtin {kind}: no train crop is at least {settings.patch} px on its short "
                                 f"side; pass a smaller --fit-patch")
    rng = np.random.default_rng(settings.seed)
    net = build_net(kind, torch.Generator().manual_seed(settings.seed)).to(device).train()
    lr = settings.lr_for(kind)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=settings.steps)
    every = max(1, settings.steps // CURVE_POINTS)
    curve, window, start = [], [], time.perf_counter()
    for step in range(1, settings.steps + 1):
        target = sample_patches(usable, settings.batch, settings.patch, rng).to(device)
        inputs = downscale(target, SR_ARCH["scale"]) if kind == "sr" else target
        inputs = inputs.contiguous(memory_format=torch.channels_last)
        loss = F.l1_loss(net(inputs), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        window.append(loss.item())
        if step % every == 0 or step == settings.steps:
            curve.append([step, float(np.mean(window))])
            window = []
    seconds = time.perf_counter() - start
    rec = BuiltinReconstructor(kind, net.eval(), device)
    record: dict[str, Any] = {
        "id": rec.id, "kind": kind, "arch": ARCHS[kind], "settings": {**asdict(settings), "lr": lr},
        "device": str(device), "train_crops": len(usable), "val_crops": len(val), "fit_seconds": seconds,
        "loss_curve": curve,
    }
    if val:
        record["psnr_val"] = mean_psnr(val, rec(val))
        if kind == "sr":
            record["psnr_val_bicubic"] = mean_psnr(val, [bicubic_sr(v, SR_ARCH["scale"]) for v in val])
    return rec, record


def check_settings(settings: FitSettings) -> None:
    """One-line errors for fit settings the builtin nets cannot use (before any video is read)."""
    if settings.steps < 1:
        raise ReconstructorError(f"--fit-steps must be at least 1, got {settings.steps}")
    if settings.patch < 16 or settings.patch % SR_ARCH["scale"]:
        raise ReconstructorError(f"--fit-patch must be a multiple of {SR_ARCH['scale']} and at least 16, "
                                 f"got {settings.patch}")
