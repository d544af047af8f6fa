"""Training runs: learning on synthetic pairs, val selection, the CLI on real shards, kill-and-resume, Ray
Train, the non-finite guard, logs of a run started again (learning on real shards: tests/test_learning.py).

The synthetic run checks val selection, the schedule and AFFS on pairs whose fake carries a
colour-shifted soft region, in seconds.
"""

from __future__ import annotations

import csv
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from pytorch_optimizer import SAM
from sklearn.metrics import roc_auc_score
from torch.utils.data import Dataset

from fiagen.cli.main import cli
from fiagen.manifests.manifest import read_manifest
from fiagen.train.checkpoint import load_detector, read_checkpoint
from fiagen.train.config import TrainConfig
from fiagen.train.entry import train
from fiagen.train.loop import Context, TrainingError, run_training, sam_step
from fiagen.train.model import TrainNet, build_detector


class ColourPatchPairs(Dataset):
    """(real, fake, mask) where the fake's soft elliptic region is colour-shifted; a pure function of
    (seed, epoch, index), like the FIA-USA dataset."""

    def __init__(self, n: int, size: int, seed: int, nan_fakes: bool = False):
        self.n, self.size, self.seed, self.epoch, self.nan_fakes = n, size, seed, 0, nan_fakes

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch * 10_007 + index)
        s = self.size
        real = F.interpolate(torch.rand(1, 3, 6, 6, generator=g), size=(s, s), mode="bilinear", align_corners=False)[0]
        real = (real * 0.6 + 0.2 + 0.02 * torch.randn(3, s, s, generator=g)).clamp(0, 1)
        centre_radii = torch.rand(4, generator=g) * torch.tensor([0.3, 0.3, 0.12, 0.12])
        cy, cx, ry, rx = (centre_radii + torch.tensor([0.35, 0.35, 0.15, 0.15])).tolist()
        yy, xx = torch.meshgrid(torch.linspace(0, 1, s), torch.linspace(0, 1, s), indexing="ij")
        hard = (((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1).float()[None, None]
        mask = F.avg_pool2d(hard, 5, stride=1, padding=2, count_include_pad=False)[0]
        sign = torch.where(torch.rand(3, 1, 1, generator=g) < 0.5, -1.0, 1.0)
        shift = (torch.rand(3, 1, 1, generator=g) * 0.08 + 0.12) * sign  # per channel, 0.12-0.2
        fake = (real + mask * shift).clamp(0, 1)
        if self.nan_fakes:
            fake = torch.full_like(fake, float("nan"))
        return {"real": real, "fake": fake, "mask": mask}


def train_frames(shards: Path) -> int:
    manifest = read_manifest(shards)
    return int((manifest["split"] == "train").sum())


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def val_auc(ckpt: Path, ds: Dataset) -> float:
    det, _ = load_detector(ckpt)
    items = [ds[i] for i in range(len(ds))]
    with torch.no_grad():
        scores = det(torch.cat([torch.stack([it["real"] for it in items]), torch.stack([it["fake"] for it in items])]))
    return roc_auc_score([0] * len(items) + [1] * len(items), scores.numpy())


@pytest.mark.slow
def test_training_learns_held_out_pairs_and_keeps_the_best_val_checkpoint(tmp_path, one_torch_thread):
    train_ds, val_ds = ColourPatchPairs(96, 64, seed=1), ColourPatchPairs(32, 64, seed=2)
    cfg = TrainConfig(shards="synthetic", run=str(tmp_path / "run"), backbone="test_efficientnet", pretrained="none",
                      size=64, batch_size=8, epochs=8, lr=0.05, loader_workers=0, affs_batches=4, quiet=True)
    result = run_training(cfg, Context(), data=(train_ds, val_ds))
    epochs = rows(tmp_path / "run" / "metrics.csv")
    steps = rows(tmp_path / "run" / "steps.csv")
    assert result.steps == 8 * 12 and len(steps) == 96 and [int(r["epoch"]) for r in epochs] == list(range(1, 9))
    aucs = [float(r["val_auc"]) for r in epochs]
    assert result.best_auc == max(aucs) >= 0.9, aucs
    assert float(epochs[-1]["train_bce"]) < 0.5 * math.log(2)  # well under chance (the head starts at 0: log 2)
    best = read_checkpoint(result.best)
    assert best["training"] is None and best["info"]["val_auc"] == max(aucs)
    assert best["info"]["epoch"] == aucs.index(max(aucs)) + 1
    assert val_auc(result.best, val_ds) == pytest.approx(max(aucs), abs=1e-6)  # the recorded AUC is the model's
    affs = best["affs"]
    assert affs["kept"] == [round(0.75 * c) for c in (24, 32, 48, 64)] and affs["pairs"] == 32
    assert best["fpn"]["selection"] == affs["indices"] and best["fpn"]["channels"] == 128
    lrs = [float(r["lr"]) for r in steps]
    assert lrs[:72] == [0.05] * 72 and lrs[72] == pytest.approx(0.05) and lrs[-1] == pytest.approx(0.05 / 24)


# `fiagen train` on the real shards: the CLI test reads the run, the kill-and-resume test compares against it.
RESUMABLE = dict(backbone="test_efficientnet", pretrained="none", size=64, batch_size=8, epochs=3, loader_workers=1,
                 affs_batches=2, save_every=2)


def train_args(shards: Path, run: Path) -> list[str]:
    return ["train", "--shards", str(shards), "--run", str(run)] + [
        f"--{k.replace('_', '-')}={v}" for k, v in RESUMABLE.items()] + ["--quiet"]


@pytest.fixture(scope="module")
def cli_run(shards_small: Path, tmp_path_factory: pytest.TempPathFactory,
            one_torch_thread_block) -> tuple[Path, list[str], str]:
    """(run folder, the command's arguments, its output) of one uninterrupted `fiagen train` (one torch thread)."""
    run = tmp_path_factory.mktemp("cli") / "run"
    args = train_args(shards_small, run)
    with one_torch_thread_block():
        res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    return run, args, res.output


@pytest.mark.slow
@pytest.mark.realmedia
def test_cli_trains_on_real_shards_and_refuses_to_overwrite(shards_small: Path, cli_run):
    run, args, output = cli_run
    assert "best val AUC" in output and "warning: --pretrained none" in output
    det, info = load_detector(run / "best.pt")
    assert info["backbone"] == "test_efficientnet" and info["size"] == 64
    assert "ff++_c23 train split" in info["train_data"]
    assert 0.0 <= info["val_auc"] <= 1.0 and info["epoch"] in (1, 2, 3)
    last = read_checkpoint(run / "last.pt")
    per_epoch = train_frames(shards_small) // 8
    assert last["training"]["step"] == 3 * per_epoch and last["info"]["epoch"] == 3
    assert last["config"]["shards"] == str(shards_small) and last["affs"]["pairs"] == 16
    assert len(rows(run / "steps.csv")) == 3 * per_epoch and (run / "tb").is_dir() and (run / "config.yaml").is_file()
    again = CliRunner().invoke(cli, args)
    assert again.exit_code != 0 and "pass --resume" in str(again.exception or again.output)


def _losses(run: Path) -> dict[int, tuple[float, float, float]]:
    return {int(r["step"]): (float(r["loss"]), float(r["pcr"]), float(r["icr"])) for r in rows(run / "steps.csv")}


@pytest.mark.slow
@pytest.mark.realmedia
def test_kill_and_resume_repeats_the_uninterrupted_run(shards_small: Path, cli_run, tmp_path):
    straight = cli_run[0]
    total = 3 * (train_frames(shards_small) // 8)
    assert read_checkpoint(straight / "last.pt")["training"]["step"] == total >= 6

    run = tmp_path / "killed"
    cmd = [sys.executable, "-m", "fiagen", *train_args(shards_small, run)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    killed_at = None
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None:
        if (run / "last.pt").exists():
            step = read_checkpoint(run / "last.pt")["training"]["step"]
            if step >= 2:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                killed_at = step
                break
        time.sleep(0.05)
    assert killed_at is not None and killed_at < total, proc.stderr.read() if proc.stderr else ""
    saved = read_checkpoint(run / "last.pt")["training"]["step"]
    resumed = subprocess.run(cmd + ["--resume"], env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    got, want = _losses(run), _losses(straight)
    assert sorted(got) == list(range(1, total + 1))
    for step in range(saved + 1, total + 1):
        assert got[step] == pytest.approx(want[step], rel=1e-5, abs=1e-6), step
    a = read_checkpoint(run / "last.pt")["detector"]
    b = read_checkpoint(straight / "last.pt")["detector"]
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-5) for k in a)
    other = CliRunner().invoke(cli, ["train", "--shards", str(shards_small), "--run", str(run), "--resume",
                                     "--batch-size", "4"])
    assert other.exit_code != 0 and "batch_size 8 -> 4" in str(other.exception)


@pytest.mark.slow
@pytest.mark.realmedia
def test_ray_train_with_two_cpu_workers(shards_small: Path, ray_local, tmp_path):
    cfg = TrainConfig(shards=str(shards_small), run=str(tmp_path / "ray"), backbone="test_efficientnet",
                      pretrained="none", size=64,
                      batch_size=4, epochs=1, loader_workers=0, affs_batches=2, quiet=True, train_workers=2)
    result = train(cfg)
    per_worker = -(-train_frames(shards_small) // 2)  # DistributedSampler: each worker takes half, padded
    assert result.steps == per_worker // 4 >= 2
    epochs = rows(tmp_path / "ray" / "metrics.csv")
    assert len(epochs) == 1 and 0.0 <= float(epochs[0]["val_auc"]) <= 1.0
    breakdown = rows(tmp_path / "ray" / "val_breakdown.csv")  # rank 0 saw every worker's fakes
    assert len(breakdown) == 1 and all(0.0 <= float(v) <= 1.0 for k, v in breakdown[0].items()
                                       if k.startswith("mask:") and v != "nan")
    assert len(rows(tmp_path / "ray" / "steps.csv")) == result.steps
    assert read_checkpoint(result.last)["affs"]["pairs"] == 2 * 4  # 2 batches in all, one per worker, summed
    load_detector(result.best)


def test_a_non_finite_step_is_skipped_without_touching_the_weights():
    torch.manual_seed(0)
    net = TrainNet(build_detector("test_efficientnet", 32), None, 16)
    opt = SAM(net.parameters(), torch.optim.SGD, rho=0.05, lr=0.1, momentum=0.9)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    real = torch.rand(2, 3, 32, 32)
    batch = {"real": real, "fake": torch.full_like(real, float("nan")), "mask": torch.ones(2, 1, 32, 32)}
    assert sam_step(net, opt, batch, TrainConfig(), Context()) is None
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # BN statistics included
    assert not opt.state or all("momentum_buffer" not in s for s in opt.state.values())


def test_training_stops_after_too_many_non_finite_steps(tmp_path):
    data = (ColourPatchPairs(16, 32, seed=1, nan_fakes=True), ColourPatchPairs(4, 32, seed=2))
    cfg = TrainConfig(shards="synthetic", run=str(tmp_path / "run"), backbone="test_efficientnet", pretrained="none",
                      size=32,
                      batch_size=2, epochs=2, loader_workers=0, lambdas=(1.0, 0.0, 0.0), max_nonfinite=3, quiet=True)
    with pytest.raises(TrainingError, match="3 steps had a non-finite loss"):
        run_training(cfg, Context(), data=data)
    steps = rows(tmp_path / "run" / "steps.csv")
    assert [r["skipped"] for r in steps] == ["1", "1", "1"] and steps[-1]["loss"] == "nan"


def test_a_run_started_again_after_dying_before_its_first_checkpoint_logs_each_step_once(tmp_path):
    common = dict(shards="synthetic", run=str(tmp_path / "run"), backbone="test_efficientnet", pretrained="none",
                  size=32, batch_size=2, epochs=1, loader_workers=0, lambdas=(1.0, 0.0, 0.0), quiet=True)
    with pytest.raises(TrainingError, match="3 steps had a non-finite loss"):  # dies at step 3, before last.pt
        run_training(TrainConfig(max_nonfinite=3, **common), Context(),
                     data=(ColourPatchPairs(16, 32, seed=1, nan_fakes=True), ColourPatchPairs(4, 32, seed=2)))
    assert not (tmp_path / "run" / "last.pt").exists() and len(rows(tmp_path / "run" / "steps.csv")) == 3
    result = run_training(TrainConfig(**common), Context(), data=(ColourPatchPairs(16, 32, seed=1),
                                                                  ColourPatchPairs(4, 32, seed=2)))
    steps = rows(tmp_path / "run" / "steps.csv")
    assert result.steps == 8 and [int(r["step"]) for r in steps] == list(range(1, 9))
    assert all(r["skipped"] == "0" for r in steps)  # none of the dead start's rows is left
    assert [int(r["epoch"]) for r in rows(tmp_path / "run" / "metrics.csv")] == [1]
