"""Learning on real shards. The run starts from the ImageNet tf_efficientnet_lite0 of its PyPI wheel (offline)
at 96 px, batch 8, SAM at lr 0.02, on seven identities' pseudo-fakes (builtin AE/SR fit for 150 steps), and is
validated on the pseudo-fakes of an eighth, held-out identity: the set-up of benchmarks/bench_learning.py,
whose figures (docs/results.md, "Learning figures") are where its thresholds come from. The full FIA-USA
recipe (AFFS, RCR, SBI's spatial step) learns, but does not reach 0.9 on a held-out identity at any size or
length this suite can afford (best 0.70-0.85 at 96 px, 4 epochs, over seeds and memory formats); its
breakdown says why: fakes whose inside is the original frame stay at 0.64-0.78. The run here is 4 epochs at
96 px, trained once (the `full_run` fixture) and read by the tests below, which check what held in all six
measured runs: the recipe learns (best >= 0.67 and >= 0.05 above its first epoch), whole-face masks are
caught (hull81 and rect4 >= 0.78 together) and reconstructed insides more than original ones.
The sbi ablation (hull masks only, BCE alone) learns faster: best >= 0.80 after two epochs on the same shards.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml

from fiagen.manifests.manifest import read_manifest
from fiagen.train.checkpoint import read_checkpoint
from fiagen.train.config import TrainConfig
from fiagen.train.loop import Context, TrainResult, run_training


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def train_frames(shards: Path) -> int:
    manifest = read_manifest(shards)
    return int((manifest["split"] == "train").sum())


HELD_OUT = "liveportrait_d19"
FIT_STEPS = 150
LEARN_SIZE = 96
FULL_EPOCHS = 4
FULL_LR = 0.02
SBI_EPOCHS = 2


@pytest.fixture(scope="module")
def shards_by_identity(test_data: Path, ray_local, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """64 frames of each shared real video: liveportrait_d19 alone in val, the other seven identities in train;
    builtin AE and SR fit briefly on them (FIT_STEPS), so the full recipe has its reconstructions."""
    from fiagen.precompute.entry import PrecomputeConfig, precompute

    src = tmp_path_factory.mktemp("identities")
    for clip in [test_data / "ffpp_train_real" / "519.mp4", *sorted((test_data / "real_videos").glob("*.mp4"))]:
        split = src / ("val" if clip.stem == HELD_OUT else "train")
        split.mkdir(exist_ok=True)
        (split / clip.name).symlink_to(clip.resolve())
    out = tmp_path_factory.mktemp("identities_out")
    precompute(PrecomputeConfig(src=f"folder:{src}", out=str(out), frames=64, fit_steps=FIT_STEPS, quiet=True))
    return out


def learning_run(shards: Path, run: Path, **settings) -> tuple[TrainResult, list[float]]:
    """A run from the offline ImageNet lite0 (the wheel's weights) on the identity shards; (result, val AUCs)."""
    cfg = TrainConfig(shards=str(shards), run=str(run), backbone="tf_efficientnet_lite0", pretrained="auto",
                      size=LEARN_SIZE, batch_size=8, loader_workers=0, affs_batches=4, quiet=True, **settings)
    result = run_training(cfg, Context())
    return result, [float(r["val_auc"]) for r in rows(run / "metrics.csv") if r["val_auc"]]


@pytest.fixture(scope="module")
def full_run(shards_by_identity: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainResult, list[float]]:
    """The full recipe's run (FULL_EPOCHS epochs at LEARN_SIZE px), trained once for the learning tests below."""
    run = tmp_path_factory.mktemp("learning") / "full"
    return learning_run(shards_by_identity, run, ablation="full", epochs=FULL_EPOCHS, lr=FULL_LR)


@pytest.mark.slow
@pytest.mark.realmedia
def test_the_identity_shards_hold_one_val_identity_and_builtin_reconstructions(shards_by_identity: Path) -> None:
    manifest = read_manifest(shards_by_identity)
    assert set(manifest.loc[manifest["split"] == "val", "video_id"]) == {f"val/{HELD_OUT}"}
    assert manifest.loc[manifest["split"] == "train", "video_id"].nunique() == 7
    assert manifest["ae_id"].str.startswith("builtin-ae:").all()
    assert manifest["sr_id"].str.startswith("builtin-sr:").all()


@pytest.mark.slow
@pytest.mark.realmedia
def test_the_full_recipe_from_imagenet_lite0_learns_the_fakes_of_a_held_out_identity(shards_by_identity: Path,
                                                                                      full_run) -> None:
    result, aucs = full_run
    assert result.steps == FULL_EPOCHS * (train_frames(shards_by_identity) // 8)
    assert result.best_auc == max(aucs) >= max(0.67, aucs[0] + 0.05), aucs  # it learns; 0.9 needs more (docstring)


@pytest.mark.slow
@pytest.mark.realmedia
def test_the_full_recipe_run_trained_with_affs_rcr_and_the_wheel_weights(full_run) -> None:
    result, _ = full_run
    config = yaml.safe_load((result.run / "config.yaml").read_text())
    assert config["ablation"] == "full" and config["affine"] and config["lambdas"] == [1.0, 2.5, 0.25]
    assert config["resolved"]["init"]["source"] == "wheel"
    best = read_checkpoint(result.best)
    assert best["affs"]["kept"] and best["fpn"]["channels"] == 128  # AFFS and RCR were on


@pytest.mark.slow
@pytest.mark.realmedia
def test_the_full_recipe_catches_whole_face_blends_and_decoder_traces(full_run) -> None:
    result, _ = full_run
    breakdown = rows(result.run / "val_breakdown.csv")
    assert len(breakdown) == FULL_EPOCHS and set(breakdown[0]) >= {"mask:hull81", "mask:eyes", "recon:ae", "recon:sr"}
    last = {k: float(v) for k, v in breakdown[-1].items() if k not in ("epoch", "step") and v != "nan"}
    assert (last["mask:hull81"] + last["mask:rect4"]) / 2 >= 0.78, last  # whole-face blends are caught
    assert (last["recon:ae"] + last["recon:sr"]) / 2 >= last["recon:original"] + 0.05, last  # and decoder traces


@pytest.mark.slow
@pytest.mark.realmedia
def test_the_sbi_ablation_from_imagenet_lite0_also_learns(shards_by_identity: Path, tmp_path: Path) -> None:
    result, aucs = learning_run(shards_by_identity, tmp_path / "sbi", ablation="sbi", epochs=SBI_EPOCHS, lr=FULL_LR,
                                lambdas=(1.0, 0.0, 0.0))
    assert result.best_auc == max(aucs) >= 0.80, aucs
    columns = set(rows(tmp_path / "sbi" / "val_breakdown.csv")[0])
    assert {"mask:hull81", "mask:hull68"} <= columns and "mask:eyes" not in columns
