"""Face detection and landmarks with mediapipe's bundled models (no download).

The full-range detector runs on the whole frame; the face mesh runs on an expanded crop around the
chosen face only (on a full frame with a small face the mesh finds nothing).
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

# Context kept around the detector box when the mesh runs on a crop (fraction of box size per side).
MESH_CONTEXT = 0.6


@dataclass(frozen=True)
class Detection:
    """One detected face: box (x0, y0, x1, y1) in frame pixels and the detector's score."""

    box: tuple[float, float, float, float]
    score: float

    @property
    def area(self) -> float:
        return max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1])

    @property
    def center(self) -> np.ndarray:
        return np.array([(self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2])


def choose_face(detections: Sequence[Detection], previous: Detection | None) -> Detection:
    """The largest face, or, when there is a previous face, the one whose centre is nearest to it."""
    if previous is not None and len(detections) > 1:
        return min(detections, key=lambda d: float(np.linalg.norm(d.center - previous.center)))
    return max(detections, key=lambda d: d.area)


def expand_box(
    box: Sequence[float], left: float, top: float, right: float, bottom: float, width: int, height: int
) -> tuple[int, int, int, int]:
    """Box grown by fractions of its width (left/right) and height (top/bottom), clipped to the frame."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    return (
        int(max(0, np.floor(x0 - left * w))),
        int(max(0, np.floor(y0 - top * h))),
        int(min(width, np.ceil(x1 + right * w))),
        int(min(height, np.ceil(y1 + bottom * h))),
    )


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null for the block: mediapipe's C++ graphs print start-up notices
    (TFLite delegate, absl warnings) there that Python's logging cannot reach."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class FaceLandmarker:
    """mediapipe full-range face detector + face mesh (478 points) on a crop around the chosen face.

    Use as a context manager; it holds native graphs that must be closed, and is not picklable.
    """

    def __init__(self, min_score: float = 0.5) -> None:
        import mediapipe as mp

        with native_stderr_silenced():  # build and warm up the graphs: their start-up notices are noise
            self._detector = mp.solutions.face_detection.FaceDetection(
                model_selection=1, min_detection_confidence=min_score
            )
            self._mesh = mp.solutions.face_mesh.FaceMesh(
                static_image_mode=True, max_num_faces=1, refine_landmarks=True, min_detection_confidence=0.3
            )
            blank = np.zeros((64, 64, 3), np.uint8)
            self._detector.process(blank)
            self._mesh.process(blank)
        self._mesh_warm = False  # the mesh graph prints one more notice on its first found face

    def __enter__(self) -> "FaceLandmarker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._detector.close()
        self._mesh.close()

    def detect(self, frame: np.ndarray) -> list[Detection]:
        """All faces of an RGB uint8 frame, boxes clipped to the frame."""
        h, w = frame.shape[:2]
        result = self._detector.process(np.ascontiguousarray(frame))
        out = []
        for det in result.detections or []:
            bb = det.location_data.relative_bounding_box
            x0 = float(np.clip(bb.xmin * w, 0, w))
            y0 = float(np.clip(bb.ymin * h, 0, h))
            x1 = float(np.clip((bb.xmin + bb.width) * w, 0, w))
            y1 = float(np.clip((bb.ymin + bb.height) * h, 0, h))
            if x1 - x0 >= 2 and y1 - y0 >= 2:
                out.append(Detection((x0, y0, x1, y1), float(det.score[0])))
        return out

    def mesh(self, frame: np.ndarray, box: Sequence[float]) -> np.ndarray | None:
        """The 478-point mesh (frame pixels) of the face in `box`, run on a crop around it."""
        h, w = frame.shape[:2]
        x0, y0, x1, y1 = expand_box(box, MESH_CONTEXT, MESH_CONTEXT, MESH_CONTEXT, MESH_CONTEXT, w, h)
        crop = np.ascontiguousarray(frame[y0:y1, x0:x1])
        with native_stderr_silenced() if not self._mesh_warm else contextlib.nullcontext():
            result = self._mesh.process(crop)
        if not result.multi_face_landmarks:
            return None
        self._mesh_warm = True
        ch, cw = crop.shape[:2]
        pts = np.array([(p.x, p.y, p.z) for p in result.multi_face_landmarks[0].landmark], dtype=np.float32)
        pts *= np.array([cw, ch, cw], dtype=np.float32)
        pts[:, 0] += x0
        pts[:, 1] += y0
        return pts
