"""Per-video work of precompute: sampled frames -> chosen face -> landmarks -> face-context crop."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fiagen.core.media import is_image
from fiagen.precompute.faces import Detection, FaceLandmarker, PassCounts, choose_face, expand_box
from fiagen.precompute.landmarks import landmarks81
from fiagen.precompute.shards import FrameRecord
from fiagen.precompute.video import DecodeError, SampledFrames, read_frames

# Face-context crop around the detector box, in fractions of the box: left, top, right, bottom.
CROP_MARGINS = (0.5, 1.0, 0.5, 0.4)
TIMED_STEPS = ("decode", "detect", "mesh", "crop")


@dataclass
class VideoResult:
    """What one video gave: stored frames, counts, time per step, the face finder's passes (runs and
    faces found per pass), and the failure reason if it failed."""

    video_id: str
    path: str
    split: str
    records: list[FrameRecord] = field(default_factory=list)
    failure: str | None = None
    frames_sampled: int = 0
    frames_no_face: int = 0
    frames_no_landmarks: int = 0
    # the frames the stream delivered, and how many fewer than the container lists when it ended early
    # (the samples were then re-spread over the frames that decoded)
    frames_decoded: int = 0
    frames_shortfall: int = 0
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(TIMED_STEPS, 0.0))
    face_passes: dict[str, dict[str, int]] = field(default_factory=lambda: PassCounts().as_dict())
    # Failures of single stored frames in later steps (a reconstructor): video_id, path, frame_index, stage, reason.
    frame_failures: list[dict[str, Any]] = field(default_factory=list)

    def stats(self) -> dict[str, int]:
        return {
            "frames_sampled": self.frames_sampled,
            "frames_stored": len(self.records),
            "frames_no_face": self.frames_no_face,
            "frames_no_landmarks": self.frames_no_landmarks,
            "frames_decoded": self.frames_decoded,
            "frames_shortfall": self.frames_shortfall,
        }


def _stopwatch(totals: dict[str, float]) -> Callable[[str], AbstractContextManager[None]]:
    """A context-manager factory that adds the seconds spent in each block to totals[step]."""

    @contextmanager
    def timed(step: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            totals[step] += time.perf_counter() - start

    return timed


def face_crop(frame: np.ndarray, det: Detection, mesh: np.ndarray, frame_index: int, n_faces: int,
              video_id: str) -> FrameRecord:
    """The face-context crop at native resolution with its box and landmarks in crop pixels."""
    h, w = frame.shape[:2]
    x0, y0, x1, y1 = expand_box(det.box, *CROP_MARGINS, w, h)
    offset = np.array([x0, y0], dtype=np.float32)
    mesh_crop = mesh.copy()
    mesh_crop[:, :2] -= offset
    face_box = np.array(det.box, dtype=np.float32) - np.tile(offset, 2)
    return FrameRecord(
        video_id=video_id,
        frame_index=frame_index,
        n_faces=n_faces,
        det_score=det.score,
        crop_box=(x0, y0, x1, y1),
        frame_size=(h, w),
        face_box=face_box,
        landmarks81=landmarks81(mesh_crop),
        mesh478=mesh_crop,
        image=np.ascontiguousarray(frame[y0:y1, x0:x1]),
    )


def _previous(chosen: dict[int, Detection], index: int) -> Detection | None:
    """The face kept in the nearest earlier frame read so far: the tracking reference of frame `index`. A
    second decode pass's frames come after the first pass's, out of time order; each is still tracked
    from the frame before it in time, never from a later one."""
    earlier = [k for k in chosen if k < index]
    return chosen[max(earlier)] if earlier else None


def extract_video(video_id: str, path: Path, split: str, n_frames: int) -> VideoResult:
    """Sample `n_frames` frames of a video (or the one frame of an image) and keep each frame's face.

    A video's frames are spread over the frames that decode (fiagen.precompute.video.SampledFrames: a
    stream that ends early is sampled from what it delivered). With several faces, each frame keeps the
    face nearest the one kept in the frame before it in time (with none: the largest). Never raises for
    bad media: a file in which no frame decodes, or no sampled frame has a face with landmarks, comes back
    with `failure` set and no records. Records are in frame order.
    """
    result = VideoResult(video_id, str(path), split)
    timed = _stopwatch(result.seconds)
    video = None
    try:
        with timed("decode"):
            video = None if is_image(path) else SampledFrames(path, n_frames)
        result.frames_sampled = 1 if video is None else 0  # a video's: counted as it is read
        chosen: dict[int, Detection] = {}  # frame index -> the face kept there (the tracking state)
        with FaceLandmarker() as faces:
            frames = iter(read_frames(path, [0]) if video is None else video)
            while True:
                with timed("decode"):
                    item = next(frames, None)
                if item is None:
                    break
                index, frame = item
                with timed("detect"):
                    detections = faces.detect(frame)
                if not detections:
                    result.frames_no_face += 1
                    continue
                face = chosen[index] = choose_face(detections, _previous(chosen, index))
                with timed("mesh"):
                    mesh = faces.mesh(frame, face.box)
                if mesh is None:
                    result.frames_no_landmarks += 1
                    continue
                with timed("crop"):
                    result.records.append(face_crop(frame, face, mesh, index, len(detections), video_id))
            result.face_passes = faces.passes.as_dict()
        result.records.sort(key=lambda r: r.frame_index)  # a second pass's frames come after the first's
    except DecodeError as err:
        result.failure = str(err)
        result.records = []
    except Exception as err:  # noqa: BLE001 - any decoder/model error is this video's failure, not the run's
        result.failure = f"{type(err).__name__}: {err}"
        result.records = []
    if video is not None:
        result.frames_sampled = video.sampled
        result.frames_decoded, result.frames_shortfall = video.decoded, video.shortfall
    if result.failure is None and not result.records:
        result.failure = (f"no face with landmarks in any of {result.frames_sampled} sampled frames "
                          f"({result.frames_no_face} without a detected face)")
    return result
