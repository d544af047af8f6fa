"""`--ae sd-vae:FOLDER_OR_HUB_ID`: a diffusers AutoencoderKL (e.g. the Stable Diffusion VAE) as the AE.

AE(I) = decode(mode(encode(I))): the crop is padded (edge pixels repeated) to a multiple of the VAE's
down-sampling factor (8 for SD) and cropped back; fp16 on CUDA (redone in fp32 when fp16 overflows);
crops larger than `tile_above` px are encoded and decoded in overlapping tiles. Weights are read
from safetensors only. A hub id (OWNER/NAME[/SUBFOLDER]) is fetched once into the Hugging Face cache
when the user names it; a local folder may be the VAE itself or a pipeline folder with a vae/ inside.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import socket
from pathlib import Path
from urllib.parse import urlparse

import torch

from fiagen.errors import first_line
from fiagen.files import sha256_file
from fiagen.pipeline.reconstruct.base import DIGEST_CHARS, Reconstructor, ReconstructorError, pad_to_multiple

CONFIG = "config.json"
WEIGHTS = "diffusion_pytorch_model.safetensors"
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(/[\w.-]+)*$")
TILE_ABOVE = 1024
TILE = 512
PROBE_TIMEOUT_S = 5.0


def _vae_folder(folder: Path) -> Path | None:
    for candidate in (folder, folder / "vae"):
        if (candidate / CONFIG).is_file():
            return candidate
    return None


def _reach(endpoint: str, what: str) -> None:
    """One quick TCP connection to the hub, so an offline machine fails at once instead of retrying."""
    url = urlparse(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=PROBE_TIMEOUT_S).close()
    except OSError as err:
        raise ReconstructorError(f"{what}: not a local folder, and the Hugging Face hub ({endpoint}) cannot be "
                                 f"reached ({err}); download the VAE and pass its folder") from err


def _from_hub(target: str, what: str) -> Path:
    """The cached folder of a hub VAE, fetching config and safetensors weights when not cached."""
    from huggingface_hub import constants, hf_hub_download, try_to_load_from_cache
    from huggingface_hub.errors import EntryNotFoundError

    parts = target.split("/")
    repo, sub = "/".join(parts[:2]), "/".join(parts[2:])
    names = [f"{sub}/{n}" if sub else n for n in (CONFIG, WEIGHTS)]
    cached = [try_to_load_from_cache(repo, n) for n in names]
    if all(isinstance(c, str) for c in cached):
        return Path(cached[0]).parent
    if constants.HF_HUB_OFFLINE:
        raise ReconstructorError(f"{what}: not a local folder, not in the Hugging Face cache, and HF_HUB_OFFLINE "
                                 f"is set; download the VAE and pass its folder")
    _reach(constants.ENDPOINT, what)
    try:
        paths = [hf_hub_download(repo, n) for n in names]
    except (OSError, EntryNotFoundError, ValueError) as err:
        raise ReconstructorError(f"{what}: the hub could not give {repo} {' and '.join(names)} "
                                 f"({first_line(err)})") from err
    return Path(paths[0]).parent


def locate_vae(target: str) -> tuple[str, str, str]:
    """(local VAE folder, sha256 of its config and weights, its name) for a folder or hub id; one-line errors."""
    what = f"--ae sd-vae:{target}"
    local = Path(target).expanduser().absolute()  # actors may run in another directory
    if local.exists():
        folder = _vae_folder(local) if local.is_dir() else None
        if folder is None:
            raise ReconstructorError(f"{what}: {local} is not a diffusers AutoencoderKL folder "
                                     f"(no {CONFIG} in it or in its vae/)")
        name = local.resolve().name
    elif HUB_ID.match(target) and not target.startswith((".", "~")):
        folder, name = _from_hub(target, what), target
    else:
        raise ReconstructorError(f"{what}: no such folder, and not a hub id (OWNER/NAME[/SUBFOLDER])")
    try:
        config = json.loads((folder / CONFIG).read_text())
    except (OSError, ValueError) as err:
        raise ReconstructorError(f"{what}: cannot read {folder / CONFIG} ({err})") from err
    if config.get("_class_name") != "AutoencoderKL":
        raise ReconstructorError(f"{what}: {folder} holds a {config.get('_class_name')}, not an AutoencoderKL")
    if not (folder / WEIGHTS).is_file():
        raise ReconstructorError(f"{what}: no {WEIGHTS} in {folder} (fiagen reads safetensors weights only)")
    digest = hashlib.sha256(f"{sha256_file(folder / CONFIG)}{sha256_file(folder / WEIGHTS)}".encode()).hexdigest()
    return str(folder), digest, name


class SdVaeReconstructor(Reconstructor):
    """AE(I) through a diffusers AutoencoderKL loaded from a local folder (see the module docstring)."""

    kind = "ae"

    def __init__(self, folder: str, digest: str, name: str, device: torch.device | str = "cpu",
                 tile_above: int = TILE_ABOVE, tile: int = TILE) -> None:
        from diffusers import AutoencoderKL

        self.device = torch.device(device)
        self.vae = AutoencoderKL.from_pretrained(folder, use_safetensors=True, local_files_only=True,
                                                 low_cpu_mem_usage=False)
        self.vae = self.vae.to(self.device).eval()
        self.half = copy.deepcopy(self.vae).half() if self.device.type == "cuda" else None
        self.factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        self.tile_above, self.tile = tile_above, tile
        self.id = f"sd-vae:{name}@{digest[:DIGEST_CHARS]}"

    def _roundtrip(self, vae: torch.nn.Module, x: torch.Tensor, tiled: bool) -> torch.Tensor:
        if tiled:
            vae.enable_tiling()
            vae.tile_sample_min_size = self.tile
            vae.tile_latent_min_size = self.tile // self.factor
        else:
            vae.disable_tiling()
        latent = vae.encode(x.to(vae.dtype)).latent_dist.mode()
        return vae.decode(latent).sample

    def reconstruct_tensor(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        tiled = max(h, w) > self.tile_above
        signed = pad_to_multiple(x, self.factor) * 2 - 1
        y = None
        if self.half is not None:
            y = self._roundtrip(self.half, signed, tiled)
        if y is None or not torch.isfinite(y).all():
            y = self._roundtrip(self.vae, signed, tiled)
        return ((y.float() + 1) / 2)[..., :h, :w]
