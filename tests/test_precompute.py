"""Precompute on real media (FF++ tree of the shared clips) and on synthetic bad files."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from scipy.spatial import Delaunay

from fiagen.manifests.manifest import read_manifest, read_run_report
from fiagen.precompute.entry import ConfigMismatch, PrecomputeConfig, precompute
from fiagen.precompute.landmarks import EYES81, FOREHEAD81, JAW81, LEFT_EYE_MESH, MOUTH_MESH, RIGHT_EYE_MESH
from fiagen.precompute.shards import ShardReader, sha256_file

FRAMES = 8  # the shards_small fixture samples 8 frames per video


def test_every_video_gives_frames_rows(shards_small: Path) -> None:
    manifest = read_manifest(shards_small)
    per_video = manifest.groupby("video_id").size()
    assert set(per_video.index) == {"000", "001", "002", "003", "004", "005", "023", "519"}
    assert (per_video == FRAMES).all(), per_video.to_dict()
    report = read_run_report(shards_small)
    assert report["counts"]["frames_sampled"] == 8 * FRAMES
    assert report["counts"]["frames_stored"] == 8 * FRAMES
    assert report["counts"]["videos_missing"] == 1000 - 8
    assert {m["video_id"] for m in report["missing"]} >= {"006", "999"}
    splits = manifest.groupby("split")["video_id"].unique().map(set).to_dict()
    assert splits == {"train": {"001", "002", "005", "519"}, "val": {"004", "023"}, "test": {"000", "003"}}


def test_frame_indices_are_uniform_linspace(shards_small: Path, test_data: Path) -> None:
    manifest = read_manifest(shards_small)
    cap = cv2.VideoCapture(str(test_data / "ffpp_train_real" / "519.mp4"))
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    got = manifest[manifest["video_id"] == "519"]["frame_index"].tolist()
    assert got == np.round(np.linspace(0, n - 1, FRAMES)).astype(int).tolist()


def _rows(out: Path):
    manifest = read_manifest(out)
    for shard, rows in manifest.groupby("shard"):
        reader = ShardReader(out / shard)
        for _, m in rows.iterrows():
            yield m, reader.row(int(m["row"])), reader


def test_landmarks_inside_face_and_ordered(shards_small: Path) -> None:
    """The detector box is tight around the inner face: the 68 points lie within it grown by 10% per side
    (chin and jaw corners can touch its edge). The forehead arc runs left to right above the brows: every
    arc point over a brow is above the brow line there (its ends reach the temples, beside the brows),
    and all of it is above the eyes. Eye and mouth regions lie inside the face outline (jaw + forehead hull)."""
    for _, geo, _ in _rows(shards_small):
        x0, y0, x1, y1 = geo["face_box"]
        w, h = x1 - x0, y1 - y0
        pts = geo["landmarks81"]
        inner = pts[:68]
        assert (inner[:, 0] >= x0 - 0.1 * w).all() and (inner[:, 0] <= x1 + 0.1 * w).all()
        assert (inner[:, 1] >= y0 - 0.1 * h).all() and (inner[:, 1] <= y1 + 0.1 * h).all()
        forehead = pts[list(FOREHEAD81)]
        assert np.all(np.diff(forehead[:, 0]) > 0), "forehead arc must run left to right"
        for brow in (pts[17:22], pts[22:27]):
            over = (forehead[:, 0] >= brow[:, 0].min()) & (forehead[:, 0] <= brow[:, 0].max())
            assert over.sum() >= 2
            brow_y = np.interp(forehead[over, 0], brow[:, 0], brow[:, 1])
            assert (forehead[over, 1] < brow_y).all()
        assert (forehead[:, 1] < pts[list(EYES81), 1].min()).all()
        outline = Delaunay(pts[list(JAW81) + list(FOREHEAD81)])
        mesh = geo["mesh478"][:, :2]
        for region in (LEFT_EYE_MESH, RIGHT_EYE_MESH, MOUTH_MESH):
            assert (outline.find_simplex(mesh[list(region)]) >= 0).all()
        assert (outline.find_simplex(pts[list(EYES81)]) >= 0).all()
        # the eyes are above the mouth and the picture-left eye is left of the right one
        assert pts[36:42, 0].mean() < pts[42:48, 0].mean()
        assert pts[36:48, 1].mean() < pts[48:68, 1].mean()


def test_manifest_matches_shards(shards_small: Path) -> None:
    n = 0
    for m, geo, reader in _rows(shards_small):
        assert geo["video_id"] == m["video_id"]
        assert int(geo["frame_index"]) == m["frame_index"]
        assert list(geo["crop_box"]) == list(m["crop_box"])
        np.testing.assert_allclose(geo["face_box"], m["face_box"])
        img = reader.image(int(m["row"]))
        assert img.shape == (m["crop_h"], m["crop_w"], 3) and img.dtype == np.uint8
        assert m["shard_sha256"] == sha256_file(shards_small / m["shard"])
        assert reader.attrs["split"] == m["split"]
        n += 1
    assert n == 8 * FRAMES


def test_crop_is_native_pixels_of_the_frame(shards_small: Path, test_data: Path) -> None:
    """The stored crop equals the source frame's pixels at crop_box (no resampling)."""
    manifest = read_manifest(shards_small)
    m = manifest[manifest["video_id"] == "519"].iloc[3]
    cap = cv2.VideoCapture(str(test_data / "ffpp_train_real" / "519.mp4"))
    for _ in range(int(m["frame_index"]) + 1):
        ok, frame = cap.read()
    cap.release()
    x0, y0, x1, y1 = m["crop_box"]
    reader = ShardReader(shards_small / m["shard"])
    expected = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)[y0:y1, x0:x1]
    np.testing.assert_array_equal(reader.image(int(m["row"])), expected)
    fx0, fy0, fx1, fy1 = m["face_box"]
    w, h = fx1 - fx0, fy1 - fy0
    # face box widened by half its width per side, its height above, 0.4 of it below (clipped to the frame)
    assert fx0 == pytest.approx(min(0.5 * w, fx0 + x0), abs=1.01)
    assert fy0 == pytest.approx(min(1.0 * h, fy0 + y0), abs=1.01)
    assert (x1 - x0) - fx1 == pytest.approx(min(0.5 * w, m["frame_w"] - (fx1 + x0)), abs=1.01)
    assert (y1 - y0) - fy1 == pytest.approx(min(0.4 * h, m["frame_h"] - (fy1 + y0)), abs=1.01)


