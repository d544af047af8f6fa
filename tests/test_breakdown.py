"""Which pseudo-fakes a detector catches: the per-group AUC breakdown (values on hand-made scores, across
two gloo workers), RUN/val_breakdown.csv of a tiny run, and the `pseudo:` evaluation suite end to end."""

from __future__ import annotations

import csv
import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.distributed as dist
from sklearn.metrics import roc_auc_score
from torch.utils.data import Dataset

from fiagen.cli.main import main
from fiagen.evaluate.pseudo import method_meta
from fiagen.evaluate.runner import EvalConfig, bench, evaluate, render_bench
from fiagen.generate.config import GenerateConfig, resolve_recipe
from fiagen.generate.dataset import FIAUSADataset
from fiagen.manifests.pseudo import parse_pseudo
from fiagen.train.breakdown import breakdown, fake_groups, last_breakdown, recipe_groups
from fiagen.train.checkpoint import load_detector
from fiagen.train.config import TrainConfig
from fiagen.train.context import Context
from fiagen.train.loop import run_training
from fiagen.train.validate import validation


def _meta(mask: str, recon: str, ratio: float = 1.0, side: str = "target") -> dict:
    return {"mask_type": mask, "recon": recon, "blend_ratio": ratio, "t_side": side}


def test_breakdown_values_on_hand_made_scores() -> None:
    """A detector perfect on hull81 fakes (all above every real) and blind on eyes fakes (the reals' own
    scores): 1.0 and 0.5 in those columns, their mix in the groups they share, NaN where no fakes."""
    reals = np.random.default_rng(0).uniform(0, 0.9, 40)
    hull = np.linspace(0.91, 1.0, 10)
    eyes = reals[:10]
    metas = [_meta("hull81", "ae", 1.0, "source")] * 10 + [_meta("eyes", "sr", 1.0, "target")] * 10
    groups = recipe_groups(resolve_recipe("full", GenerateConfig(), False, 64))
    got = breakdown(reals, np.r_[hull, eyes], metas, groups)
    assert list(got)[:5] == ["mask:hull81", "mask:rect4", "mask:eyes", "mask:mouth", "mask:eyes_mouth"]
    assert list(got)[5:8] == ["recon:ae", "recon:sr", "recon:original"]
    assert got["mask:hull81"] == (1.0, 10) and got["recon:ae"] == (1.0, 10) and got["t_side:source"] == (1.0, 10)
    want_eyes = roc_auc_score([0] * 40 + [1] * 10, np.r_[reals, eyes])
    assert got["mask:eyes"] == (pytest.approx(want_eyes), 10) and abs(want_eyes - 0.5) < 0.15
    assert got["recon:sr"][0] == pytest.approx(want_eyes)
    assert got["ratio:1"] == (pytest.approx((1.0 + want_eyes) / 2), 20)  # both kinds of fake
    for empty in ("mask:rect4", "mask:mouth", "recon:original", "ratio:0.25"):
        assert math.isnan(got[empty][0]) and got[empty][1] == 0
    assert set(groups) == set(got) and "mask:hull68" not in got and "t_side:none" not in got
    sbi = recipe_groups(resolve_recipe("sbi", GenerateConfig(), False, 64))
    assert [g for g in sbi if g.startswith("mask:")] == ["mask:hull81", "mask:hull68"]
    identical = breakdown(reals, reals[:10], [_meta("eyes", "sr")] * 10)  # groups default to those present
    assert list(identical) == ["mask:eyes", "recon:sr", "ratio:1", "t_side:target"]
    assert all(v == (pytest.approx(want_eyes), 10) for v in identical.values())


