"""Imperfect inputs (issue 23, items 5 and 7): videos whose container overstates their frames or that are cut
short, kept and scored from what decodes; cut-short or corrupt checkpoints are damage and a raw pickle is
refused without warnings. Each test failed before its fix."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

# ---------------------------------------------------------------------------------------------- 5 imperfect media

VEXPRESS = "transfer/talking_head/real/vexpress__RD_Radio10_0_clip_0.mp4"  # its container says 62, 61 decode


class _Overstated:
    """A decoder whose container overstates the frame count by `extra`."""

    def __init__(self, cap, extra: int) -> None:
        self.cap, self.extra = cap, extra

    def get(self, prop: int) -> float:
        import cv2

        return self.cap.get(prop) + (self.extra if prop == cv2.CAP_PROP_FRAME_COUNT else 0)

    def __getattr__(self, name: str):
        return getattr(self.cap, name)


def _face_video(path: Path, image, n: int) -> Path:
    """`n` frames of `image` (RGB), each shifted a little, as an mp4."""
    import cv2
    import numpy as np

    h, w = image.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (w, h))
    for k in range(n):
        moved = cv2.warpAffine(image, np.float32([[1, 0, k % 5 - 2], [0, 1, 0]]), (w, h), borderMode=cv2.BORDER_REFLECT)
        writer.write(cv2.cvtColor(moved, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def test_a_video_whose_container_overstates_its_frames_is_sampled_from_what_decodes(
        astronaut_face, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fiagen.evaluate.scoring import video_crops
    from fiagen.manifests.suites.listing import EvalItem
    from fiagen.precompute import video
    from fiagen.precompute.extract import extract_video
    from fiagen.precompute.faces import FaceLandmarker

    path = _face_video(tmp_path / "clip.mp4", astronaut_face[0], 20)
    real_open = video.open_video
    monkeypatch.setattr(video, "open_video", lambda p: _Overstated(real_open(p), 5))  # says 25 frames, 20 decode
    with FaceLandmarker() as faces:
        res = video_crops(EvalItem("clip", path, 0, "real"), 8, 64, faces)
    assert res.failure is None, res.failure
    assert res.frames_sampled == 8 and res.frames_with_face == 8 and len(res.crops) == 8
    assert sorted(set(res.frame.tolist())) == sorted(res.frame.tolist()) and max(res.frame) < 20
    assert (res.frames_decoded, res.frames_shortfall) == (20, 5)

    got = extract_video("clip", path, "train", 8)
    assert got.failure is None, got.failure
    indices = [r.frame_index for r in got.records]
    assert len(indices) == 8 and indices == sorted(set(indices)) and indices[-1] < 20
    assert got.stats()["frames_decoded"] == 20 and got.stats()["frames_shortfall"] == 5


def _truncated(test_data: Path, folder: Path) -> Path:
    """A copy of a shared clip (its index before its data: what decodes stays readable) cut at 60% of its
    bytes: 102 of its 175 frames decode."""
    data = (test_data / "real_videos" / "liveportrait_d20.mp4").read_bytes()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cut.mp4").write_bytes(data[:int(len(data) * 0.6)])
    return folder / "cut.mp4"


@pytest.mark.realmedia
def test_evaluate_scores_truncated_and_miscounted_videos_from_their_decodable_frames(
        test_data: Path, ray_local, tmp_path: Path) -> None:
    import torch

    from fiagen.evaluate.runner import EvalConfig, evaluate
    from fiagen.evaluate.store import read_scores
    from fiagen.train.checkpoint import save_checkpoint
    from fiagen.train.model import build_detector

    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "run" / "best.pt", build_detector("resnet10t", 64), epoch=1, val_auc=0.5,
                           train_data="unit")
    suite = tmp_path / "suite"
    _truncated(test_data, suite / "real")
    (suite / "fake").mkdir()
    shutil.copy(test_data / VEXPRESS, suite / "fake" / "vexpress.mp4")
    shutil.copy(test_data / VEXPRESS, tmp_path / "outside.mp4")
    escapes = ["../outside.mp4", str(tmp_path / "outside.mp4"), "/etc/passwd"]  # item 4: never opened
    (suite / "list.csv").write_text("real/cut.mp4,0\nfake/vexpress.mp4,1\n" + "".join(f"{p},1\n" for p in escapes))
    result = evaluate(EvalConfig(suites=(f"folder:{suite / 'list.csv'}",), ckpt=str(ckpt), out=str(tmp_path / "eval"),
                                 frames=32, quiet=True))
    assert result.report["paths_refused"] == 3 and result.report["refused"] == escapes
    _, videos = read_scores(result.folder)
    assert sorted(videos["video"]) == ["fake/vexpress", "real/cut"]
    v = videos.set_index("video")
    assert (v["status"] == "ok").all(), v["reason"].tolist()
    assert v.loc["fake/vexpress", "frames_sampled"] == 32 and v.loc["fake/vexpress", "frames_with_face"] >= 31
    assert (v.loc["fake/vexpress", "frames_decoded"], v.loc["fake/vexpress", "frames_shortfall"]) == (61, 1)
    assert (v.loc["real/cut", "frames_decoded"], v.loc["real/cut", "frames_shortfall"]) == (102, 73)
    assert v.loc["real/cut", "frames_sampled"] == 32
    raw = result.report["conditions"]["raw"]
    assert raw["videos_failed"] == 0 and raw["videos_short"] == 2
    assert {s["video"]: s["frames_shortfall"] for s in raw["short"]} == {"fake/vexpress": 1, "real/cut": 73}


@pytest.mark.realmedia
def test_precompute_keeps_a_truncated_video_and_writes_no_empty_shard(test_data: Path, ray_local,
                                                                      tmp_path: Path) -> None:
    from fiagen.manifests.manifest import read_manifest, read_run_report
    from fiagen.precompute.entry import PrecomputeConfig, precompute

    src = tmp_path / "src"
    _truncated(test_data, src)
    (src / "empty.mp4").write_bytes(b"")
    out = tmp_path / "out"
    cfg = PrecomputeConfig(src=f"folder:{src}", out=str(out), frames=4, shard_size=4, ae="none", sr="none",
                           quiet=True)
    precompute(cfg)
    report = read_run_report(out)
    assert [f["video_id"] for f in report["failures"]] == ["empty"]
    assert report["short"] == [{"video_id": "cut", "split": "train", "frames_decoded": 102, "frames_shortfall": 73}]
    assert report["counts"]["videos_short"] == 1
    manifest = read_manifest(out)
    assert manifest["video_id"].unique().tolist() == ["cut"] and len(manifest) == 4
    assert manifest["frame_index"].max() < 102
    shards = sorted(p.name for p in (out / "shards" / "train").iterdir())
    assert shards == ["00000.h5", "00000.h5.sha256", "00001.h5.empty.json"]  # the failed video: its record only
    again = precompute(cfg)
    assert (again.shards_written, again.shards_reused) == (0, 2)
    assert [f["video_id"] for f in read_run_report(out)["failures"]] == ["empty"]


# ---------------------------------------------------------------------------------------------- 7 checkpoint messages

def test_a_cut_short_or_corrupt_checkpoint_is_damage_and_a_raw_pickle_is_refused_without_warnings(
        tmp_path: Path) -> None:
    import pickle
    import struct
    import warnings
    import zipfile

    import torch

    from fiagen.train.checkpoint import (
        CheckpointDamaged,
        CheckpointError,
        read_checkpoint,
        read_resume_checkpoint,
        save_checkpoint,
    )
    from fiagen.train.model import build_detector

    torch.manual_seed(0)
    run = tmp_path / "run"
    det = build_detector("resnet10t", 64)
    best = save_checkpoint(run / "best.pt", det, epoch=2, val_auc=0.75, train_data="unit")
    data = save_checkpoint(run / "last.pt", det, epoch=3, step=30, train_data="unit").read_bytes()

    (run / "last.pt").write_bytes(data[:len(data) * 6 // 10])  # a copy cut short
    with pytest.raises(CheckpointDamaged) as cut:
        read_resume_checkpoint(run)
    message = str(cut.value)
    assert f"{run / 'last.pt'} is damaged: it is cut short" in message and "miniz" not in message
    assert f"{best} (epoch 2, val AUC 0.7500) is intact" in message and "\n" not in message

    with zipfile.ZipFile(best) as zf:  # one byte of the pickled structure flipped
        entry = zf.getinfo(next(n for n in zf.namelist() if n.endswith("data.pkl")))
    name_len, extra_len = struct.unpack("<HH", data[entry.header_offset + 26:entry.header_offset + 30])
    at = entry.header_offset + 30 + name_len + extra_len + entry.file_size // 2
    flipped = bytearray(data)
    flipped[at] ^= 0xFF
    (tmp_path / "flipped.pt").write_bytes(bytes(flipped))
    with pytest.raises(CheckpointDamaged, match="is damaged: its record data.pkl does not match the CRC-32") as err:
        read_checkpoint(tmp_path / "flipped.pt")
    assert "unpickler" not in str(err.value)

    payload = torch.load(best, weights_only=True)
    with (tmp_path / "raw.pt").open("wb") as fh:
        pickle.dump(payload, fh, protocol=4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(CheckpointError, match="not torch's zip format"):
            read_checkpoint(tmp_path / "raw.pt")
    assert [str(w.message) for w in caught] == []
