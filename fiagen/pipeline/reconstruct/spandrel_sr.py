"""`--sr spandrel:FILE`: any image super-resolution checkpoint spandrel recognises (ESRGAN/Real-ESRGAN,
SwinIR, HAT, GFPGAN, ...) as the SR.

SR(I) = model(I downscaled by the model's own scale), cropped to I's size (spandrel pads the
low-resolution input to the size the architecture requires and crops its output back). The checkpoint is read as data:
safetensors, or torch.load with weights_only=True. fp16 on CUDA when the architecture supports it.
"""

from __future__ import annotations

from pathlib import Path

import torch

from fiagen.errors import first_line
from fiagen.files import load_plain, sha256_file
from fiagen.pipeline.reconstruct.base import DIGEST_CHARS, Reconstructor, ReconstructorError, super_resolve

SUFFIXES = (".pth", ".pt", ".ckpt", ".safetensors")


def load_descriptor(path: Path, what: str):
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


class SpandrelReconstructor(Reconstructor):
    """SR(I) through a spandrel model (see the module docstring)."""

    kind = "sr"

    def __init__(self, path: str, digest: str, name: str, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.model = load_descriptor(Path(path), f"--sr spandrel:{path}")
        self.model.to(self.device).eval()
        if self.device.type == "cuda" and self.model.supports_half:
            self.model.half()
            self.dtype = torch.float16
        self.scale = int(self.model.scale)
        arch = self.model.architecture.id
        self.id = f"spandrel:{arch}-x{self.scale}:{name}@{digest[:DIGEST_CHARS]}"

    def reconstruct_tensor(self, x: torch.Tensor) -> torch.Tensor:
        return super_resolve(x, self.scale, self.model).float()
