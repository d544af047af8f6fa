"""The FIA-USA Dataset over shards: contract, MMR from stored variants, determinism across workers,
validation crops, manifest/shard integrity errors, and the preview/generate commands."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from fiagen.cli.main import main
from fiagen.core.errors import FiagenError
from fiagen.generate.crop import eval_crop
from fiagen.generate.dataset import FIAUSADataset, GenerateConfig, GenerateError
from fiagen.generate.loader import pair_loader
from fiagen.manifests.manifest import read_manifest
from fiagen.precompute.shards import ShardError, ShardReader

SIZE = 64
AE_VALUE, SR_VALUE = 200, 50  # the constant reconstructions of the fia_shards fixture


def dataset(out: Path, **kw) -> FIAUSADataset:
    kw.setdefault("size", SIZE)
    return FIAUSADataset(out, **kw)


def test_item_contract(fia_shards: Path) -> None:
    ds = dataset(fia_shards, split="train", seed=3)
    assert len(ds) == 10 and ds.recon_coverage == {"ae": pytest.approx(0.9), "sr": 1.0}
    item = ds[4]
    for key in ("real", "fake"):
        t = item[key]
        assert t.shape == (3, SIZE, SIZE) and t.dtype == torch.float32 and 0 <= t.min() and t.max() <= 1
    assert item["mask"].shape == (1, SIZE, SIZE) and item["mask"].dtype == torch.float32
    assert 0 <= item["mask"].min() and item["mask"].max() <= 1 and item["mask"].max() > 0
    meta = item["meta"]
    assert meta["video_id"] == "astro_a" and meta["frame_index"] == 4 and meta["index"] == 4 and meta["epoch"] == 0
    assert meta["mask_type"] in ("hull81", "rect4", "eyes", "mouth", "eyes_mouth")
    assert meta["recon"] in ("ae", "sr", "original") and meta["t_side"] in ("source", "target")
    assert meta["blend_ratio"] in (0.25, 0.5, 0.75, 1.0)
    with pytest.raises(IndexError):
        ds[10]


def test_mmr_reads_the_stored_variants_and_skips_a_failed_one(fia_shards: Path) -> None:
    """Without T, SBI's shift and shared augmentation, where the mask is at full strength the fake is the
    stored AE (200) or SR (50) image; row 1 has no AE and never uses it."""
    config = GenerateConfig(transform=False, post_blend=False, affine=False)
    ds = dataset(fia_shards, split="train", train=True, config=config)
    seen: dict[int, set[str]] = {i: set() for i in range(len(ds))}
    for epoch in range(12):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            item = ds[i]
            recon = item["meta"]["recon"]
            seen[i].add(recon)
            fake, real, mask = (item[k].numpy() * 255 for k in ("fake", "real", "mask"))
            full = mask[0] > 254.5
            if recon == "original":
                assert np.abs(fake - real).max() <= 1.01
            elif full.any():
                value = AE_VALUE if recon == "ae" else SR_VALUE
                assert np.abs(fake[:, full] - value).max() <= 2.01, item["meta"]
    assert "ae" not in seen[1]
    assert all(s == {"ae", "sr", "original"} for i, s in seen.items() if i != 1)


def test_ablations_restrict_the_reconstructions(fia_shards: Path) -> None:
    for ablation, allowed in (("no_ae", {"sr", "original"}), ("no_sr", {"ae", "original"}), ("sbi", {"original"})):
        ds = dataset(fia_shards, split="train", ablation=ablation)
        used = set()
        for epoch in range(6):
            ds.set_epoch(epoch)
            used |= {ds[i]["meta"]["recon"] for i in range(len(ds))}
        assert used == allowed, ablation


def _collect(ds: FIAUSADataset, workers: int) -> list[dict]:
    return list(pair_loader(ds, None, num_workers=workers))


def test_same_bytes_with_0_and_2_workers_and_epochs_change_draws(fia_shards: Path) -> None:
    ds = dataset(fia_shards, split="train", seed=11)
    ds.set_epoch(2)
    serial, parallel = _collect(ds, 0), _collect(ds, 2)
    assert len(serial) == len(parallel) == len(ds)
    for a, b in zip(serial, parallel, strict=False):
        assert a["meta"] == b["meta"]
        for key in ("real", "fake", "mask"):
            assert torch.equal(a[key], b[key]), (key, a["meta"])
    fresh = dataset(fia_shards, split="train", seed=11)
    fresh.set_epoch(2)
    assert torch.equal(fresh[3]["fake"], serial[3]["fake"])  # (seed, index, epoch) -> the same bytes
    fresh.set_epoch(3)
    changed = [not torch.equal(fresh[i]["fake"], serial[i]["fake"]) for i in range(len(ds))]
    assert sum(changed) >= len(ds) - 1
    assert not torch.equal(dataset(fia_shards, split="train", seed=12)[3]["mask"], serial[3]["mask"])


def test_validation_uses_the_eval_crop_and_ignores_the_epoch(fia_shards: Path) -> None:
    ds = dataset(fia_shards, split="val", train=False, config=GenerateConfig(transform=False))
    assert len(ds) == 3
    first = [ds[i] for i in range(3)]
    ds.set_epoch(5)
    reader = ShardReader(fia_shards / "shards/val/00000.h5")
    manifest = read_manifest(fia_shards)
    rows = manifest[manifest["split"] == "val"].reset_index(drop=True)
    for i in range(3):
        again = ds[i]
        assert again["meta"]["epoch"] == 0 and torch.equal(again["fake"], first[i]["fake"])
        # without T the real is the untouched frame: exactly the evaluation stage's crop
        expected = eval_crop(reader.image(int(rows.loc[i, "row"])), rows.loc[i, "face_box"], SIZE)
        got = (first[i]["real"].numpy().transpose(1, 2, 0) * 255).round().astype(np.uint8)
        assert np.array_equal(got, expected)
    reader.close()


def test_where_the_mask_is_zero_the_fake_is_the_real(fia_shards: Path) -> None:
    ds = dataset(fia_shards, split="train", train=False)
    for i in range(len(ds)):
        item = ds[i]
        zero = item["mask"][0] == 0
        assert zero.any() and torch.equal(item["fake"][:, zero], item["real"][:, zero])
        inside = item["mask"][0] >= 0.5 * item["mask"].max()
        assert (item["fake"][:, inside] - item["real"][:, inside]).abs().mean() > 1 / 255


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_corrupt_shard_is_a_clear_error(fia_shards: Path, tmp_path: Path) -> None:
    out = _copy(fia_shards, tmp_path / "out")
    shard = out / "shards/train/00000.h5"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF  # a pixel of some frame
    shard.write_bytes(bytes(data))
    with pytest.raises(ShardError, match="sha256") as err:
        dataset(out, split="train")
    assert "\n" not in str(err.value)
    dataset(out, split="val")  # other shards are fine
    assert len(dataset(out, split="train", config=GenerateConfig(verify=False))) == 10


def test_manifest_rows_pointing_nowhere_are_clear_errors(fia_shards: Path, tmp_path: Path) -> None:
    out = _copy(fia_shards, tmp_path / "out")
    manifest = read_manifest(out)
    cases = [
        ("row", 99, "points to row 99 .* which has 10 rows"),
        ("frame_index", 77, "holds another frame"),
        ("shard", "shards/train/00042.h5", "shard not found"),
    ]
    for column, value, message in cases:
        broken = manifest.copy()
        broken.loc[2, column] = value
        broken.to_parquet(out / "manifest.parquet", index=False)
        with pytest.raises(FiagenError, match=message) as err:
            dataset(out, split="train")
        assert "\n" not in str(err.value)
    manifest.to_parquet(out / "manifest.parquet", index=False)
    with pytest.raises(GenerateError, match="no frames of split 'test'"):
        dataset(out, split="test")
    with pytest.raises(GenerateError, match="unknown ablation"):
        dataset(out, split="train", ablation="bogus")


def test_shards_without_reconstructions_use_the_original(shards_small: Path) -> None:
    with pytest.warns(UserWarning, match="no AE/SR reconstructions"):
        ds = dataset(shards_small, split="train", size=96)
    assert len(ds) == len(read_manifest(shards_small).query("split == 'train'"))
    recons = set()
    for i in range(0, len(ds), max(1, len(ds) // 12)):
        item = ds[i]
        recons.add(item["meta"]["recon"])
        assert item["mask"].max() > 0
    assert recons == {"original"}


def _run(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(sys, "argv", ["fiagen", *argv])
    with pytest.raises(SystemExit) as code:
        main()
    return code.value.code


def test_preview_writes_the_labelled_grid(fia_shards: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "grid.png"
    argv = ["preview", "--shards", str(fia_shards), "-n", "3", "--out", str(out), "--size", "64", "--tile", "64",
            "--columns", "2", "--eval"]
    assert _run(argv, monkeypatch) == 0
    grid = cv2.cvtColor(cv2.imread(str(out)), cv2.COLOR_BGR2RGB)
    cell_h, cell_w = 18 + 64 + 18 + 4, 3 * 64 + 4
    assert grid.shape == (2 * cell_h, 2 * cell_w, 3)
    # the first triplet's images are the dataset's item 0: real | fake | mask
    ds = dataset(fia_shards, split="train", train=False)
    item = ds[0]
    for col, key in enumerate(("real", "fake", "mask")):
        tile = grid[2 + 18:2 + 18 + 64, 2 + col * 64:2 + (col + 1) * 64].astype(int)
        want = (item[key].numpy() * 255).round()
        want = np.repeat(want, 3, 0) if key == "mask" else want
        assert np.abs(tile - want.transpose(1, 2, 0)).mean() < 1.0, key


def test_generate_exports_deepfakebench_layout(fia_shards: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    dest = tmp_path / "export"
    argv = ["generate", "--shards", str(fia_shards), "--export", str(dest), "-n", "13", "--format", "deepfakebench",
            "--size", "48", "--seed", "4", "--quiet"]
    assert _run(argv, monkeypatch) == 0
    pairs = pd.read_csv(dest / "pairs.csv")
    assert len(pairs) == 13 and list(pairs["epoch"]) == [0] * 10 + [1] * 3
    index = json.loads((dest / "FIA-USA.json").read_text())["FIA-USA"]
    assert set(index) == {"FIA-USA-real", "FIA-USA-fake"}
    for label, column in (("FIA-USA-real", "real"), ("FIA-USA-fake", "fake")):
        videos = index[label]["train"]
        assert set(videos) == {"astro_a", "astro_b"}
        frames = [f for v in videos.values() for f in v["frames"]]
        assert sorted(frames) == sorted(pairs[column]) and all(v["label"] == label for v in videos.values())
    # the fake's mask is where DeepfakeBench looks for it, and the files are the dataset's pairs
    ds = dataset(fia_shards, split="train", seed=4, size=48, config=GenerateConfig(post_blend=False))
    for _, row in pairs.iloc[[0, 11]].iterrows():
        assert row["mask"] == row["fake"].replace("frames", "masks")
        ds.set_epoch(int(row["epoch"]))
        item = ds[int(row["index"])]
        assert item["meta"]["mask_type"] == row["mask_type"] and item["meta"]["recon"] == row["recon"]
        fake = cv2.cvtColor(cv2.imread(str(dest / row["fake"])), cv2.COLOR_BGR2RGB)
        mask = cv2.imread(str(dest / row["mask"]), cv2.IMREAD_GRAYSCALE)
        assert np.array_equal(fake, (item["fake"].numpy().transpose(1, 2, 0) * 255).round().astype(np.uint8))
        assert np.array_equal(mask, (item["mask"][0].numpy() * 255).round().astype(np.uint8))


def test_generate_png_layout_and_errors(fia_shards: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture) -> None:
    dest = tmp_path / "png"
    argv = ["generate", "--shards", str(fia_shards), "--export", str(dest), "-n", "2", "--split", "val", "--size", "32",
            "--quiet"]
    assert _run(argv, monkeypatch) == 0
    pairs = pd.read_csv(dest / "pairs.csv")
    for kind in ("real", "fake", "mask"):
        assert all(p.startswith(f"val/{kind}/astro_v/") for p in pairs[kind])
        shapes = {cv2.imread(str(dest / p), cv2.IMREAD_UNCHANGED).shape for p in pairs[kind]}
        assert shapes == ({(32, 32)} if kind == "mask" else {(32, 32, 3)})
    capsys.readouterr()
    assert _run(["generate", "--shards", str(tmp_path / "none"), "--export", str(dest)], monkeypatch) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fiagen: error:") and "manifest.parquet" in err and "\n" not in err
