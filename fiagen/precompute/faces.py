"""Face detection and landmarks with mediapipe's bundled models (no download).

Faces are found by one policy, the same in precompute and evaluation (`FaceLandmarker.detect`): passes
in order, each run only when every pass before it found nothing. The full-range detector on the whole
frame finds the faces of full frames, alone; the short-range detector (made for faces that fill the
image) finds close-ups and tight face crops; the full-range detector on the frame centred on a
border-replicated canvas finds faces cut by the image border. The later passes keep only confident
faces (EXTRA_PASS_MIN_SCORE). Measured in benchmarks/bench_faces.py.
The face mesh runs on an expanded crop around the chosen face only (on a full frame with a small face
the mesh finds nothing).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

# Context kept around the detector box when the mesh runs on a crop (fraction of box size per side).
MESH_CONTEXT = 0.6
# The passes of the face-finding policy in the order they run: name -> (mediapipe model_selection:
# 1 full range, 0 short range; whether the frame is first put on a padded canvas).
PASSES = {"full_range": (1, False), "short_range": (0, False), "padded": (1, True)}
# The padded pass puts the frame on a canvas grown by this fraction of its longer side on every side.
PAD_FRACTION = 0.25
# The passes after the first keep faces scored at least this (or --min-face-score when higher): where
# the full-range detector found nothing, the short-range one also fires on noise (scores 0.51-0.65 on
# the noise frames of tests/test_precompute.py); faces it finds score >= 0.69, 99% >= 0.79
# (benchmarks/bench_faces.py's crops).
EXTRA_PASS_MIN_SCORE = 0.7


@dataclass(frozen=True)
class Detection:
    """One detected face: box (x0, y0, x1, y1) in frame pixels, the detector's score and the pass
    that found it (one of PASSES)."""

    box: tuple[float, float, float, float]
    score: float
    finder: str = "full_range"

    @property
    def area(self) -> float:
        return max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1])

    @property
    def center(self) -> np.ndarray:
        return np.array([(self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2])


@dataclass
class PassCounts:
    """How often each pass of the policy ran and how many faces it found."""

    runs: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PASSES, 0))
    faces: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PASSES, 0))

    def as_dict(self) -> dict[str, dict[str, int]]:
        """{pass: {"runs": n, "faces": n}}, the form stored in run.json / report.json."""
        return {name: {"runs": self.runs[name], "faces": self.faces[name]} for name in PASSES}


def total_passes(records: Iterable[dict[str, dict[str, int]]]) -> dict[str, dict[str, int]]:
    """The sum of several `PassCounts.as_dict()` records."""
    total = PassCounts()
    for record in records:
        for name, counts in record.items():
            total.runs[name] += counts["runs"]
            total.faces[name] += counts["faces"]
    return total.as_dict()


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
    """mediapipe face detectors (the policy of `detect`) + face mesh (478 points) on a crop around the
    chosen face. `passes` counts every pass run and the faces it found, since construction.

    Use as a context manager; it holds native graphs that must be closed, and is not picklable.
    """

    def __init__(self, min_score: float = 0.5) -> None:
        import mediapipe as mp

        with native_stderr_silenced():  # build and warm up the graphs: their start-up notices are noise
            self._detectors = {model: mp.solutions.face_detection.FaceDetection(
                model_selection=model, min_detection_confidence=min_score) for model in (1, 0)}
            self._mesh = mp.solutions.face_mesh.FaceMesh(
                static_image_mode=True, max_num_faces=1, refine_landmarks=True, min_detection_confidence=0.3
            )
            blank = np.zeros((64, 64, 3), np.uint8)
            for detector in self._detectors.values():
                detector.process(blank)
            self._mesh.process(blank)
        self._mesh_warm = False  # the mesh graph prints one more notice on its first found face
        self._extra_min_score = max(min_score, EXTRA_PASS_MIN_SCORE)
        self.passes = PassCounts()

    def __enter__(self) -> FaceLandmarker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for detector in self._detectors.values():
            detector.close()
        self._mesh.close()

    def detect(self, frame: np.ndarray) -> list[Detection]:
        """All faces of an RGB uint8 frame, boxes clipped to the frame: the faces of the first pass of
        PASSES that finds any (full range; short range; full range on a padded canvas; the later two
        keep faces scored >= EXTRA_PASS_MIN_SCORE)."""
        for k, name in enumerate(PASSES):
            found = self.detect_pass(frame, name)
            found = [d for d in found if d.score >= self._extra_min_score] if k else found
            self.passes.runs[name] += 1
            self.passes.faces[name] += len(found)
            if found:
                return found
        return []

    def detect_pass(self, frame: np.ndarray, name: str) -> list[Detection]:
        """The faces one pass of the policy finds (boxes in frame pixels, clipped), without counting it."""
        model, padded = PASSES[name]
        h, w = frame.shape[:2]
        pad = int(round(PAD_FRACTION * max(h, w))) if padded else 0
        image = cv2.copyMakeBorder(frame, pad, pad, pad, pad, cv2.BORDER_REPLICATE) if pad else frame
        ih, iw = image.shape[:2]
        result = self._detectors[model].process(np.ascontiguousarray(image))
        out = []
        for det in result.detections or []:
            bb = det.location_data.relative_bounding_box
            x0 = float(np.clip(bb.xmin * iw - pad, 0, w))
            y0 = float(np.clip(bb.ymin * ih - pad, 0, h))
            x1 = float(np.clip((bb.xmin + bb.width) * iw - pad, 0, w))
            y1 = float(np.clip((bb.ymin + bb.height) * ih - pad, 0, h))
            if x1 - x0 >= 2 and y1 - y0 >= 2:
                out.append(Detection((x0, y0, x1, y1), float(det.score[0]), name))
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
