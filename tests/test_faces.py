"""The face policy's parts: --face modes per unit, the whole-image fallback, pass counts, noise."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data as skdata

from fiagen.evaluate.scoring import face_mode, frame_faces
from fiagen.manifests.suites.listing import EvalItem
from fiagen.precompute.faces import FaceLandmarker, PassCounts, total_passes


@pytest.fixture(scope="module")
def faces():
    with FaceLandmarker() as marker:
        yield marker


def test_auto_face_mode_scores_face_crop_images_whole_and_videos_by_detection(tmp_path: Path) -> None:
    frames_dir = tmp_path / "frames"
    frames_dir.mkdir()
    image = EvalItem("a", tmp_path / "a.png", 1, "m")
    frame_list = EvalItem("b", tmp_path / "b", 1, "m", frames=("b/000.png",))
    folder_unit = EvalItem("c", frames_dir, 1, "m")
    video = EvalItem("d", tmp_path / "d.mp4", 1, "m")
    assert [face_mode(it, True, "auto") for it in (image, frame_list, folder_unit, video)] == [
        "detect-or-whole", "detect-or-whole", "detect-or-whole", "detect"]
    assert {face_mode(it, False, "auto") for it in (image, frame_list, folder_unit, video)} == {"detect"}
    assert face_mode(video, True, "whole") == "whole" and face_mode(image, True, "detect") == "detect"


def test_frame_faces_under_each_mode(faces: FaceLandmarker) -> None:
    grey = np.full((90, 120, 3), 128, np.uint8)
    assert frame_faces(grey, faces, "detect") == []
    (whole,) = frame_faces(grey, faces, "detect-or-whole")
    assert whole.box == (0.0, 0.0, 120.0, 90.0) and whole.finder == "whole" and np.isnan(whole.score)
    face = cv2.resize(skdata.astronaut(), (256, 256), interpolation=cv2.INTER_AREA)
    (found,) = frame_faces(face, faces, "detect-or-whole")
    assert found.finder == "full_range" and found.box[2] - found.box[0] < 100  # the face, not the image
    faces.passes = PassCounts()
    (whole,) = frame_faces(face, faces, "whole")
    assert whole.finder == "whole" and sum(faces.passes.runs.values()) == 0  # no detector ran


def test_later_passes_run_only_on_misses_and_keep_only_confident_faces(faces: FaceLandmarker) -> None:
    """On full frames with a face only the full-range pass runs; on noise every pass runs and the
    short-range detector's weak hits on it (scores 0.5-0.65) are not kept as faces."""
    noise = [np.random.default_rng(k).integers(0, 255, (96, 128, 3), dtype=np.uint8) for k in range(4)]
    weak = [d.score for n in noise for d in faces.detect_pass(n, "short_range")]
    assert len(weak) == 4 and max(weak) < 0.6  # what the short-range detector alone would call faces
    face = skdata.astronaut()
    before = faces.passes.as_dict()
    assert len(faces.detect(face)) == 1 and not any(faces.detect(n) for n in noise)
    after = faces.passes.as_dict()
    ran = {name: after[name]["runs"] - before[name]["runs"] for name in after}
    found = {name: after[name]["faces"] - before[name]["faces"] for name in after}
    assert ran == {"full_range": 5, "short_range": 4, "padded": 4} and found == {"full_range": 1, "short_range": 0,
                                                                                "padded": 0}
    assert total_passes([after, before]) == {name: {k: after[name][k] + before[name][k] for k in ("runs", "faces")}
                                             for name in after}