class _Scorer(torch.nn.Module):
    """A stub detector: the logit is the mean pixel value."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(1, 2, 3))


def _batches(rank: int, world: int) -> list[dict]:
    """Worker `rank`'s share of 12 val pairs with meta, collated in batches of 2 (as default_collate does)."""
    kinds = [("hull81", "ae"), ("eyes", "sr"), ("mouth", "original")]
    out = []
    pairs = list(range(rank, 12, world))
    for start in range(0, len(pairs), 2):
        idx = pairs[start:start + 2]
        out.append({"real": torch.stack([torch.full((3, 4, 4), 0.04 * i) for i in idx]),
                    "fake": torch.stack([torch.full((3, 4, 4), 0.5 if kinds[i % 3][0] == "hull81" else 0.04 * i)
                                         for i in idx]),
                    "meta": {"mask_type": [kinds[i % 3][0] for i in idx], "recon": [kinds[i % 3][1] for i in idx],
                             "blend_ratio": torch.tensor([1.0] * len(idx), dtype=torch.float64),
                             "t_side": ["target"] * len(idx), "index": torch.tensor(idx)}})
    return out


def test_validate_merges_every_workers_share(monkeypatch: pytest.MonkeyPatch) -> None:
    """With two workers each validates its share; the gathered scores and meta give the one-process breakdown."""
    one = validation(_Scorer(), _batches(0, 1), TrainConfig(), Context())
    single = one.per_group
    assert single["mask:hull81"] == 1.0 and single["mask:eyes"] == pytest.approx(0.5)  # eyes fakes score as reals
    shares: list = []

    def all_gather_object(out: list, mine: object) -> None:  # rank 1 runs first; rank 0 then gets both shares
        shares.append(mine)
        out[:] = [shares[-1], shares[0]] if len(shares) == 2 else [mine, mine]

    monkeypatch.setattr(dist, "all_gather_object", all_gather_object)
    validation(_Scorer(), _batches(1, 2), TrainConfig(), Context(rank=1, world=2))
    two = validation(_Scorer(), _batches(0, 2), TrainConfig(), Context(rank=0, world=2))
    assert len(shares[0][2]) == len(shares[1][2]) == 6  # the meta travels with the scores
    assert two.auc == pytest.approx(one.auc) and two.loss == pytest.approx(one.loss)
    assert two.per_group == pytest.approx(single)


class _NoMeta(Dataset):
    """A FIA-USA dataset whose items lack "meta" (as injected datasets may)."""

    def __init__(self, ds: FIAUSADataset) -> None:
        self.ds = ds

    def set_epoch(self, epoch: int) -> None:
        self.ds.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, index: int) -> dict:
        return {k: v for k, v in self.ds[index].items() if k != "meta"}


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _tiny(shards: Path, run: Path, **kw) -> TrainConfig:
    """Two steps per epoch on the synthetic shards (test_efficientnet, 32 px, BCE only)."""
    return TrainConfig(shards=str(shards), run=str(run), backbone="test_efficientnet", size=32, batch_size=4,
                       lr=0.05, loader_workers=0, lambdas=(1.0, 0.0, 0.0), pretrained="none", quiet=True, **kw)


