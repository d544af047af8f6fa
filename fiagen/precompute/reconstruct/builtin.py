"""The builtin reconstructors: a small conv autoencoder and a x4 pixel-shuffle SR net, fit per source.

They exist so that precompute needs no download: both are fit on the source's own real train crops
(see fiagen.precompute.reconstruct.fit) and saved as `out/models/builtin_<kind>.safetensors` with a
JSON record beside it (`builtin_<kind>.json`: settings, loss curve, PSNR on held-out crops).
- AE: stride-2 conv encoder to an 8-channel latent at 1/4 resolution, and a decoder that upsamples
  with two stride-2 transposed convolutions (the decoder's up-sampling traces are the point).
- SR: ESPCN-style body on the x4-downscaled crop, a sub-pixel (PixelShuffle x4) output, added to the
  bicubic up-sampling of its input (residual learning, so short fits already beat bicubic).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save
from torch import nn

from fiagen.core.errors import message_line
from fiagen.core.files import write_bytes, write_text
from fiagen.precompute.reconstruct.base import (
    DIGEST_CHARS,
    Reconstructor,
    ReconstructorError,
    batch_size_for,
    pad_to_multiple,
    super_resolve,
    weights_digest,
)

AE_ARCH = {"name": "conv-ae-t2", "widths": [16, 32], "latent": 8, "factor": 4}
SR_ARCH = {"name": "espcn-res", "width": 48, "scale": 4}
ARCHS = {"ae": AE_ARCH, "sr": SR_ARCH}


class ConvAE(nn.Module):
    """Conv autoencoder; downsamples by 4 and upsamples with transposed convolutions."""

    def __init__(self, widths: list[int], latent: int, **_: Any) -> None:
        super().__init__()
        w0, w1 = widths
        self.encoder = nn.Sequential(
            nn.Conv2d(3, w0, 4, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(w0, w1, 4, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(w1, w1, 3, padding=1), nn.SiLU(),
            nn.Conv2d(w1, latent, 1),
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(latent, w1, 3, padding=1), nn.SiLU(),
            nn.ConvTranspose2d(w1, w1, 4, stride=2, padding=1), nn.SiLU(),
            nn.ConvTranspose2d(w1, w0, 4, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(w0, 3, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x * 2 - 1)) * 0.5 + 0.5  # zero-centred inside: faster, steadier fit


class PixelShuffleSR(nn.Module):
    """x`scale` sub-pixel SR: conv body -> 3*scale^2 channels -> PixelShuffle, plus bicubic of the input."""

    def __init__(self, width: int, scale: int, **_: Any) -> None:
        super().__init__()
        self.scale = scale
        self.body = nn.Sequential(
            nn.Conv2d(3, width, 5, padding=2), nn.SiLU(),
            nn.Conv2d(width, width, 3, padding=1), nn.SiLU(),
            nn.Conv2d(width, width // 2, 3, padding=1), nn.SiLU(),
            nn.Conv2d(width // 2, 3 * scale * scale, 3, padding=1),
            nn.PixelShuffle(scale),
        )

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        base = F.interpolate(lr, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return base + self.body(lr)


def build_net(kind: str, generator: torch.Generator | None = None) -> nn.Module:
    """A builtin net; with a generator, its weights are drawn from it (torch's default Kaiming-uniform
    scale, zero biases)."""
    net = ConvAE(**AE_ARCH) if kind == "ae" else PixelShuffleSR(**SR_ARCH)
    if generator is not None:
        for module in net.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
                nn.init.zeros_(module.bias)
        if kind == "sr":  # start as plain bicubic: the residual branch's last conv begins at zero
            nn.init.zeros_(net.body[-2].weight)
    return net.to(memory_format=torch.channels_last).eval()


class BuiltinReconstructor(Reconstructor):
    """A builtin AE (`AE(I)`) or SR (`SR(I)` = SR of I bicubically downscaled x4) around its net."""

    def __init__(self, kind: str, net: nn.Module, device: torch.device | str = "cpu") -> None:
        self.kind = kind
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()
        self.batch_size = batch_size_for(self.device)
        digest = weights_digest(self.net.state_dict())
        self.id = f"builtin-{kind}:{digest[:DIGEST_CHARS]}"

    def reconstruct_tensor(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)
        if self.kind == "sr":
            return super_resolve(x, SR_ARCH["scale"], self.net)
        h, w = x.shape[-2:]
        return self.net(pad_to_multiple(x, AE_ARCH["factor"]))[..., :h, :w]


def model_paths(models_dir: Path, kind: str) -> tuple[Path, Path]:
    """The weights file and the JSON record of a builtin reconstructor."""
    return Path(models_dir) / f"builtin_{kind}.safetensors", Path(models_dir) / f"builtin_{kind}.json"


def save_builtin(models_dir: Path, kind: str, net: nn.Module, record: dict[str, Any]) -> None:
    """Write the weights (safetensors) and then the record; the record names the weights' id."""
    weights, record_path = model_paths(models_dir, kind)
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    write_bytes(weights, save(state, metadata={"kind": kind, "arch": json.dumps(ARCHS[kind])}))
    write_text(record_path, json.dumps(record, indent=2) + "\n")


def read_record(models_dir: Path, kind: str) -> dict[str, Any] | None:
    """The saved record of a builtin reconstructor, or None when there is none."""
    _, record_path = model_paths(models_dir, kind)
    return json.loads(record_path.read_text()) if record_path.exists() else None


def load_builtin(models_dir: Path, kind: str, device: torch.device | str = "cpu") -> BuiltinReconstructor:
    """The saved builtin reconstructor; ReconstructorError when it is missing or not the recorded weights."""
    weights, _ = model_paths(models_dir, kind)
    record = read_record(models_dir, kind)
    if not weights.exists() or record is None:
        raise ReconstructorError(f"no fitted builtin {kind} under {models_dir} (precompute fits it)")
    net = build_net(kind)
    try:
        net.load_state_dict(load_file(str(weights)))
    except (RuntimeError, OSError) as err:
        raise ReconstructorError(f"{weights} does not hold the builtin {kind} net: {message_line(err)}") from err
    rec = BuiltinReconstructor(kind, net, device)
    if rec.id != record.get("id"):
        raise ReconstructorError(f"{weights} is not the model its record names ({record.get('id')}, found {rec.id})")
    return rec
