"""The settings of `fiagen precompute` (PrecomputeConfig, with the fingerprint an output folder is
claimed with) and what a run returns."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fiagen.errors import FiagenError
from fiagen.manifests.sources import SPLITS, SourceListing
from fiagen.pipeline.faces import PASSES
from fiagen.pipeline.reconstruct import ReconstructorSpec, parse_spec, resolve_spec
from fiagen.pipeline.shards import SCHEMA_VERSION

MODELS_DIR = "models"


class ConfigMismatch(FiagenError):
    """An output folder made with other settings; the message says how to proceed."""


@dataclass(frozen=True)
class PrecomputeConfig:
    """Every setting of `fiagen precompute` (see `fiagen precompute --help`)."""

    src: str = "ff++_c23"
    root: str | None = None
    out: str = "out"
    splits: tuple[str, ...] = SPLITS
    frames: int = 32
    shard_size: int = 256
    workers: int | None = None
    address: str | None = None
    ae: str = "builtin"
    sr: str = "builtin"
    fit_steps: int = 1000
    fit_patch: int = 64
    fit_videos: int = 16
    limit: int | None = None
    compression: str = "none"
    overwrite: bool = False
    quiet: bool = False

    def reconstructor_specs(self) -> list[ReconstructorSpec]:
        """The enabled --ae/--sr specs, parsed and resolved (weights found, hashed; a named hub id fetched)."""
        specs = [parse_spec(self.ae, "ae"), parse_spec(self.sr, "sr")]
        return [resolve_spec(s) for s in specs if s.enabled]

    def fit_settings(self) -> Any:
        """How the builtin reconstructors are fit (fiagen.pipeline.reconstruct.fit.FitSettings)."""
        from fiagen.pipeline.reconstruct.fit import FitSettings

        return FitSettings(steps=self.fit_steps, patch=self.fit_patch)

    def fingerprint(self, listing: SourceListing, specs: list[ReconstructorSpec] = ()) -> dict[str, Any]:
        """The settings that decide what the output holds (not how fast it is made): with reconstructors,
        their weights' sha256 (pretrained) or fit settings (builtin)."""
        recon: dict[str, Any] = {}
        for spec in specs:
            recon.update({f"{spec.kind}_{k}": v for k, v in spec.fingerprint().items() if k != "spec"})
        if any(spec.family == "builtin" for spec in specs):
            recon["fit"] = {**asdict(self.fit_settings()), "videos": self.fit_videos}
        return {
            "schema_version": SCHEMA_VERSION,
            "src": self.src,
            "source_root": str(listing.root.resolve()),
            "splits": list(self.splits),
            "frames": self.frames,
            "shard_size": self.shard_size,
            "ae": self.ae,
            "sr": self.sr,
            "limit": self.limit,
            "compression": self.compression,
            "face_passes": list(PASSES),
            **recon,
        }


@dataclass
class PrecomputeReport:
    """What a precompute run wrote: the folder, its run report, and how many shards were (re)built."""

    out: Path
    report: dict[str, Any] = field(default_factory=dict)
    shards_written: int = 0
    shards_reused: int = 0
