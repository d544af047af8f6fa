"""Reconstructors for MMR (multi-modal reconstruction): AE(I) and SR(I) of every stored face crop.

One module per family: base (interface, ids, resampling helpers), builtin + fit (the small nets fit
on the source's own crops), sd_vae (diffusers AutoencoderKL), spandrel_sr (spandrel SR checkpoints),
spec (the --ae/--sr values), stage (the Ray side of precompute). Heavy libraries load on first use.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from fiagen.pipeline.reconstruct.spec import ReconstructorSpec, parse_spec, resolve_spec

if TYPE_CHECKING:
    import torch

    from fiagen.pipeline.reconstruct.base import Reconstructor

__all__ = ["ReconstructorSpec", "load_reconstructor", "parse_spec", "resolve_spec"]


def load_reconstructor(spec: ReconstructorSpec, models_dir: Path,
                       device: torch.device | str = "cpu") -> Reconstructor:
    """The ready-to-run reconstructor of a resolved, enabled spec (builtin ones from `models_dir`)."""
    if spec.family == "builtin":
        from fiagen.pipeline.reconstruct.builtin import load_builtin

        return load_builtin(models_dir, spec.kind, device)
    if spec.path is None or spec.digest is None or spec.name is None:
        raise ValueError(f"{spec.text} is not resolved (call resolve_spec first)")
    if spec.family == "sd-vae":
        from fiagen.pipeline.reconstruct.sd_vae import SdVaeReconstructor

        return SdVaeReconstructor(spec.path, spec.digest, spec.name, device)
    if spec.family == "spandrel":
        from fiagen.pipeline.reconstruct.spandrel_sr import SpandrelReconstructor

        return SpandrelReconstructor(spec.path, spec.digest, spec.name, device)
    raise ValueError(f"no reconstructor for {spec.text}")
