"""The model card in every checkpoint: what a tiny run's best.pt says of itself, the threshold chosen on
its val split, and the card of a checkpoint written before cards."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score, roc_curve

from fiagen.core.files import sha256_file
from fiagen.core.version import __version__
from fiagen.generate.dataset import FIAUSADataset
from fiagen.train.card import card_line, card_threshold, choose_threshold, make_card
from fiagen.train.checkpoint import load_detector, payload_digest, read_checkpoint
from fiagen.train.config import TrainConfig
from fiagen.train.context import Context
from fiagen.train.loop import run_training


@pytest.fixture(scope="module")
def tiny_run(fia_shards: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three epochs of 2 steps on the synthetic shards (test_efficientnet, 64 px, BCE only)."""
    run = tmp_path_factory.mktemp("card") / "tiny"
    run_training(TrainConfig(shards=str(fia_shards), run=str(run), backbone="test_efficientnet", size=64, epochs=3,
                             batch_size=4, lr=0.05, loader_workers=0, lambdas=(1.0, 0.0, 0.0), pretrained="none",
                             quiet=True), Context())
    return run


def _val_scores(ckpt: Path, shards: Path) -> tuple[np.ndarray, np.ndarray]:
    """P(fake) of the checkpoint's detector on the val reals and their pseudo-fakes, and the labels."""
    det, _ = load_detector(ckpt)
    val = FIAUSADataset(shards, split="val", size=64, train=False)
    items = [val[i] for i in range(len(val))]
    x = torch.stack([it["real"] for it in items] + [it["fake"] for it in items])
    with torch.no_grad():
        p = torch.sigmoid(det(x).double()).numpy()
    return p, np.repeat([0, 1], len(items))


def test_best_checkpoint_card_names_its_data_recipe_and_val_threshold(tiny_run: Path, fia_shards: Path) -> None:
    with (tiny_run / "metrics.csv").open(newline="") as fh:
        epochs = [r for r in csv.DictReader(fh) if r["val_auc"]]
    best = max(epochs, key=lambda r: float(r["val_auc"]))  # the first of equal AUCs, as the loop keeps
    _, info = load_detector(tiny_run / "best.pt")
    card = info["card"]
    assert card["backbone"] == "test_efficientnet" and card["size"] == card["input"]["size"] == 64
    assert card["weights"] == "none" and card["input"]["channel_order"] == "RGB"
    assert card["input"]["mean"] == pytest.approx([0.485, 0.456, 0.406])
    assert card["val_auc"] == pytest.approx(float(best["val_auc"]), abs=1e-12)
    assert card["epoch"] == int(best["epoch"]) and card["fiagen_version"] == __version__
    data = card["train_data"]
    assert data["shards"] == str(fia_shards.resolve())
    assert data["manifest_sha256"] == sha256_file(fia_shards / "manifest.parquet")
    assert data["counts"] == {"train": {"frames": 10, "videos": 2}, "val": {"frames": 3, "videos": 1}}
    assert card["reconstructors"] == {"ae": ["test-ae"], "sr": ["test-sr"]}
    assert card["recipe"]["ablation"] == "full" and card["recipe"]["epochs"] == 3
    assert card["recipe"]["generate"] == TrainConfig().generate

    rule = card["threshold_rule"]
    assert rule["split"] == "val" and rule["epoch"] == card["epoch"] and rule["reals"] == rule["fakes"] == 3
    assert card["threshold_source"].startswith(f"val split, epoch {card['epoch']}: max balanced accuracy over 3 real")
    p, y = _val_scores(tiny_run / "best.pt", fia_shards)  # the best epoch's val scores, re-computed
    thr = card["threshold"]
    assert 0.0 <= thr <= 1.0
    at_thr = balanced_accuracy_score(y, p >= thr)
    _, _, cuts = roc_curve(y, p, drop_intermediate=False)
    assert at_thr == pytest.approx(rule["balanced_accuracy"])
    assert at_thr == pytest.approx(max(balanced_accuracy_score(y, p >= c) for c in cuts))
    assert thr == pytest.approx((p[p > thr].min() + p[p < thr].max()) / 2, abs=1e-6)  # halfway between two scores
    assert "test_efficientnet @ 64 px" in card_line(card) and f"threshold {thr:.4f}" in card_line(card)


def test_last_checkpoint_carries_the_last_validations_threshold(tiny_run: Path) -> None:
    data = read_checkpoint(tiny_run / "last.pt")
    card = data["card"]
    assert card["epoch"] == 3 and card["threshold_rule"]["epoch"] == 3 and 0.0 <= card["threshold"] <= 1.0
    # a resumed run starts from the saved threshold record: the card it writes before validating holds it
    again = make_card(data["info"], data["config"], [0.5] * 3, [0.25] * 3, None, card_threshold(card))
    keys = ("threshold", "threshold_source", "threshold_rule")
    assert {k: again[k] for k in keys} == {k: card[k] for k in keys}


def test_a_checkpoint_written_before_cards_gets_one_with_unknowns(tiny_run: Path, tmp_path: Path) -> None:
    data = read_checkpoint(tiny_run / "best.pt")
    del data["card"]
    data["config"] = None
    data["digest"] = payload_digest(data)
    torch.save(data, tmp_path / "old.pt")
    _, info = load_detector(tmp_path / "old.pt")
    card = info["card"]
    assert card["backbone"] == "test_efficientnet" and card["size"] == 64 and card["val_auc"] == data["info"]["val_auc"]
    assert card["train_data"]["description"] == data["info"]["train_data"]
    assert card["train_data"]["manifest_sha256"] == "unknown" and card["reconstructors"] == "unknown"
    assert card["recipe"]["ablation"] == "unknown" and card["threshold"] is None
    assert card["threshold_source"].startswith("none")
    assert "val AUC" in card_line(card) and "threshold none" in card_line(card)


def test_threshold_maximises_balanced_accuracy_halfway_between_scores() -> None:
    p = np.array([0.1, 0.2, 0.35, 0.3, 0.6, 0.9])
    y = np.array([0, 0, 0, 1, 1, 1])
    got = choose_threshold(p, y, epoch=4)
    # cuts >= 0.6 and >= 0.3 both give 5/6; the higher one is kept, halfway down to the next score (0.35)
    assert got["value"] == pytest.approx(0.475) and got["balanced_accuracy"] == pytest.approx(5 / 6)
    assert (got["reals"], got["fakes"], got["epoch"]) == (3, 3, 4)
    assert choose_threshold(p[:3], y[:3], epoch=1) is None
