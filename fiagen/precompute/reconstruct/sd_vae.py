"""`--ae sd-vae[:FOLDER_OR_HUB_ID]` and `--ae taesd[:FOLDER_OR_HUB_ID]`: latent-diffusion autoencoders as the AE.

- sd-vae: a diffusers AutoencoderKL; bare, the Stable Diffusion VAE `stabilityai/sd-vae-ft-mse`.
  AE(I) = decode(mode(encode(I))).
- taesd: a diffusers AutoencoderTiny; bare, TAESD `madebyollin/taesd` (the tiny distilled SD VAE).
  AE(I) = decode(encode(I)) (latents not quantised).

The crop is padded (edge pixels repeated) to a multiple of the VAE's down-sampling factor (8 for both)
and cropped back; on CUDA fp16 (redone in fp32 when fp16 overflows), channels_last, CUDA_BATCH crops at
a time; crops larger than `tile_above` px are encoded and decoded in overlapping tiles. Weights are read
from safetensors only. A hub id (OWNER/NAME[/SUBFOLDER]) is fetched once into the Hugging Face cache
when the user names it (a cached one is used without asking the hub; with no network, or HF_HUB_OFFLINE
set, an uncached one is one error line at once); a local folder may be the VAE itself or a pipeline
folder with a vae/ inside.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path

import torch

from fiagen.core.errors import first_line
from fiagen.core.files import sha256_file
from fiagen.core.hub import hub_unreachable
from fiagen.precompute.reconstruct.base import (
    DIGEST_CHARS,
    Reconstructor,
    ReconstructorError,
    batch_size_for,
    pad_to_multiple,
)
from fiagen.precompute.reconstruct.spec import DEFAULT_TARGET

CONFIG = "config.json"
WEIGHTS = "diffusion_pytorch_model.safetensors"
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(/[\w.-]+)*$")
TILE_ABOVE = 1024
TILE = 512
CLASSES = {"sd-vae": "AutoencoderKL", "taesd": "AutoencoderTiny"}  # the diffusers class of each family


def _vae_folder(folder: Path) -> Path | None:
    for candidate in (folder, folder / "vae"):
        if (candidate / CONFIG).is_file():
            return candidate
    return None


def _hub_files(target: str) -> tuple[str, list[str]]:
    """(repo, [config, weights] paths in it) of a hub id OWNER/NAME[/SUBFOLDER]."""
    parts = target.split("/")
    repo, sub = "/".join(parts[:2]), "/".join(parts[2:])
    return repo, [f"{sub}/{n}" if sub else n for n in (CONFIG, WEIGHTS)]


def _cached(repo: str, names: list[str]) -> Path | None:
    """The cached folder of a hub VAE's files, or None when any is not in the Hugging Face cache."""
    from huggingface_hub import try_to_load_from_cache

    cached = [try_to_load_from_cache(repo, n) for n in names]
    return Path(cached[0]).parent if all(isinstance(c, str) for c in cached) else None


def _refuse_unreachable(what: str) -> None:
    """One ReconstructorError line when the hub cannot be used now (offline mode, no answer)."""
    from huggingface_hub import constants

    unreachable = hub_unreachable()
    if unreachable:
        raise ReconstructorError(f"{what}: not a local folder, not in the Hugging Face cache, and the hub "
                                 f"({constants.ENDPOINT}) cannot be used: {unreachable}; fetch it once with the "
                                 f"network (or download the VAE and pass its folder)")


