"""`--render`: an annotated copy of an input, each scored face boxed in a colour from green (real) to red
(fake) with its P(fake). An image becomes a PNG; a video an MP4 (OpenCV's mp4v) of every frame, each
showing the faces of the latest sampled frame at or before it, decoded and written one frame at a time."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from fiagen.core.files import write_bytes
from fiagen.precompute.video import open_video


def _colour(score: float) -> tuple[int, int, int]:
    """BGR from green (0) through yellow to red (1)."""
    s = float(np.clip(score, 0.0, 1.0))
    return 0, int(255 * min(1.0, 2 * (1 - s))), int(255 * min(1.0, 2 * s))


def annotate(frame_bgr: np.ndarray, faces: pd.DataFrame) -> np.ndarray:
    """The frame with each face's box and score drawn on it (in place)."""
    thick = max(1, round(max(frame_bgr.shape[:2]) / 320))
    for f in faces.itertuples():
        colour = _colour(f.score)
        p0, p1 = (int(f.x0), int(f.y0)), (int(f.x1), int(f.y1))
        cv2.rectangle(frame_bgr, p0, p1, colour, thick)
        cv2.putText(frame_bgr, f"{f.score:.2f} #{f.track}", (p0[0], max(12, p0[1] - 4)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.4 * thick, colour, thick, cv2.LINE_AA)
    return frame_bgr


def render_image(path: Path, faces: pd.DataFrame, out: Path) -> Path:
    """The annotated PNG of an image."""
    ok, png = cv2.imencode(".png", annotate(cv2.imread(str(path), cv2.IMREAD_COLOR), faces))
    return write_bytes(out, png.tobytes())


def render_video(path: Path, faces: pd.DataFrame, fps: float | None, out: Path) -> Path:
    """The annotated MP4 of a video, streamed frame by frame (written beside `out`, then renamed)."""
    by_frame = {int(k): part for k, part in faces.groupby("frame")}
    keys = np.array(sorted(by_frame))
    partial = out.with_name(f".{out.stem}.partial.mp4")
    out.parent.mkdir(parents=True, exist_ok=True)
    cap, writer, index = open_video(path), None, 0
    try:
        while True:
            ok, frame = cap.read()
            if not ok or frame is None:
                break
            if writer is None:
                writer = cv2.VideoWriter(str(partial), cv2.VideoWriter_fourcc(*"mp4v"), fps or 25.0,
                                         (frame.shape[1], frame.shape[0]))
                if not writer.isOpened():
                    raise OSError(f"OpenCV cannot write an mp4v video to {partial}")
            at = np.searchsorted(keys, index, side="right") - 1
            writer.write(annotate(frame, by_frame[int(keys[at])]) if at >= 0 else frame)
            index += 1
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        cap.release()
        if writer is not None:
            writer.release()
    os.replace(partial, out)
    return out
