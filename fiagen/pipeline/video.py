"""Sequential decoding of videos and still images (which frames to take: fiagen.media)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from fiagen.media import is_image


class DecodeError(Exception):
    """A video or image that cannot be read as asked; the message is the recorded reason."""


def open_video(path: Path) -> cv2.VideoCapture:
    """A single-threaded FFmpeg decoder: parallelism comes from decoding several videos at once, and a
    decoder that spreads over every core would oversubscribe the machine under Ray workers."""
    return cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])


def frame_count(path: Path) -> int:
    """The container's frame count; counts by decoding when the container does not say."""
    cap = open_video(path)
    try:
        if not cap.isOpened():
            raise DecodeError("cannot open video (corrupt or unsupported container)")
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        if n > 0:
            return n
        n = 0
        while cap.grab():
            n += 1
        return n
    finally:
        cap.release()


def read_frames(path: Path, indices: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (index, RGB uint8 frame) for sorted `indices`, decoding sequentially without seeking.

    Raises DecodeError when the stream ends before the last index (a truncated file).
    """
    if is_image(path):
        if list(indices) != [0]:
            raise DecodeError("an image has one frame (index 0)")
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise DecodeError("cannot decode image")
        yield 0, cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        return
    cap = open_video(path)
    try:
        if not cap.isOpened():
            raise DecodeError("cannot open video (corrupt or unsupported container)")
        current = -1
        for target in indices:
            while current < target:
                if not cap.grab():
                    raise DecodeError(f"truncated: stream ended after {current + 1} frames, needed frame {target}")
                current += 1
            ok, frame = cap.retrieve()
            if not ok or frame is None:
                raise DecodeError(f"cannot decode frame {target}")
            yield int(target), cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    finally:
        cap.release()
