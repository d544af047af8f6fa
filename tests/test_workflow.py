"""`fiagen run PIPELINE.yaml` (stages in order, complete ones skipped) and the demo's sample videos."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from fiagen.core.media import sample_indices
from fiagen.manifests.sources import ffpp_c23
from fiagen.precompute.faces import FaceLandmarker
from fiagen.precompute.video import frame_count, read_frames
from fiagen.workflow.pipeline_file import PipelineError, read_pipeline
from fiagen.workflow.run import run_pipeline
from fiagen.workflow.sample import SampleSpec, build_sample_ffpp


def test_sample_videos_are_an_ffpp_tree_of_real_faces(tmp_path: Path) -> None:
    spec = SampleSpec(train=3, val=1, test=2, frames=10, size=128, seed=3)
    ids = build_sample_ffpp(tmp_path, spec)
    listing = ffpp_c23(tmp_path)
    assert {(i.video_id, i.split) for i in listing.items} == {(v, s) for s, vids in ids.items() for v in vids}
    assert [len(ids[s]) for s in ("train", "val", "test")] == [3, 1, 2]
    with FaceLandmarker() as faces:
        for item in listing.items:
            assert frame_count(item.path) == 10
            frames = [f for _, f in read_frames(item.path, sample_indices(10, 3))]
            assert frames[0].shape == (128, 128, 3)
            assert not np.array_equal(frames[0], frames[-1])  # the camera moves
            for frame in frames:
                (det,) = faces.detect(frame)
                width = (det.box[2] - det.box[0]) / 128
                assert 0.2 < width < 0.7
    again = tmp_path / "again"
    build_sample_ffpp(again, spec)
    first = ffpp_c23(tmp_path).items[0]
    same = next(read_frames(again / first.path.relative_to(tmp_path), np.array([4])))[1]
    np.testing.assert_array_equal(same, next(read_frames(first.path, np.array([4])))[1])


def test_pipeline_file_errors_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "p.yaml"
    bad.write_text("precompute: {src: ff++_c23}\ntraining: {}\n")
    with pytest.raises(PipelineError, match="unknown key.*training"):
        read_pipeline(bad)
    bad.write_text("address: auto\n")
    with pytest.raises(PipelineError, match="names no stage"):
        read_pipeline(bad)
    bad.write_text("precompute: {src: ff++_c23, framez: 3}\n")
    with pytest.raises(PipelineError, match="unknown option.*framez"):
        run_pipeline(bad, echo=lambda _: None)


@pytest.mark.slow
def test_pipeline_runs_stages_in_order_and_skips_complete_ones(ffpp_root: Path, ray_local, test_data: Path,
                                                               tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    for name in ("liveportrait_d3", "liveportrait_d10"):
        (suite / "real").mkdir(parents=True, exist_ok=True)
        (suite / "real" / f"{name}.mp4").symlink_to(test_data / "real_videos" / f"{name}.mp4")
    (suite / "fake" / "Deepfakes").mkdir(parents=True)
    (suite / "fake" / "Deepfakes" / "df.png").symlink_to(test_data / "ffpp_frames" / "ex_deepfakes.png")
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(yaml.safe_dump({
        "precompute": {"src": "ff++_c23", "root": str(ffpp_root), "out": str(tmp_path / "out"), "frames": 4,
                       "limit": 2, "ae": "none", "sr": "none", "quiet": True},
        "train": {"run": str(tmp_path / "run"), "backbone": "resnet10t", "pretrained": "none", "size": 64, "epochs": 1,
                  "batch_size": 4, "affs_batches": 1, "loader_workers": 0, "quiet": True},
        "bench": {"suite": [f"folder:{suite}"], "frames": 2, "quiet": True},
    }))
    lines: list[str] = []
    first = run_pipeline(pipeline, echo=lines.append)
    assert [(o.stage, o.status) for o in first] == [("precompute", "ran"), ("train", "ran"), ("bench", "ran")]
    assert (tmp_path / "run" / "best.pt").is_file() or (tmp_path / "run" / "last.pt").is_file()
    report = json.loads(next((tmp_path / "run" / "eval").rglob("report.json")).read_text())
    assert report["conditions"]["raw"]["videos"] == 3
    second = run_pipeline(pipeline, echo=lines.append)
    assert [(o.stage, o.status) for o in second] == [("precompute", "complete"), ("train", "complete"),
                                                     ("bench", "complete")]
    assert len(lines) == 6 and lines[0].startswith("[precompute] ran")