def test_rerun_rebuilds_only_the_deleted_shard(shards_small: Path, ray_local, tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(shards_small, out)
    shards = sorted(out.glob("shards/*/*.h5"))
    assert len(shards) == 4  # train 4 videos -> 2 shards of 2, val 1, test 1
    victim = out / "shards" / "train" / "00001.h5"
    before = {p: (p.stat().st_mtime_ns, sha256_file(p)) for p in shards}
    victim.unlink()
    result = precompute(PrecomputeConfig(src="ff++_c23", root=read_run_report(out)["config"]["root"], out=str(out),
                                         frames=FRAMES, shard_size=16, ae="none", sr="none", quiet=True))
    assert (result.shards_written, result.shards_reused) == (1, 3)
    report = read_run_report(out)
    assert [s["path"] for s in report["shards"] if s["rebuilt"]] == ["shards/train/00001.h5"]
    for p, (mtime, digest) in before.items():
        assert sha256_file(p) == digest  # the rebuilt shard has the same bytes: extraction is deterministic
        if p != victim:
            assert p.stat().st_mtime_ns == mtime
    pd.testing.assert_frame_equal(read_manifest(out), read_manifest(shards_small))


def test_other_settings_on_existing_out_are_refused(shards_small: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(shards_small, out)
    root = read_run_report(out)["config"]["root"]
    with pytest.raises(ConfigMismatch, match="frames"):
        precompute(PrecomputeConfig(src="ff++_c23", root=root, out=str(out), frames=4, shard_size=16, ae="none",
                                    sr="none", quiet=True))
    assert len(read_manifest(out)) == 8 * FRAMES  # nothing was lost


def _write_video(path: Path, frames: list[np.ndarray], fps: float = 25.0) -> None:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for f in frames:
        writer.write(f)
    writer.release()


def test_bad_files_are_recorded_failures(test_data: Path, ray_local, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(test_data / "real_videos" / "liveportrait_d3.mp4", src / "good.mp4")
    data = (test_data / "real_videos" / "liveportrait_d11.mp4").read_bytes()
    (src / "truncated.mp4").write_bytes(data[: len(data) // 3])
    (src / "empty.mp4").write_bytes(b"")
    rng = np.random.default_rng(0)
    _write_video(src / "noface.mp4", [rng.integers(0, 255, (96, 128, 3), dtype=np.uint8) for _ in range(20)])
    out = tmp_path / "out"
    precompute(PrecomputeConfig(src=f"folder:{src}", out=str(out), frames=4, shard_size=4, ae="none", sr="none",
                                quiet=True))
    report = read_run_report(out)
    reasons = {f["video_id"]: f["reason"] for f in report["failures"]}
    assert set(reasons) == {"truncated", "empty", "noface"}
    assert "no face" in reasons["noface"]
    assert any(word in reasons["truncated"] for word in ("truncated", "cannot open"))
    manifest = read_manifest(out)
    assert manifest["video_id"].unique().tolist() == ["good"]
    assert len(manifest) == 4
    assert report["counts"]["videos_failed"] == 3
    assert report["counts"]["frames_no_face"] == 4


def test_unknown_src_is_one_line(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "fiagen", "precompute", "--src", "bogus", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown --src 'bogus'" in lines[0] and "ff++_c23" in lines[0]


def test_missing_root_is_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in __import__("os").environ.items() if k != "FIAGEN_DATA"}
    proc = subprocess.run([sys.executable, "-m", "fiagen", "precompute", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--root" in lines[0] and "FIAGEN_DATA" in lines[0]


def test_run_report_is_complete(shards_small: Path) -> None:
    report = json.loads((shards_small / "run.json").read_text())
    assert report["config"]["frames"] == FRAMES
    assert report["versions"]["mediapipe"] == "0.10.21"
    assert len(report["shards"]) == 4 and all(len(s["sha256"]) == 64 for s in report["shards"])
    for s in report["shards"]:
        assert s["sha256"] == sha256_file(shards_small / s["path"])
    assert report["timings"]["frames_processed"] == 8 * FRAMES


def test_face_models_print_no_native_start_up_notices() -> None:
    """mediapipe's C++ graphs write TFLite/absl notices to fd 2 on start-up and first use; they are kept
    out of the user's terminal while detection and mesh results still come back."""
    code = (
        "from skimage import data\n"
        "from fiagen.precompute.faces import FaceLandmarker\n"
        "image = data.astronaut()\n"
        "with FaceLandmarker() as m:\n"
        "    det = max(m.detect(image), key=lambda d: d.area)\n"
        "    first, again = m.mesh(image, det.box), m.mesh(image, det.box)\n"
        "print(len(first), bool((first == again).all()))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["478", "True"]
    assert res.stderr == ""


@pytest.mark.slow
@pytest.mark.realmedia
def test_close_up_and_tight_crop_are_found_and_get_landmarks(hard_faces: dict, ray_local, tmp_path: Path) -> None:
    """A frame-filling face and a 64 px tight crop, which the full-range detector alone misses, are
    stored with their landmarks; run.json counts what each pass of the face policy ran and found."""
    src = tmp_path / "src"
    src.mkdir()
    for name, image in hard_faces.items():
        cv2.imwrite(str(src / f"{name}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    out = tmp_path / "out"
    precompute(PrecomputeConfig(src=f"folder:{src}", out=str(out), frames=1, shard_size=4, ae="none", sr="none",
                                quiet=True))
    report = read_run_report(out)
    assert report["counts"]["frames_stored"] == 2 and report["counts"]["videos_failed"] == 0
    assert report["face_passes"] == {"full_range": {"runs": 2, "faces": 0}, "short_range": {"runs": 2, "faces": 2},
                                     "padded": {"runs": 0, "faces": 0}}
    manifest = read_manifest(out).set_index("video_id")
    for name, image in hard_faces.items():
        reader = ShardReader(out / manifest.loc[name, "shard"])
        geo = reader.row(int(manifest.loc[name, "row"]))
        reader.close()
        x0, y0, x1, y1 = geo["face_box"]
        w, h = x1 - x0, y1 - y0
        assert w > 0.8 * image.shape[1] and h > 0.8 * image.shape[0]  # the face fills the image
        inner = geo["landmarks81"][:68]  # the 68 points lie on that face
        assert (inner[:, 0] >= x0 - 0.1 * w).all() and (inner[:, 0] <= x1 + 0.1 * w).all()
        assert (inner[:, 1] >= y0 - 0.1 * h).all() and (inner[:, 1] <= y1 + 0.1 * h).all()

