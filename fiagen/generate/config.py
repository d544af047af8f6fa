"""Settings of the online stage: the user's knobs (GenerateConfig), the paper's ablations, and the
resolved Recipe that the per-frame code follows."""

from __future__ import annotations

import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass, replace
from typing import Any

from fiagen.core.ablations import ABLATIONS
from fiagen.core.errors import FiagenError
from fiagen.core.settings import underscored
from fiagen.generate.augment import AugmentRanges
from fiagen.generate.crop import TRAIN_MARGINS
from fiagen.generate.masks import MACRO_TYPES, MASK_TYPES
from fiagen.generate.mmr import FULL_PROBS, NO_AE_PROBS, NO_SR_PROBS, ORIGINAL_ONLY, RECONS
from fiagen.generate.transforms import FIA_COLOUR, FREQ_OPS, SBI_COLOUR, SBI_FREQ_OPS, ColourRanges

SBI_MASKS = (("hull81", 0.75), ("hull68", 0.25))


class GenerateError(FiagenError):
    """Shards or settings the online stage cannot use; the message says which and why."""


@dataclass(frozen=True)
class GenerateConfig:
    """Optional knobs of the online stage beyond the ablation (defaults follow docs/method.md §2).

    mask_types: override the ablation's mask types (drawn with equal probability).
    recon_probs: override MMR's (variant, probability) pairs; variants ae, sr, original.
    t_source_p: probability that T goes to the source (outside) side rather than the target.
    transform: apply T at all (off: the two sides differ only by the reconstruction).
    affine: SBI's spatial step (docs/method.md §2.3b): random affine of the target side and mask, elastic
        deformation of every mask type; on in every recipe but the no_affine ablation.
    elastic_p: probability of the macro masks' elastic deformation.
    micro_masks_from: the mask warm-up, a fraction of a training run's epochs: before epoch
        ceil(micro_masks_from x epochs) only the recipe's macro masks (hull81, rect4, hull68) are drawn, from it
        on the micro ones (eyes, mouth, eyes_mouth) too; 0 (default): all from the start. Validation never warms up.
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
    micro_masks_from: float = 0.0
    train_margins: tuple[float, float] = TRAIN_MARGINS
    post_blend: bool = True
    augment: AugmentRanges = field(default_factory=AugmentRanges)
    verify: bool = True


@dataclass(frozen=True)
class Recipe:
    """Everything that decides how a pair is drawn, resolved from ablation + config + train/eval; before
    epoch `micro_from` the masks are `early_masks` (the macro ones), from it `mask_types`."""

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
    early_masks: tuple[tuple[str, float], ...] = ()
    micro_from: int = 0

    def at_epoch(self, epoch: int) -> Recipe:
        """The recipe that draws the pairs of an epoch (the macro masks alone during the warm-up)."""
        return replace(self, mask_types=self.early_masks, micro_from=0) if epoch < self.micro_from else self


def _warmup(masks: tuple[tuple[str, float], ...], fraction: float, epochs: int | None,
            train: bool) -> tuple[tuple[tuple[str, float], ...], int]:
    """(early masks, first epoch with every mask) of the mask warm-up (GenerateConfig.micro_masks_from)."""
    early = tuple((m, w) for m, w in masks if m in MACRO_TYPES)
    if not train or fraction == 0 or len(early) == len(masks):
        return (), 0
    if not 0 <= fraction <= 1:
        raise GenerateError(f"micro_masks_from {fraction}: expected a fraction of the run's epochs in [0, 1]")
    if not early:
        raise GenerateError(f"micro_masks_from {fraction}: the mask types {[m for m, _ in masks]} hold no macro mask "
                            f"({', '.join(MACRO_TYPES)}) to draw before the micro ones join")
    if epochs is None:
        raise GenerateError(f"micro_masks_from {fraction} is a fraction of the training run's epochs: give the run's "
                            f"epochs (preview and generate: --epochs)")
    return early, math.ceil(fraction * epochs - 1e-9)


def resolve_recipe(ablation: str, config: GenerateConfig, train: bool, size: int, epochs: int | None = None) -> Recipe:
    """The recipe of an ablation with the config's overrides, for a training run of `epochs` epochs (needed only
    by the mask warm-up); GenerateError on a bad setting."""
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
    early, micro_from = _warmup(masks, config.micro_masks_from, epochs, train)
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
        early_masks=early,
        micro_from=micro_from,
    )


# The `generate:` section of a stage's YAML (train, preview, generate, a pipeline's train stage): the
# fields of GenerateConfig but `affine` (each stage has its own `affine` key), nested mappings for
# `augment` and `augment.colour`, as plain YAML data with every default filled in.
SECTION = "generate"
NOT_IN_SECTION = ("affine",)
FRACTIONS = {"micro_masks_from": "fraction of the run's epochs"}  # numbers in [0, 1] whose names do not end in _p
SECTION_HELP = ("YAML only: the online stage's knobs, a mapping of GenerateConfig's fields (e.g. `generate: "
                "{t_source_p: 0.3, elastic_p: 0.5, recon_probs: {ae: 0.5, sr: 0.5}}`; see `--dry-run` for every "
                "key and its default): mask_types, recon_probs, t_source_p, transform, elastic_p, micro_masks_from "
                "(mask warm-up: the fraction of the epochs with macro masks only), train_margins, post_blend, "
                "augment (jpeg_p, flip_p, ..., colour), verify.")


def _plain(value: Any) -> Any:
    """A default as YAML-safe data: tuples as lists, dataclasses as mappings."""
    if is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _number(value: Any, where: str, kind: type = float) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and value != int(value)):
        raise GenerateError(f"{where}: expected {'an integer' if kind is int else 'a number'}, got {value!r}")
    return kind(value)


def _checked(name: str, hint: Any, value: Any, where: str) -> Any:
    """One value of the section, checked and as plain data."""
    if name == "mask_types":
        if value is None:
            return None
        items = [v.strip() for v in value.split(",")] if isinstance(value, str) else value
        valid = MASK_TYPES + ("hull68",)
        if not isinstance(items, list) or not items or any(v not in valid for v in items):
            raise GenerateError(f"{where}: expected a list of {', '.join(valid)}, got {value!r}")
        return list(items)
    if name == "recon_probs":
        if value is None:
            return None
        pairs = value.items() if isinstance(value, Mapping) else value
        try:
            probs = {str(k): _number(p, f"{where}.{k}") for k, p in pairs}
        except (TypeError, ValueError):
            raise GenerateError(f"{where}: expected a mapping of {', '.join(RECONS)}: probability, got "
                                f"{value!r}") from None
        if any(k not in RECONS for k in probs) or any(p < 0 for p in probs.values()) or sum(probs.values()) <= 0:
            raise GenerateError(f"{where}: expected a mapping of {', '.join(RECONS)}: probability >= 0 (not all 0), "
                                f"got {value!r}")
        return probs
    if hint is bool:
        if not isinstance(value, bool):
            raise GenerateError(f"{where}: expected true or false, got {value!r}")
        return value
    if typing.get_origin(hint) is tuple:
        kind = typing.get_args(hint)[0]
        if not isinstance(value, list | tuple) or len(value) != 2:
            raise GenerateError(f"{where}: expected [LOW, HIGH], got {value!r}")
        low, high = (_number(v, where, kind) for v in value)
        if not 0 <= low <= high:
            raise GenerateError(f"{where}: expected 0 <= LOW <= HIGH, got {value!r}")
        return [low, high]
    number = _number(value, where, hint if hint in (int, float) else float)
    unit = FRACTIONS.get(name, "probability" if name.endswith("_p") else None)
    if number < 0 or (unit and number > 1):
        raise GenerateError(f"{where}: expected a {f'{unit} in [0, 1]' if unit else 'number >= 0'}, got {value!r}")
    return number


def _section(default: Any, given: Any, where: str, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """The fields of the dataclass instance `default` (less `skip`) with the values of `given` checked."""
    if not isinstance(given, Mapping):
        raise GenerateError(f"{where}: expected a mapping of key: value, got {given!r}")
    names = [f.name for f in fields(default) if f.name not in skip]
    given = underscored(given)
    unknown = [k for k in given if k not in names]
    if unknown and unknown[0] in skip:
        raise GenerateError(f"{where}: {unknown[0]!r} is the stage's own key ({unknown[0]}: ... beside {where}:), "
                            f"not one of {where}'s")
    if unknown:
        raise GenerateError(f"{where}: unknown key {unknown[0]!r}; valid keys: {', '.join(names)}")
    hints = typing.get_type_hints(type(default))
    out = {}
    for name in names:
        value = getattr(default, name)
        if is_dataclass(value):
            out[name] = _section(value, given.get(name, {}), f"{where}.{name}")
        else:
            out[name] = _checked(name, hints[name], given[name], f"{where}.{name}") if name in given else _plain(value)
    return out


def generate_settings(given: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The `generate:` section of a stage's YAML checked against GenerateConfig's fields (unknown keys,
    types, ranges: a GenerateError naming the key and the valid keys) and completed with every default,
    as plain YAML data. Idempotent: its output is a valid input."""
    return _section(GenerateConfig(), {} if given is None else given, SECTION, NOT_IN_SECTION)


def _built(cls: type, data: Mapping[str, Any]) -> Any:
    """A dataclass from checked plain data (lists as tuples, mappings of nested dataclasses built)."""
    hints, values = typing.get_type_hints(cls), {}
    for f in fields(cls):
        if f.name not in data:
            continue
        value, hint = data[f.name], hints[f.name]
        if isinstance(value, Mapping) and f.name == "recon_probs":
            value = tuple((k, float(p)) for k, p in value.items())
        elif isinstance(value, Mapping):
            value = _built(hint, value)
        elif isinstance(value, list):
            value = tuple(value)
        values[f.name] = value
    return cls(**values)


def generate_config(settings: Mapping[str, Any] | None = None, **fixed: Any) -> GenerateConfig:
    """The GenerateConfig of a stage: its `generate:` section (checked) and the stage's own keys (`affine`)."""
    return replace(_built(GenerateConfig, generate_settings(settings)), **fixed)
