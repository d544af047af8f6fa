"""The reconstructor interface: uint8 RGB crops in, reconstructions of the same size out, with an id.

An id names the model and a hash of its weights (`builtin-ae:1a2b3c4d5e6f`,
`sd-vae:stabilityai/sd-vae-ft-mse@...`, `spandrel:ESRGAN-x4:RealESRGAN_x4plus.pth@...`), so two shards
hold reconstructions by the same model exactly when their ids are equal.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from fiagen.pipeline.reconstruct.spec import KINDS, ReconstructorError

__all__ = ["KINDS", "DIGEST_CHARS", "Reconstructor", "ReconstructionFailed", "ReconstructorError", "downscale",
           "pad_to", "pad_to_multiple", "super_resolve", "to_tensor", "to_uint8", "weights_digest"]

DIGEST_CHARS = 12


class ReconstructionFailed(Exception):
    """A reconstructor gave no valid output for one image; the message is the recorded reason."""


def weights_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """sha256 over the names, dtypes, shapes and bytes of a state dict, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def to_tensor(image: np.ndarray, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (1, 3, H, W) in [0, 1]."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ReconstructionFailed(f"expected an (H, W, 3) uint8 image, got {image.shape} {image.dtype}")
    t = torch.from_numpy(np.ascontiguousarray(image)).to(device)
    return t.permute(2, 0, 1).unsqueeze(0).to(dtype) / 255.0


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) in [0, 1] -> (H, W, 3) uint8, rounded to nearest."""
    y = (x[0].float().clamp(0, 1) * 255.0).round().to(torch.uint8)
    return y.permute(1, 2, 0).cpu().numpy()


def pad_to(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pad (N, C, H, W) at the bottom and right to at least height x width, repeating the edge pixels."""
    ph, pw = max(0, height - x.shape[-2]), max(0, width - x.shape[-1])
    if not (ph or pw):
        return x
    return F.pad(x, (0, pw, 0, ph), mode="replicate")


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad (N, C, H, W) at the bottom and right so H and W are multiples of `multiple`."""
    h, w = x.shape[-2:]
    return pad_to(x, -(-h // multiple) * multiple, -(-w // multiple) * multiple)


def downscale(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Bicubic (antialiased) downscale of (N, C, H, W) by an integer factor that divides H and W."""
    if factor == 1:
        return x
    h, w = x.shape[-2:]
    return F.interpolate(x, size=(h // factor, w // factor), mode="bicubic", antialias=True,
                         align_corners=False).clamp(0, 1)


def super_resolve(x: torch.Tensor, scale: int, upscale: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """SR(I): pad I to a multiple of `scale`, downscale it by `scale`, upscale it back, crop to I's size."""
    h, w = x.shape[-2:]
    hr = upscale(downscale(pad_to_multiple(x, scale), scale))
    return hr[..., :h, :w]


class Reconstructor(ABC):
    """Batch in, batch out: same size as the input, deterministic for fixed weights.

    Images are processed one at a time, so a crop's output never depends on the other crops of its
    batch (crops differ in size, and batched kernels may round differently). Outputs are identical
    bytes for the same weights on the same device and torch thread count (precompute's CPU actors use
    one thread; other thread counts may round a few pixels differently).
    """

    kind: str
    id: str
    device: torch.device
    dtype: torch.dtype = torch.float32

    @abstractmethod
    def reconstruct_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """(1, 3, H, W) in [0, 1] (self.dtype, self.device) -> the reconstruction, same shape."""

    def __call__(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Reconstruct uint8 RGB crops; raises ReconstructionFailed when one has no valid output."""
        out = []
        with torch.inference_mode():
            for image in images:
                y = self.reconstruct_tensor(to_tensor(image, self.device, self.dtype))
                if tuple(y.shape[-2:]) != image.shape[:2]:
                    raise ReconstructionFailed(f"{self.id} gave {tuple(y.shape[-2:])} for a {image.shape[:2]} crop")
                if not torch.isfinite(y).all():
                    raise ReconstructionFailed(f"{self.id} gave non-finite values")
                out.append(to_uint8(y))
        return out
