"""The model card every checkpoint carries: what the detector is, what it was trained on and how, how well
it did on its validation split, and the decision threshold chosen there.

Card (a plain dict, `card_version` 1):
    backbone, weights (the init), size, input {size, mean, std, channel_order, range}
    train_data {description, shards, source, manifest_sha256, counts {split: {frames, videos}}}
    recipe {ablation, affine, generate, seed, epochs, lambdas}
    reconstructors {ae: [ids], sr: [ids]}  (as the manifest names them)
    epoch, val_auc, fiagen_version
    threshold (P(fake) at or above it: fake; None when no validation chose one), threshold_source (one line:
    what it was chosen on), threshold_rule {rule, split, epoch, reals, fakes, balanced_accuracy}
A checkpoint written before cards has one built from its info and config: what they lack is "unknown".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from fiagen.core.files import sha256_file
from fiagen.manifests.manifest import MANIFEST_NAME, read_manifest

CARD_VERSION = 1
UNKNOWN = "unknown"
RULE = "max balanced accuracy"
RECIPE_KEYS = ("ablation", "affine", "generate", "seed", "epochs", "lambdas")


def data_facts(shards: str | Path | None) -> dict[str, Any]:
    """What the card says of a precompute output folder: its path, source, the manifest's sha256, frames
    and videos per split, and the AE/SR reconstructor ids of its shards. {} for data that is not one."""
    if shards is None or not (Path(shards) / MANIFEST_NAME).is_file():
        return {}
    folder = Path(shards).resolve()
    try:
        manifest = read_manifest(folder)
    except (OSError, ValueError):  # not a readable manifest (e.g. datasets given in Python): the card says unknown
        return {"shards": str(folder)}
    try:
        source = json.loads((folder / "run.json").read_text())["config"]["src"]
    except (OSError, KeyError, ValueError):
        source = UNKNOWN
    counts = {str(split): {"frames": int(len(rows)), "videos": int(rows["video_id"].nunique())}
              for split, rows in manifest.groupby("split")}
    recon = {kind: sorted({str(v) for v in manifest[f"{kind}_id"].dropna() if str(v)}) for kind in ("ae", "sr")}
    return {"shards": str(folder), "source": source, "manifest_sha256": sha256_file(folder / MANIFEST_NAME),
            "counts": counts, "reconstructors": recon}


def choose_threshold(p_fake: np.ndarray, labels: np.ndarray, epoch: int) -> dict[str, Any] | None:
    """The P(fake) threshold of the highest balanced accuracy (mean of the real and fake recall) on
    validation scores, halfway between the cut's score and the next lower one (so float rounding of a
    re-run does not move an item across it); None without both classes."""
    from sklearn.metrics import roc_curve

    p, y = np.asarray(p_fake, np.float64), np.asarray(labels, np.int64)
    reals, fakes = int((y == 0).sum()), int((y == 1).sum())
    if not reals or not fakes:
        return None
    fpr, tpr, cuts = roc_curve(y, p, drop_intermediate=False)  # cuts decrease; cuts[0] is +inf (nothing fake)
    balanced = (tpr + 1.0 - fpr) / 2.0
    i = int(np.argmax(balanced.round(12)))  # equal accuracies (up to float rounding): the highest cut
    upper = min(float(cuts[i]), 1.0)
    value = (upper + float(cuts[i + 1])) / 2.0 if i + 1 < len(cuts) else upper
    source = (f"val split, epoch {epoch}: {RULE} over {reals} real and {fakes} pseudo-fake crops "
              f"({balanced[i]:.3f}); pseudo-fakes, not real deepfakes")
    return {"value": value, "source": source, "rule": RULE, "split": "val", "epoch": int(epoch), "reals": reals,
            "fakes": fakes, "balanced_accuracy": float(balanced[i])}


def card_threshold(card: dict[str, Any]) -> dict[str, Any] | None:
    """The `choose_threshold` record a card was made with (a resumed run keeps it until it validates)."""
    if card.get("threshold") is None:
        return None
    return {"value": card["threshold"], "source": card["threshold_source"], **(card.get("threshold_rule") or {})}


def make_card(info: dict[str, Any], config: dict[str, Any] | None, mean: list[float], std: list[float],
              facts: dict[str, Any] | None = None, threshold: dict[str, Any] | None = None) -> dict[str, Any]:
    """The card of a checkpoint from its info, its config (None: unknown), the detector's normalisation,
    the training data's `data_facts` and the validation's `choose_threshold`."""
    cfg, facts = config or {}, facts or {}
    size = int(info["size"])
    rule = dict(threshold) if threshold else None
    value = rule.pop("value") if rule else None
    source = rule.pop("source") if rule else "none: no validation chose one (pass --threshold)"
    return {
        "card_version": CARD_VERSION,
        "backbone": info["backbone"], "weights": info.get("weights", UNKNOWN), "size": size,
        "input": {"size": size, "mean": [float(v) for v in mean], "std": [float(v) for v in std],
                  "channel_order": "RGB", "range": "[0, 1] (uint8 / 255), normalised inside the model"},
        "train_data": {"description": info.get("train_data", UNKNOWN),
                       "shards": facts.get("shards", cfg.get("shards", UNKNOWN)),
                       **{k: facts.get(k, UNKNOWN) for k in ("source", "manifest_sha256", "counts")}},
        "recipe": {k: cfg.get(k, UNKNOWN) for k in RECIPE_KEYS},
        "reconstructors": facts.get("reconstructors", UNKNOWN),
        "epoch": info.get("epoch", UNKNOWN), "val_auc": info.get("val_auc"),
        "threshold": value, "threshold_source": source, "threshold_rule": rule,
        "fiagen_version": info.get("fiagen_version", UNKNOWN),
    }


def card_of(data: dict[str, Any]) -> dict[str, Any]:
    """The card of a checkpoint dict: the one saved in it, or one built from its info and config."""
    if isinstance(data.get("card"), dict):
        return data["card"]
    state = data["detector"]
    return make_card(data["info"], data.get("config"), state["mean"].reshape(-1).tolist(),
                     state["std"].reshape(-1).tolist())


def card_line(card: dict[str, Any]) -> str:
    """The detector in one line: backbone, size, training data and recipe, val AUC, threshold, version."""
    data, recipe = card.get("train_data") or {}, card.get("recipe") or {}
    auc = card.get("val_auc")
    thr = card.get("threshold")
    return (f"{card.get('backbone', UNKNOWN)} @ {card.get('size', UNKNOWN)} px ({card.get('weights', UNKNOWN)} init), "
            f"trained on {data.get('source', UNKNOWN)} (FIA-USA {recipe.get('ablation', UNKNOWN)}), epoch "
            f"{card.get('epoch', UNKNOWN)}, val AUC {UNKNOWN if auc is None else f'{auc:.4f}'}, threshold "
            f"{'none' if thr is None else f'{thr:.4f}'}, fiagen {card.get('fiagen_version', UNKNOWN)}")
