"""Issue 29, defect 5: a second decode pass's frames come out of time order; face tracking (the face
nearest the previous frame's) follows time, not the order the frames arrive in. Failed before its fix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fiagen.precompute import extract
from fiagen.precompute.faces import Detection, PassCounts

# (centre x, score) of the faces each frame shows: T is the tracked person, D a larger one beside it, X
# the only face late in the clip (far right).
T, D, X = (40.0, 0.9), (200.0, 0.8), (260.0, 0.7)
FACES = {0: [T], 10: [T, D], 20: [T, D], 30: [T, D], 40: [X]}


class _TwoPasses:
    """A clip whose stream ended early: the first pass read 0, 20, 40; the second 10, 30 (after them)."""

    sampled, decoded, shortfall = 5, 41, 9

    def __init__(self, path: Path, k: int) -> None:
        pass

    def __iter__(self):
        for index in (0, 20, 40, 10, 30):
            yield index, np.full((240, 320, 3), index, np.uint8)


class _Faces:
    """Detects FACES[frame index] (a T box is smaller than a D box), meshes a grid inside the box."""

    passes = PassCounts()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass

    def detect(self, frame: np.ndarray) -> list[Detection]:
        return [Detection((x - s, 100 - s, x + s, 100 + s), score, "full_range")
                for x, score in FACES[int(frame[0, 0, 0])] for s in [20 if score == T[1] else 40]]

    def mesh(self, frame: np.ndarray, box) -> np.ndarray:
        grid = np.random.default_rng(0).uniform(0, 1, (478, 3)).astype(np.float32)
        grid[:, 0] = box[0] + grid[:, 0] * (box[2] - box[0])
        grid[:, 1] = box[1] + grid[:, 1] * (box[3] - box[1])
        return grid


def test_second_pass_frames_are_tracked_from_the_frame_before_them_in_time(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(extract, "SampledFrames", _TwoPasses)
    monkeypatch.setattr(extract, "FaceLandmarker", _Faces)
    result = extract.extract_video("clip", Path("clip.mp4"), "train", 5)
    assert result.failure is None, result.failure
    kept = [(r.frame_index, r.det_score) for r in result.records]
    # 10 and 30 follow T (kept at 0 and 20), not X (kept at 40, the frame read just before them)
    assert kept == [(0, T[1]), (10, T[1]), (20, T[1]), (30, T[1]), (40, X[1])]
    assert [r.n_faces for r in result.records] == [1, 2, 2, 2, 1]