def _from_hub(target: str, what: str) -> Path:
    """The cached folder of a hub VAE, fetching config and safetensors weights when not cached."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    repo, names = _hub_files(target)
    folder = _cached(repo, names)
    if folder is not None:
        return folder
    _refuse_unreachable(what)
    try:
        paths = [hf_hub_download(repo, n) for n in names]
    except (OSError, EntryNotFoundError, ValueError) as err:
        raise ReconstructorError(f"{what}: the hub could not give {repo} {' and '.join(names)} "
                                 f"({first_line(err)})") from err
    return Path(paths[0]).parent


def _what(target: str, family: str) -> str:
    return f"--ae {family}:{target}" if target else f"--ae {family} ({DEFAULT_TARGET[family]})"


def _hub_id(target: str) -> str | None:
    """The hub id OWNER/NAME[/SUBFOLDER] that a target (already defaulted) names, or None: an existing path,
    or not a hub id."""
    if Path(target).expanduser().exists() or target.startswith((".", "~")) or not HUB_ID.match(target):
        return None
    return target


def check_hub_vae(target: str, family: str = "sd-vae") -> bool:
    """What a check before any work asks of a hub VAE, without downloading it: in the Hugging Face cache,
    or the hub reachable now (one ReconstructorError line otherwise). True when `target` (bare: the family's
    default) names a hub id; False for anything else, which locate_vae checks."""
    hub_id = _hub_id(target or DEFAULT_TARGET[family])
    if hub_id is None:
        return False
    repo, names = _hub_files(hub_id)
    if _cached(repo, names) is None:
        _refuse_unreachable(_what(target, family))
    return True


def locate_vae(target: str, family: str = "sd-vae") -> tuple[str, str, str]:
    """(local VAE folder, sha256 of its config and weights, its name) for a folder or hub id (the family's
    default hub id when `target` is empty); one-line errors."""
    what = _what(target, family)
    target = target or DEFAULT_TARGET[family]
    local = Path(target).expanduser().absolute()  # actors may run in another directory
    if local.exists():
        folder = _vae_folder(local) if local.is_dir() else None
        if folder is None:
            raise ReconstructorError(f"{what}: {local} is not a diffusers {CLASSES[family]} folder "
                                     f"(no {CONFIG} in it or in its vae/)")
        name = local.resolve().name
    elif _hub_id(target) is not None:
        folder, name = _from_hub(target, what), target
    else:
        raise ReconstructorError(f"{what}: no such folder, and not a hub id (OWNER/NAME[/SUBFOLDER])")
    try:
        config = json.loads((folder / CONFIG).read_text())
    except (OSError, ValueError) as err:
        raise ReconstructorError(f"{what}: cannot read {folder / CONFIG} ({err})") from err
    if config.get("_class_name") != CLASSES[family]:
        raise ReconstructorError(f"{what}: {folder} holds a {config.get('_class_name')}, not an {CLASSES[family]}")
    if not (folder / WEIGHTS).is_file():
        raise ReconstructorError(f"{what}: no {WEIGHTS} in {folder} (fiagen reads safetensors weights only)")
    digest = hashlib.sha256(f"{sha256_file(folder / CONFIG)}{sha256_file(folder / WEIGHTS)}".encode()).hexdigest()
    return str(folder), digest, name


class SdVaeReconstructor(Reconstructor):
    """AE(I) through a diffusers AutoencoderKL or AutoencoderTiny loaded from a local folder (see the module
    docstring)."""

    kind = "ae"

    def __init__(self, folder: str, digest: str, name: str, device: torch.device | str = "cpu",
                 tile_above: int = TILE_ABOVE, tile: int = TILE, family: str = "sd-vae") -> None:
        import diffusers

        self.device = torch.device(device)
        self.tiny = family == "taesd"
        model = getattr(diffusers, CLASSES[family])
        verbosity = diffusers.utils.logging.get_verbosity()
        diffusers.utils.logging.set_verbosity_error()  # AutoencoderTiny warns about its own saved config keys
        try:
            self.vae = model.from_pretrained(folder, use_safetensors=True, local_files_only=True,
                                             low_cpu_mem_usage=False)
        finally:
            diffusers.utils.logging.set_verbosity(verbosity)
        self.vae = self.vae.to(self.device).eval()
        self.half = None
        if self.device.type == "cuda":
            self.vae = self.vae.to(memory_format=torch.channels_last)
            self.half = copy.deepcopy(self.vae).half()
        self.batch_size = batch_size_for(self.device)
        blocks = self.vae.config.encoder_block_out_channels if self.tiny else self.vae.config.block_out_channels
        self.factor = 2 ** (len(blocks) - 1)
        self.tile_above, self.tile = tile_above, tile
        self.id = f"{family}:{name}@{digest[:DIGEST_CHARS]}"

    def _roundtrip(self, vae: torch.nn.Module, x: torch.Tensor, tiled: bool) -> torch.Tensor:
        if tiled:
            vae.enable_tiling()
            vae.tile_sample_min_size = self.tile
            vae.tile_latent_min_size = self.tile // self.factor
        else:
            vae.disable_tiling()
        x = x.to(vae.dtype)
        if self.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        encoded = vae.encode(x)
        latent = encoded.latents if self.tiny else encoded.latent_dist.mode()
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
