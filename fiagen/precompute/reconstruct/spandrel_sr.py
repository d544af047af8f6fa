"""`--sr spandrel:FILE`: any image super-resolution checkpoint spandrel recognises (ESRGAN/Real-ESRGAN,
SwinIR, HAT, GFPGAN, ...) as the SR.

SR(I) = model(I downscaled by the model's own scale), cropped to I's size (spandrel pads the
low-resolution input to the size the architecture requires and crops its output back). The checkpoint is read as data:
safetensors, or torch.load with weights_only=True. On CUDA: fp16 when the architecture supports it (else bf16
where it does), channels_last, batched crops.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from fiagen.core.errors import first_line
from fiagen.core.files import load_plain, sha256_file
from fiagen.precompute.reconstruct.base import (
    DIGEST_CHARS,
    Reconstructor,
    ReconstructorError,
    batch_size_for,
    super_resolve,
)

if TYPE_CHECKING:  # spandrel loads with the first model
    from spandrel import ImageModelDescriptor

SUFFIXES = (".pth", ".pt", ".ckpt", ".safetensors")


def load_descriptor(path: Path, what: str) -> ImageModelDescriptor:
    """The spandrel ImageModelDescriptor of a checkpoint; ReconstructorError when it is not a 3-channel image model."""
    import spandrel
    from safetensors.torch import load_file

    try:
        if path.suffix.lower() == ".safetensors":
            state = load_file(str(path))
        else:
            state = load_plain(path)
        descriptor = spandrel.ModelLoader().load_from_state_dict(spandrel.canonicalize_state_dict(state))
    except spandrel.UnsupportedModelError as err:
        raise ReconstructorError(f"{what}: spandrel recognises no architecture in {path}") from err
    except Exception as err:  # noqa: BLE001 - unpickling/format errors of a user file are one line
        raise ReconstructorError(f"{what}: cannot read {path} as a weights file ({first_line(err)})") from err
    if not isinstance(descriptor, spandrel.ImageModelDescriptor) or (descriptor.input_channels,
                                                                        descriptor.output_channels) != (3, 3):
        raise ReconstructorError(f"{what}: {path} is a {descriptor.architecture.name} model, not a 3-channel "
                                 f"image-to-image model")
    return descriptor


def locate_checkpoint(target: str) -> tuple[str, str, str]:
    """(checkpoint path, its sha256, its file name) after checking spandrel can load it; one-line errors."""
    what = f"--sr spandrel:{target}"
    path = Path(target).expanduser()
    if not path.is_file():
        raise ReconstructorError(f"{what}: no such file")
    if path.suffix.lower() not in SUFFIXES:
        raise ReconstructorError(f"{what}: expected a {', '.join(SUFFIXES)} checkpoint")
    load_descriptor(path, what)
    return str(path.resolve()), sha256_file(path), path.name


class DescriptorReconstructor(Reconstructor):
    """SR(I) through a loaded spandrel model. On CUDA: the model in fp16 (or bf16 where the architecture
    supports only that; redone in fp32 when the low-precision pass fails or overflows), channels_last,
    CUDA_BATCH crops at a time; padding and the x`scale` downscale stay in fp32. On CPU: fp32, one crop
    at a time."""

    kind = "sr"

    def __init__(self, descriptor: ImageModelDescriptor, id: str, device: torch.device | str = "cpu") -> None:  # noqa: A002
        self.device = torch.device(device)
        self.model = descriptor
        self.model.to(self.device).eval()
        self.low = None  # the low-precision copy (CUDA)
        if self.device.type == "cuda":
            self.model.model.to(memory_format=torch.channels_last)
            if self.model.supports_half:
                self.low = copy.deepcopy(self.model).half()
            elif self.model.supports_bfloat16:
                self.low = copy.deepcopy(self.model).bfloat16()
        self.batch_size = batch_size_for(self.device)
        self.scale = int(self.model.scale)
        self.id = id

    def _upscale(self, lr: torch.Tensor) -> torch.Tensor:
        if self.device.type != "cuda":
            return self.model(lr)
        lr = lr.contiguous(memory_format=torch.channels_last)
        if self.low is not None:
            try:
                y = self.low(lr.to(self.low.dtype)).float()
                if torch.isfinite(y).all():
                    return y
            except RuntimeError:  # an op without a kernel for this dtype: fp32 below
                pass
        return self.model(lr)

    def reconstruct_tensor(self, x: torch.Tensor) -> torch.Tensor:
        return super_resolve(x, self.scale, self._upscale).float()


class SpandrelReconstructor(DescriptorReconstructor):
    """SR(I) through a spandrel checkpoint file (see the module docstring)."""

    def __init__(self, path: str, digest: str, name: str, device: torch.device | str = "cpu") -> None:
        descriptor = load_descriptor(Path(path), f"--sr spandrel:{path}")
        arch = descriptor.architecture.id
        super().__init__(descriptor, f"spandrel:{arch}-x{int(descriptor.scale)}:{name}@{digest[:DIGEST_CHARS]}", device)
