"""`fiagen.Detector`: a trained detector used on any video, image or pixels, as evaluation scores them.

    >>> det = Detector.load("runs/x/best.pt")         # or an exported .onnx / .ts (fiagen.predict.engine)
    >>> p = det.predict("clip.mp4")                    # Prediction: score, frames, tracks
    >>> det.score_crops(crops)                         # P(fake) of face crops found elsewhere

Frames are sampled as evaluation samples them (`frames` spread uniformly over the frames that decode;
`every` seconds instead for a dense timeline), faces found by the face policy under a face mode, cropped
with the evaluation crop, and scored in batches as they come: a video streams, one frame and one batch
of crops in memory at a time, whatever its length.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fiagen.core.errors import FiagenError
from fiagen.core.media import is_image, is_media
from fiagen.evaluate.scoring import WHOLE, frame_faces, sampled_frames
from fiagen.generate.crop import eval_crop, resize_to
from fiagen.manifests.suites.listing import EvalItem
from fiagen.precompute.faces import FaceLandmarker, native_stderr_silenced
from fiagen.precompute.video import DecodeError, SampledFrames, open_video
from fiagen.predict.engine import ScoringEngine, load_engine
from fiagen.predict.result import Face, Prediction, build

FACE_MODES = ("detect", "detect-or-whole", "whole")


def video_timing(path: Path) -> tuple[float | None, int]:
    """(frames per second or None, frame count the container lists) of a video."""
    cap = open_video(path)
    try:
        fps = cap.get(cv2.CAP_PROP_FPS) if cap.isOpened() else 0.0
        return (fps if fps and math.isfinite(fps) and fps > 0 else None), int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        cap.release()


class Detector:
    """A scoring engine plus the face policy. `frames`: frames per video spread uniformly; `every`:
    seconds between sampled frames instead (a dense timeline); `face`: detect (a frame without a face adds
    nothing), detect-or-whole, or whole (see docs/evaluate.md). Use as a context manager, or `close()`."""

    def __init__(self, engine: ScoringEngine, frames: int = 32, every: float | None = None, face: str = "detect",
                 min_face_score: float = 0.5, batch_size: int = 32) -> None:
        if face not in FACE_MODES:
            raise FiagenError(f"face mode {face!r}: one of {', '.join(FACE_MODES)}")
        self.engine, self.frames, self.every, self.face = engine, frames, every, face
        self.min_face_score, self.batch_size = min_face_score, batch_size
        self._faces: FaceLandmarker | None = None

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu", **kwargs: Any) -> Detector:
        """The detector of a checkpoint (.pt) or an exported model (.onnx, .ts) on `device`; `kwargs` as for
        the constructor."""
        return cls(load_engine(path, device, kwargs.get("batch_size", 32)), **kwargs)

    @property
    def size(self) -> int:
        """The crop size the engine takes."""
        return self.engine.spec.size

    def __enter__(self) -> Detector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the face finder's native graphs."""
        if self._faces is not None:
            self._faces.close()
            self._faces = None

    def score_crops(self, crops: np.ndarray | list[np.ndarray]) -> np.ndarray:
        """P(fake) of face crops a caller found: RGB uint8 (N, H, W, 3) or a list of (H, W, 3) (resized
        to the engine's size as evaluation resizes), or float32 (N, 3, S, S) in [0,1] (an array or a torch
        tensor). Crop them as
        `engine.spec.crop_policy` says (fiagen.generate.crop.eval_crop) for evaluation's scores."""
        if hasattr(crops, "detach"):  # a torch tensor
            crops = crops.detach().cpu().numpy()
        if isinstance(crops, list) or (np.asarray(crops).dtype == np.uint8 and crops.shape[1:3] != (self.size,) * 2):
            crops = np.stack([resize_to(np.asarray(c), self.size) for c in crops]) if len(crops) else \
                np.zeros((0, self.size, self.size, 3), np.uint8)
        return self.engine.score_crops(crops)

    def _finder(self) -> FaceLandmarker:
        if self._faces is None:
            self._faces = FaceLandmarker(self.min_face_score)
        return self._faces

    def _frames(self, source: str | Path | np.ndarray) -> tuple[str, Any, int, float | None, float | None]:
        """(kind, iterable of (index, RGB frame or None), frames sampled (a video: 0, known once read),
        fps, duration) of an input."""
        if isinstance(source, np.ndarray):
            frame = np.asarray(source)
            if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
                raise FiagenError(f"an image array must be RGB uint8 (H, W, 3), got {frame.dtype} {frame.shape}")
            return "array", [(0, frame)], 1, None, None
        path = Path(source)
        if not path.exists():
            raise DecodeError("file not found")
        if path.is_dir() or is_image(path):
            sampled, frames = sampled_frames(EvalItem(path.name, path, 0, ""), self.frames)
            return ("frames" if path.is_dir() else "image"), frames, sampled, None, None
        fps, declared = video_timing(path)
        duration = declared / fps if fps else None
        k = self.frames if self.every is None or duration is None else max(1, math.ceil(duration / self.every))
        return "video", SampledFrames(path, k), 0, fps, duration

    def _scored(self, frames: Any, fps: float | None) -> Iterator[Face]:
        """Every face of the sampled frames with its score, scored a batch of crops at a time."""
        pending: list[tuple[Face, np.ndarray]] = []

        def flush() -> Iterator[Face]:
            scores = self.engine.score_crops(np.stack([c for _, c in pending]))
            for (face, _), s in zip(pending, scores, strict=True):
                face.score = float(s)
                yield face
            pending.clear()

        faces = self._finder() if self.face != WHOLE else None
        for index, frame in frames:
            if frame is None:
                continue
            for det in frame_faces(frame, faces, self.face):  # type: ignore[arg-type]
                time = index / fps if fps else None
                pending.append((Face(index, time, det.box, det.score, det.finder, 0.0),
                                eval_crop(frame, det.box, self.size)))
            if len(pending) >= self.batch_size:
                yield from flush()
        if pending:
            yield from flush()

    def predict(self, source: str | Path | np.ndarray) -> Prediction:
        """Score one video, image, folder of frame images, or RGB uint8 array. Never raises for bad media:
        the Prediction says `failed` with the reason (or `no_face`)."""
        name = "array" if isinstance(source, np.ndarray) else str(source)
        kind = "array" if isinstance(source, np.ndarray) else "video"
        faces: list[Face] = []
        fields: dict[str, Any] = {}
        try:
            with native_stderr_silenced():  # FFmpeg's and libpng's notices on opening: the row says why
                kind, frames, sampled, fps, duration = self._frames(source)
            fields.update(fps=fps, duration=duration, frames_sampled=sampled)
            faces = list(self._scored(frames, fps))
            if isinstance(frames, SampledFrames):
                fields["frames_sampled"] = frames.sampled
                if frames.shortfall:
                    fields["note"] = (f"the container lists {frames.declared} frames, the stream ended after "
                                      f"{frames.decoded}; samples spread over those")
        except DecodeError as err:
            media = isinstance(source, np.ndarray) or Path(source).is_dir() or is_media(Path(source))
            reason = str(err) if media else f"not a video or image ({err})"
            faces, fields = [], {"status": "failed", "reason": reason}
        except FiagenError:
            raise
        except Exception as err:  # noqa: BLE001 - a decoder/detector error fails this input, not the caller
            faces, fields = [], {"status": "failed", "reason": f"{type(err).__name__}: {err}"}
        return build(name, kind, faces, **fields)
