"""The settings of `fiagen preview` (a grid of pairs) and `fiagen generate` (pairs written to disk), as
fiagen.core.settings reads them: options, YAML keys, --config and --dry-run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fiagen.core.ablations import ABLATIONS
from fiagen.core.settings import ConfigError, seed_setting, setting
from fiagen.generate.config import SECTION_HELP, GenerateError, generate_settings

AFFINE_HELP = ("SBI's spatial step (random affine of the blended-in side and mask, elastic deformation of every "
               "mask type); on in every recipe (docs/method.md §2.3b).")
EPOCHS_HELP = ("The training run's epochs, needed only with generate.micro_masks_from (the mask warm-up): epochs "
               "before its switch draw the macro masks only, as in training.")


@dataclass(frozen=True)
class PreviewConfig:
    """Every setting of `fiagen preview`."""

    shards: str | None = setting(None, "A precompute output folder.", folder=True, required=True)
    n: int = setting(16, "Pairs in the grid (spread over the split).", min=1, short="-n")
    out: str = setting("grid.png", "The PNG to write.", file=True)
    split: str = setting("train", "Split whose frames are shown.")
    seed: int = seed_setting("the pairs drawn (pair = f(seed, index, epoch))")
    epoch: int = setting(0, "Epoch of the draws.", min=0)
    epochs: int | None = setting(None, EPOCHS_HELP, min=1)
    size: int = setting(380, "Side of the generated pairs (px).", min=16)
    tile: int = setting(192, "Side of each image in the grid (px).", min=32)
    columns: int = setting(4, "Pairs per grid row.", min=1)
    ablation: str = setting("full", "Pseudo-fake recipe (Table 6a).", choices=ABLATIONS)
    affine: bool = setting(True, AFFINE_HELP)
    generate: dict[str, Any] | None = setting(None, SECTION_HELP, option=False, section=generate_settings)
    eval: bool = setting(False, "Validation draws: 12.5% crop, no flip/cut-out/noise/jitter (default: training "
                                "draws).", flag=True)

    def __post_init__(self) -> None:
        _complete_section(self)


@dataclass(frozen=True)
class ExportConfig:
    """Every setting of `fiagen generate`."""

    shards: str | None = setting(None, "A precompute output folder.", folder=True, required=True)
    export: str | None = setting(None, "Folder to write the pairs to.", output=True, required=True)
    n: int = setting(1000, "Pairs to write; item i is split row i mod rows at epoch i div rows, so N may exceed "
                           "the split.", min=1, short="-n")
    format: str = setting("png", "png: <split>/{real,fake,mask}/<video>/...; deepfakebench: "
                                 "FIA-USA/{real,fake}/frames/..., FIA-USA/fake/masks/... and FIA-USA.json (labels "
                                 "FIA-USA-real/-fake). Both write pairs.csv.", choices=("png", "deepfakebench"))
    split: str = setting("train", "Split whose frames are used.")
    seed: int = seed_setting("the pairs drawn (pair = f(seed, index, epoch))")
    epochs: int | None = setting(None, EPOCHS_HELP, min=1)
    size: int = setting(380, "Side of the written images (px).", min=16)
    ablation: str = setting("full", "Pseudo-fake recipe (Table 6a).", choices=ABLATIONS)
    affine: bool = setting(True, AFFINE_HELP)
    generate: dict[str, Any] | None = setting(None, SECTION_HELP + " Its post_blend is --augment's.", option=False,
                                              section=generate_settings)
    augment: bool = setting(False, "Also apply the shared post-blend augmentations (jitter, JPEG, flip, cut-out, "
                                   "noise).", flag=True)
    loader_workers: int = setting(0, "DataLoader worker processes (0: in this process).", min=0, alias="--workers")
    quiet: bool = setting(False, "No progress bar.", flag=True)

    def __post_init__(self) -> None:
        _complete_section(self)


def _complete_section(cfg: PreviewConfig | ExportConfig) -> None:
    """The `generate:` section of a config checked and completed with every default (shown by --dry-run)."""
    try:
        object.__setattr__(cfg, "generate", generate_settings(cfg.generate))
    except GenerateError as err:
        raise ConfigError(str(err)) from None
