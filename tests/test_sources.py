"""Sources, frame sampling and the shard plan on synthetic trees (no real media needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fiagen.core.media import sample_indices
from fiagen.manifests.roots import SourceError
from fiagen.manifests.sources import ffpp_c23, ffpp_split_ids, folder, resolve_source
from fiagen.precompute.plan import plan_shards


def test_official_split_sizes() -> None:
    ids = ffpp_split_ids()
    assert {k: len(v) for k, v in ids.items()} == {"train": 720, "val": 140, "test": 140}
    assert not set(ids["train"]) & set(ids["test"]) and not set(ids["val"]) & set(ids["test"])
    assert "519" in ids["train"]


def test_ffpp_counts_missing(tmp_path: Path) -> None:
    videos = tmp_path / "original_sequences" / "youtube" / "c23" / "videos"
    videos.mkdir(parents=True)
    for vid in ("519", "000", "004"):
        (videos / f"{vid}.mp4").write_bytes(b"x")
    listing = ffpp_c23(tmp_path)
    assert {(i.video_id, i.split) for i in listing.items} == {("519", "train"), ("000", "test"), ("004", "val")}
    assert len(listing.missing) == 997


def test_ffpp_root_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "FaceForensics++" / "original_sequences" / "youtube" / "c23" / "videos").mkdir(parents=True)
    monkeypatch.setenv("FIAGEN_DATA", str(tmp_path))
    assert ffpp_c23(None).root == tmp_path / "FaceForensics++"
    monkeypatch.setenv("FIAGEN_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(SourceError, match="--root"):
        ffpp_c23(None)


def test_folder_splits(tmp_path: Path) -> None:
    for rel in ("train/a.mp4", "train/sub/b.MOV", "val/c.png", "test/d.webm", "extra/e.mp4", "train/notes.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    listing = folder(tmp_path)
    assert [(i.video_id, i.split) for i in listing.items] == [
        ("test/d", "test"), ("train/a", "train"), ("train/sub/b", "train"), ("val/c", "val")]
    assert listing.unassigned == ["extra/e.mp4"]
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "x.mkv").write_bytes(b"x")
    assert [(i.video_id, i.split) for i in folder(flat).items] == [("x", "train")]


def test_unknown_and_missing_sources(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="unknown --src 'ffpp'"):
        resolve_source("ffpp")
    with pytest.raises(SourceError, match="not a directory"):
        resolve_source(f"folder:{tmp_path / 'nope'}")
    with pytest.raises(SourceError, match="no videos"):
        resolve_source(f"folder:{tmp_path}")


def test_sample_indices() -> None:
    assert sample_indices(100, 5).tolist() == [0, 25, 50, 74, 99]
    assert sample_indices(3, 32).tolist() == [0, 1, 2]
    assert sample_indices(1, 32).tolist() == [0]
    assert sample_indices(0, 32).tolist() == []
    idx = sample_indices(450, 32)
    assert len(idx) == 32 and idx[0] == 0 and idx[-1] == 449 and np.all(np.diff(idx) > 0)


def test_plan_keeps_whole_videos(tmp_path: Path) -> None:
    for i in range(7):
        (tmp_path / f"v{i}.mp4").write_bytes(b"x")
    listing = folder(tmp_path)
    plans = plan_shards(listing, ("train",), frames=32, shard_size=64)
    assert [len(p.videos) for p in plans] == [2, 2, 2, 1]
    assert [p.relpath for p in plans] == [f"shards/train/0000{i}.h5" for i in range(4)]
    assert [len(p.videos) for p in plan_shards(listing, ("train",), frames=32, shard_size=8)] == [1] * 7