@pytest.fixture(scope="module")
def tiny_run(fia_shards: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two epochs of 2 steps: 2 validations."""
    run = tmp_path_factory.mktemp("runs") / "tiny"
    run_training(_tiny(fia_shards, run, epochs=2), Context())
    return run


def test_a_tiny_run_writes_one_breakdown_row_per_validation(tiny_run: Path, fia_shards: Path) -> None:
    rows = _rows(tiny_run / "val_breakdown.csv")
    val = FIAUSADataset(fia_shards, split="val", size=32, train=False)
    groups = recipe_groups(val.recipe)
    assert list(rows[0]) == ["epoch", "step", *groups] and len(rows) == 2
    assert [(r["epoch"], r["step"]) for r in rows] == [("1", "2"), ("2", "4")]
    det, _ = load_detector(tiny_run / "last.pt")  # the model of the last validation
    items = [val[i] for i in range(len(val))]
    with torch.no_grad():
        real = det(torch.stack([it["real"] for it in items])).numpy()
        fake = det(torch.stack([it["fake"] for it in items])).numpy()
    want = breakdown(real, fake, [it["meta"] for it in items], groups)
    for name, (auc, n) in want.items():
        got = float(rows[-1][name])
        assert (math.isnan(got) and n == 0) or got == pytest.approx(auc, abs=1e-6), name
    present = {g for it in items for g in fake_groups(it["meta"])}
    assert present and all(not math.isnan(float(rows[-1][g])) for g in present)
    text = last_breakdown(tiny_run)
    assert text.startswith("val AUC per pseudo-fake group (epoch 2, step 4") and "\n  mask    hull81 " in text
    assert len(text.splitlines()) == 5


def test_resume_keeps_the_rows_up_to_the_checkpoint(tiny_run: Path, fia_shards: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    header = list(_rows(run / "val_breakdown.csv")[0])
    with (run / "val_breakdown.csv").open("a") as fh:  # a row the interrupted run wrote after last.pt
        fh.write(",".join(["3", "6"] + ["0.5"] * (len(header) - 2)) + "\n")
    run_training(_tiny(fia_shards, run, epochs=3, resume=True), Context())
    rows = _rows(run / "val_breakdown.csv")
    assert list(rows[0]) == header and [(r["epoch"], r["step"]) for r in rows] == [("1", "2"), ("2", "4"), ("3", "6")]


def test_no_meta_no_breakdown_file(fia_shards: Path, tmp_path: Path) -> None:
    data = tuple(_NoMeta(FIAUSADataset(fia_shards, split=s, size=32, train=s == "train")) for s in ("train", "val"))
    run_training(_tiny(Path("synthetic"), tmp_path / "run", epochs=1), Context(), data=data)
    assert (tmp_path / "run" / "metrics.csv").is_file() and not (tmp_path / "run" / "val_breakdown.csv").exists()
    assert last_breakdown(tmp_path / "run") is None


def test_pseudo_suite_end_to_end(fia_shards: Path, tiny_run: Path, ray_local, tmp_path: Path) -> None:
    out, ckpt = tmp_path / "eval", tiny_run / "last.pt"
    specs = (f"pseudo:{fia_shards}", f"pseudo:{fia_shards}:sbi")
    result = bench(EvalConfig(suites=specs, ckpt=str(ckpt), out=str(out), concurrency=1, quiet=True))
    full, sbi = result.suites
    assert full.folder == out / f"pseudo-{fia_shards.name}-full-val" and sbi.folder.name.endswith("-sbi-val")
    for name in ("frames.parquet", "videos.parquet", "table.csv", "table.md", "table.tex", "report.json", "roc.png"):
        assert (full.folder / name).exists(), name
    frames = pd.read_parquet(full.folder / "frames.parquet")
    assert len(frames) == 6 and sorted(frames["label"]) == [0, 0, 0, 1, 1, 1]
    assert set(frames["video"]) == {f"{k}/astro_v/{f:06d}" for k in ("real", "fake") for f in range(3)}

    # the scores are the checkpoint's P(fake) of the validation draws (seed 0, checkpoint size)
    det, _ = load_detector(ckpt)
    val = FIAUSADataset(fia_shards, split="val", size=32, seed=0, train=False)
    items = [val[i] for i in range(3)]
    with torch.no_grad():
        want = torch.sigmoid(det(torch.stack([it["real"] for it in items] + [it["fake"] for it in items]))).numpy()
    got = frames.set_index("video")["score"]
    for i, it in enumerate(items):
        assert got[f"real/astro_v/{i:06d}"] == pytest.approx(want[i], abs=1e-4)
        assert got[f"fake/astro_v/{i:06d}"] == pytest.approx(want[3 + i], abs=1e-4)
        assert method_meta(frames.set_index("video").loc[f"fake/astro_v/{i:06d}", "method"]) == {
            k: str(it["meta"][k]) if k != "blend_ratio" else f"{it['meta'][k]:g}"
            for k in ("mask_type", "recon", "blend_ratio", "t_side")}

    # every table row: its group's fakes against all the reals, recomputed from frames.parquet
    table = pd.read_csv(full.folder / "table.csv")
    reals = frames[frames["label"] == 0]["score"].to_numpy()
    fakes = frames[frames["label"] == 1]
    member = fakes["method"].map(lambda m: [f"{k}:{v}" for k, v in zip(("mask", "recon", "ratio", "t_side"),
                                                                       m.split("/"), strict=False)])
    present = sorted({g for gs in member for g in gs})
    assert sorted(table["method"][:-1]) == present and table["method"].iloc[-1] == "all"
    assert table["method"].iloc[0].startswith("mask:") and {g.split(":")[0] for g in present} == {
        "mask", "recon", "ratio", "t_side"}
    for _, row in table.iterrows():
        name = row["method"]
        chosen = fakes if name == "all" else fakes[member.map(lambda gs, name=name: name in gs)]
        auc = roc_auc_score([0] * 3 + [1] * len(chosen), np.r_[reals, chosen["score"]])
        assert row["frame_auc"] == pytest.approx(auc) and row["n_fake"] == len(chosen) and row["n_real"] == 3
    assert (table["split"] == "val").all() and (table["recipe"] == "full").all() and (table["frames"] == 3).all()
    report = json.loads((full.folder / "report.json").read_text())
    assert report["pseudo"]["recipe"] == "full" and report["conditions"]["raw"]["videos_scored_now"] == 6
    assert any(m.startswith("mask:hull") for m in sbi.table["method"])
    assert set(m.split("/")[0] for m in pd.read_parquet(sbi.folder / "frames.parquet")["method"]) <= {
        "real", "hull81", "hull68"}
    # the run's own recipe and seed: its last validation, overall and per group
    assert table["frame_auc"].iloc[-1] == pytest.approx(float(_rows(tiny_run / "metrics.csv")[-1]["val_auc"]))
    last = _rows(tiny_run / "val_breakdown.csv")[-1]
    assert all(auc == pytest.approx(float(last[g]))
               for g, auc in zip(table["method"][:-1], table["frame_auc"], strict=False))
    printed = render_bench(result)
    assert "3 val frames and their full pseudo-fakes, 6 crops scored (6 now, 0 reused)" in printed

    again = evaluate(EvalConfig(suites=specs[:1], ckpt=str(ckpt), out=str(out), concurrency=1, quiet=True))
    assert again.report["conditions"]["raw"]["videos_reused"] == 6
    assert again.table.equals(full.table)


def test_pseudo_spec_grammar_and_errors(fia_shards: Path, tiny_run: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    parsed = parse_pseudo("pseudo:a:b/out:sbi:test")
    assert (str(parsed.shards), parsed.ablation, parsed.split) == ("a:b/out", "sbi", "test")
    assert (parse_pseudo("pseudo:out:test").ablation, parse_pseudo("pseudo:out:no_ae").split) == ("full", "val")
    cases = [
        ([f"pseudo:{fia_shards}:sbi:test"], "has no test frames (splits present: train, val)"),
        ([f"pseudo:{fia_shards}:train"], "score val or test"),
        ([f"pseudo:{fia_shards}:bogus"], "no manifest.parquet); expected pseudo:OUT[:ABLATION][:SPLIT]"),
        ([f"pseudo:{fia_shards}", "--perturb", "blur"], "a pseudo: suite is scored raw only"),
    ]
    for argv, message in cases:
        monkeypatch.setattr(sys, "argv", ["fiagen", "evaluate", "--ckpt", str(tiny_run / "last.pt"),
                                          "--out", str(tmp_path), "--suite", *argv])
        with pytest.raises(SystemExit) as code:
            main()
        err = capsys.readouterr().err.strip()
        assert code.value.code == 2 and message in err and "Traceback" not in err and len(err.splitlines()) == 1, err
