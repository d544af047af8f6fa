"""Which pseudo-fakes a detector catches: the AUC of each group of fakes (by mask type, reconstruction,
blend ratio and T side) against all the reals.

A group is named `<kind>:<value>`: `mask:hull81`, `recon:ae`, `ratio:0.25`, `t_side:target`. Each fake
belongs to one group of each kind; a group's AUC ranks its fakes against every real of the set, so an
AUC of 1.0 in `mask:hull81` and 0.5 in `mask:eyes` means hull-mask fakes are all caught and eye-mask
fakes are not told from the reals. No torch here: training validation and the `pseudo:` evaluation
suite share it.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from fiagen.generate.config import Recipe
from fiagen.generate.masks import BLEND_RATIOS, MASK_TYPES
from fiagen.generate.mmr import RECONS

# (meta key of a FIA-USA item, group kind) in the order the columns and rows are listed.
KINDS = (("mask_type", "mask"), ("recon", "recon"), ("blend_ratio", "ratio"), ("t_side", "t_side"))
T_SIDES = ("source", "target", "none")
BREAKDOWN_NAME = "val_breakdown.csv"


def group_name(kind: str, value: Any) -> str:
    """`kind:value`, a ratio written as 0.25 / 0.5 / 0.75 / 1."""
    return f"{kind}:{float(value):g}" if kind == "ratio" else f"{kind}:{value}"


def _canonical() -> list[str]:
    """Every group a FIA-USA recipe can draw, in listing order."""
    values = {"mask": MASK_TYPES + ("hull68",), "recon": RECONS, "ratio": sorted(set(BLEND_RATIOS)), "t_side": T_SIDES}
    return [group_name(kind, v) for _, kind in KINDS for v in values[kind]]


def ordered_groups(names: Iterable[str]) -> list[str]:
    """Group names by kind (KINDS order), then in canonical order (unknown values last, sorted)."""
    canonical = _canonical()
    kinds = [kind for _, kind in KINDS]

    def key(name: str) -> tuple[int, int, str]:
        kind = name.split(":", 1)[0]
        return (kinds.index(kind) if kind in kinds else len(kinds),
                canonical.index(name) if name in canonical else len(canonical), name)

    return sorted(set(names), key=key)


def recipe_groups(recipe: Recipe) -> list[str]:
    """The groups a recipe can draw: its mask types, every reconstruction (a row without the drawn one
    falls back to the original), every blend ratio, and the T sides (`none` when T is off)."""
    masks = [group_name("mask", m) for m, p in recipe.mask_types if p > 0]
    sides = ("source", "target") if recipe.transform else ("none",)
    rest = [group_name(kind, v) for kind, values in (("recon", RECONS), ("ratio", set(BLEND_RATIOS)),
                                                     ("t_side", sides)) for v in values]
    return ordered_groups(masks + rest)


def dataset_groups(ds: object) -> list[str] | None:
    """The breakdown columns of a validation set: its recipe's groups (a FIA-USA dataset), else None
    (the groups its fakes fall in, if its items carry meta)."""
    recipe = getattr(ds, "recipe", None)
    return recipe_groups(recipe) if isinstance(recipe, Recipe) else None


def fake_groups(meta: Mapping[str, Any]) -> list[str]:
    """The groups of one fake from its item's meta (one per kind)."""
    return [group_name(kind, meta[key]) for key, kind in KINDS]


def batch_meta(meta: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A DataLoader batch's collated meta (lists of strings, tensors of numbers) back to one dict per
    item, keeping the keys of KINDS."""
    columns = {key: meta[key].tolist() if hasattr(meta[key], "tolist") else list(meta[key]) for key, _ in KINDS}
    return [dict(zip(columns, values, strict=False)) for values in zip(*columns.values(), strict=False)]


def breakdown(real_scores: Sequence[float], fake_scores: Sequence[float], metas: Sequence[Mapping[str, Any]],
              groups: Sequence[str] | None = None) -> dict[str, tuple[float, int]]:
    """{group: (AUC of its fakes against all the reals, number of its fakes)} for `groups` (default: the
    groups the fakes fall in); AUC NaN where a group has no fakes or there are no reals."""
    if len(fake_scores) != len(metas):
        raise ValueError(f"{len(fake_scores)} fake scores but {len(metas)} meta records")
    reals = np.asarray(real_scores, np.float64)
    fakes = np.asarray(fake_scores, np.float64)
    membership = [fake_groups(m) for m in metas]
    names = list(groups) if groups is not None else ordered_groups(g for gs in membership for g in gs)
    out = {}
    for name in names:
        chosen = fakes[np.array([name in gs for gs in membership], bool)]
        auc = math.nan
        if len(chosen) and len(reals):
            scores = np.concatenate([reals, chosen])
            auc = float(roc_auc_score(np.r_[np.zeros(len(reals)), np.ones(len(chosen))], scores))
        out[name] = (auc, len(chosen))
    return out


def breakdown_text(aucs: Mapping[str, float], title: str) -> str:
    """A few aligned lines, one per kind: `mask    hull81 0.971  rect4 0.912 ...` (`-` for NaN)."""
    lines = [title]
    for _, kind in KINDS:
        cells = [f"{name.split(':', 1)[1]} {'-' if math.isnan(v) else f'{v:.3f}'}"
                 for name, v in aucs.items() if name.split(":", 1)[0] == kind]
        if cells:
            lines.append(f"  {kind:<7} " + "  ".join(cells))
    return "\n".join(lines)


def last_breakdown(run: Path) -> str | None:
    """The last row of RUN/val_breakdown.csv as `breakdown_text`, or None without one."""
    path = Path(run) / BREAKDOWN_NAME
    if not path.is_file():
        return None
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        return None
    last = rows[-1]
    aucs = {k: float(v) if v else math.nan for k, v in last.items() if ":" in k}
    return breakdown_text(aucs, f"val AUC per pseudo-fake group (epoch {last['epoch']}, step {last['step']}; "
                                f"each group's fakes vs all val reals):")
