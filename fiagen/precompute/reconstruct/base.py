"""The reconstructor interface: uint8 RGB crops in, reconstructions of the same size out, with an id.

An id names the model and a hash of its weights (`builtin-ae:1a2b3c4d5e6f`,
`sd-vae:stabilityai/sd-vae-ft-mse@...`, `taesd:madebyollin/taesd@...`, `dat-light-x4@e18223fc4150`,
`realesrgan-x4plus@...`, `spandrel:ESRGAN-x4:RealESRGAN_x4plus.pth@...`), so two shards
hold reconstructions by the same model exactly when their ids are equal.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from importlib.resources.abc import Traversable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fiagen.core.files import sha256_file
from fiagen.precompute.reconstruct.spec import KINDS, ReconstructorError

__all__ = ["KINDS", "BUCKET", "CUDA_BATCH", "DIGEST_CHARS", "Reconstructor", "ReconstructionFailed",
           "ReconstructorError", "batch_size_for", "downscale", "pad_to", "pad_to_multiple", "pinned_files",
           "super_resolve", "to_tensor", "to_uint8", "weights_digest"]

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


def pinned_files(root: Traversable | Path, files: Sequence[tuple[str, str]], what: str, owner: str,
                 remedy: str) -> list[Path]:
    """The files ROOT/REL of (REL, sha256) pairs, each checked against its pinned sha256; a missing or changed
    one is one ReconstructorError line naming `owner` (what should hold it) and `remedy`."""
    paths = []
    for rel, expected in files:
        path = Path(str(root.joinpath(rel)))
        if not path.is_file():
            raise ReconstructorError(f"{what}: {owner} has no {rel}; {remedy}")
        found = sha256_file(path)
        if found != expected:
            raise ReconstructorError(f"{what}: {path} is not the pinned file of {owner} (sha256 {found[:12]}, "
                                     f"expected {expected[:12]}); {remedy}")
        paths.append(path)
    return paths


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


CUDA_BATCH = 16  # crops per forward pass on a GPU
BUCKET = 32  # on the batched path crops are edge-padded to a multiple of this, and batched with their equals


def batch_size_for(device: torch.device) -> int:
    """Crops per forward pass: one at a time on CPU (as the precompute CPU actors run), CUDA_BATCH on a GPU."""
    return CUDA_BATCH if device.type == "cuda" else 1


class Reconstructor(ABC):
    """Batch in, batch out: same size as the input, deterministic for fixed weights.

    With `batch_size` 1 (CPU) images are processed one at a time, at their own size. With more (a GPU),
    each crop is edge-padded at the bottom and right to a multiple of `bucket` px and run together with
    crops of the same padded size, then cropped back; the padding depends on the crop alone, so a crop's
    output does not depend on its batch-mates (up to the GPU kernels' rounding, which may vary with the
    batch size). Outputs are identical bytes for the same weights on the same device, batch size and
    torch thread count (precompute's CPU actors use one thread; other thread counts may round a few
    pixels differently).
    """

    kind: str
    id: str
    device: torch.device
    dtype: torch.dtype = torch.float32
    batch_size: int = 1
    bucket: int = BUCKET

    @abstractmethod
    def reconstruct_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] (self.dtype, self.device) -> the reconstructions, same shape."""

    def _padded_size(self, image: np.ndarray) -> tuple[int, int] | None:
        if self.batch_size <= 1:
            return None
        h, w = image.shape[:2]
        return -(-h // self.bucket) * self.bucket, -(-w // self.bucket) * self.bucket

    def _forward(self, images: Sequence[np.ndarray], size: tuple[int, int] | None) -> list[np.ndarray | Exception]:
        xs = [to_tensor(image, self.device, self.dtype) for image in images]
        if size is not None:
            xs = [pad_to(x, *size) for x in xs]
        y = self.reconstruct_tensor(torch.cat(xs))
        out: list[np.ndarray | Exception] = []
        for k, (image, x) in enumerate(zip(images, xs, strict=True)):
            h, w = image.shape[:2]
            if tuple(y.shape[-2:]) != tuple(x.shape[-2:]) or y.shape[0] != len(xs):
                out.append(ReconstructionFailed(f"{self.id} gave {tuple(y.shape[-2:])} for a {tuple(x.shape[-2:])} "
                                                f"input"))
            elif not torch.isfinite(y[k, :, :h, :w]).all():
                out.append(ReconstructionFailed(f"{self.id} gave non-finite values"))
            else:
                out.append(to_uint8(y[k:k + 1, :, :h, :w]))
        return out

    def reconstruct_each(self, images: Sequence[np.ndarray]) -> list[np.ndarray | Exception]:
        """Each crop's reconstruction, or the exception that stopped it (a failed batch is redone crop by
        crop, so one bad crop fails alone)."""
        groups: dict[tuple[int, int] | None, list[int]] = {}
        for i, image in enumerate(images):
            size = self._padded_size(image) if isinstance(image, np.ndarray) and image.ndim == 3 else None
            groups.setdefault(size, []).append(i)
        out: list[np.ndarray | Exception | None] = [None] * len(images)
        with torch.inference_mode():
            for size, members in groups.items():
                step = max(1, self.batch_size)
                for start in range(0, len(members), step):
                    chunk = members[start:start + step]
                    try:
                        results = self._forward([images[i] for i in chunk], size)
                    except Exception as err:  # noqa: BLE001 - redone one by one below, or recorded
                        if len(chunk) == 1:
                            results = [err]
                        else:
                            results = []
                            for i in chunk:
                                try:
                                    results += self._forward([images[i]], size)
                                except Exception as one:  # noqa: BLE001 - this crop's own failure
                                    results.append(one)
                    for i, result in zip(chunk, results, strict=True):
                        out[i] = result
        return out  # type: ignore[return-value]

    def __call__(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Reconstruct uint8 RGB crops; raises the first failure (ReconstructionFailed when a crop has no
        valid output)."""
        out = self.reconstruct_each(images)
        for result in out:
            if isinstance(result, Exception):
                raise result
        return out  # type: ignore[return-value]
