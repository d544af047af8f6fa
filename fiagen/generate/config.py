"""Settings of the online stage: the user's knobs (GenerateConfig), the paper's ablations, and the
resolved Recipe that the per-frame code follows."""

from __future__ import annotations

from dataclasses import dataclass, field

from fiagen.ablations import ABLATIONS
from fiagen.errors import FiagenError
from fiagen.generate.augment import AugmentRanges
from fiagen.generate.crop import TRAIN_MARGINS
from fiagen.generate.masks import MASK_TYPES
from fiagen.generate.mmr import FULL_PROBS, NO_AE_PROBS, NO_SR_PROBS, ORIGINAL_ONLY, RECONS
from fiagen.generate.transforms import FIA_COLOUR, FREQ_OPS, SBI_COLOUR, SBI_FREQ_OPS, ColourRanges

SBI_MASKS = (("hull81", 0.75), ("hull68", 0.25))


class GenerateError(FiagenError):
    """Shards or settings the online stage cannot use; the message says which and why."""


@dataclass(frozen=True)
class GenerateConfig:
    """Optional knobs of the online stage beyond the ablation (defaults follow METHOD.md §2).

    mask_types: override the ablation's mask types (drawn with equal probability).
    recon_probs: override MMR's (variant, probability) pairs; variants ae, sr, original.
    t_source_p: probability that T goes to the source (outside) side rather than the target.
    transform: apply T at all (off: the two sides differ only by the reconstruction).
    affine: SBI's spatial step (METHOD.md §2.3b): random affine of the target side and mask, elastic
        deformation of every mask type; on in every recipe but the no_affine ablation.
    elastic_p: probability of the macro masks' elastic deformation.
    train_margins: range of the random per-side crop margins in training (fractions of the face box).
    post_blend: the shared post-blend augmentations in training (never in validation).
    augment: their probabilities and ranges.
    verify: check every shard's sha256 against the manifest when the dataset is built.
    """

    mask_types: tuple[str, ...] | None = None
    recon_probs: tuple[tuple[str, float], ...] | None = None
    t_source_p: float = 0.5
    transform: bool = True
    affine: bool = True
    elastic_p: float = 1.0
    train_margins: tuple[float, float] = TRAIN_MARGINS
    post_blend: bool = True
    augment: AugmentRanges = field(default_factory=AugmentRanges)
    verify: bool = True


@dataclass(frozen=True)
class Recipe:
    """Everything that decides how a pair is drawn, resolved from ablation + config + train/eval."""

    mask_types: tuple[tuple[str, float], ...]
    recon_probs: tuple[tuple[str, float], ...]
    colour: ColourRanges
    freq_ops: tuple[str, ...]
    t_source_p: float
    transform: bool
    affine: bool
    elastic_p: float
    train: bool
    size: int
    margins: tuple[float, float]
    augment: AugmentRanges | None


def resolve_recipe(ablation: str, config: GenerateConfig, train: bool, size: int) -> Recipe:
    """The recipe of an ablation with the config's overrides; GenerateError on a bad setting."""
    if ablation not in ABLATIONS:
        raise GenerateError(f"unknown ablation '{ablation}': expected one of {', '.join(ABLATIONS)}")
    if size < 16:
        raise GenerateError(f"size {size} is too small: use at least 16 px")
    sbi = ablation == "sbi"
    masks = {"no_mtms": (("hull81", 1.0),), "sbi": SBI_MASKS}.get(ablation, tuple((m, 1.0) for m in MASK_TYPES))
    if config.mask_types is not None:
        bad = [m for m in config.mask_types if m not in MASK_TYPES + ("hull68",)]
        if bad or not config.mask_types:
            raise GenerateError(f"unknown mask types {bad}: expected some of {', '.join(MASK_TYPES)}, hull68")
        masks = tuple((m, 1.0) for m in config.mask_types)
    probs = {"no_sr": NO_SR_PROBS, "no_ae": NO_AE_PROBS, "sbi": ORIGINAL_ONLY}.get(ablation, FULL_PROBS)
    if config.recon_probs is not None:
        bad = [name for name, p in config.recon_probs if name not in RECONS or p < 0]
        if bad or sum(p for _, p in config.recon_probs) <= 0:
            raise GenerateError(f"bad recon_probs {config.recon_probs}: expected (name, p >= 0) with names in {RECONS}")
        probs = tuple(config.recon_probs)
    return Recipe(
        mask_types=masks,
        recon_probs=probs,
        colour=SBI_COLOUR if sbi else FIA_COLOUR,
        freq_ops=SBI_FREQ_OPS if sbi else FREQ_OPS,
        t_source_p=config.t_source_p,
        transform=config.transform,
        affine=config.affine and ablation != "no_affine",
        elastic_p=config.elastic_p,
        train=train,
        size=size,
        margins=config.train_margins,
        augment=config.augment if train and config.post_blend else None,
    )
