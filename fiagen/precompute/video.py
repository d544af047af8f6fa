"""Sequential decoding of videos and still images (which frames to take: fiagen.core.media; sampling from the
frames that actually decode: SampledFrames)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from fiagen.core.media import is_image, sample_indices


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


def _decode_pass(path: Path, indices: np.ndarray, grabbed: list[int]) -> Iterator[tuple[int, np.ndarray | None]]:
    """(index, RGB frame, or None when that frame does not convert) for sorted `indices`, decoding
    sequentially without seeking; stops quietly where the stream ends. `grabbed[0]` follows how many
    frames the stream delivered."""
    cap = open_video(path)
    try:
        if not cap.isOpened():
            raise DecodeError("cannot open video (corrupt or unsupported container)")
        current = -1
        for target in indices:
            while current < target:
                if not cap.grab():
                    return
                current += 1
                grabbed[0] = current + 1
            ok, frame = cap.retrieve()
            yield int(target), cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) if ok and frame is not None else None
    finally:
        cap.release()


def read_frames(path: Path, indices: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (index, RGB uint8 frame) for sorted `indices`, decoding sequentially without seeking.

    Raises DecodeError when the stream ends before the last index (a truncated file); `SampledFrames`
    samples from the frames that decode instead.
    """
    if is_image(path):
        if list(indices) != [0]:
            raise DecodeError("an image has one frame (index 0)")
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise DecodeError("cannot decode image")
        yield 0, cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        return
    grabbed, last = [0], -1
    for index, frame in _decode_pass(path, indices, grabbed):
        if frame is None:
            raise DecodeError(f"cannot decode frame {index}")
        last = index
        yield index, frame
    if len(indices) and last != indices[-1]:
        raise DecodeError(f"truncated: stream ended after {grabbed[0]} frames, needed frame {indices[-1]}")


def _spread(free: np.ndarray, m: int) -> np.ndarray:
    """`m` of the sorted `free` indices, evenly spread (the middle of each of m equal parts)."""
    m = min(m, len(free))
    return free[((np.arange(m) + 0.5) * len(free) / m).astype(np.int64)] if m else free[:0]


class SampledFrames:
    """`k` frames of a video spread uniformly over the frames that actually decode, iterated as (index,
    RGB uint8 frame), decoded sequentially with one frame in memory at a time.

    The spread starts from the container's frame count. When the stream ends early after D frames (a
    count the container overstates, a truncated file) or a frame does not convert, the frames already
    taken are kept and the samples lost are re-spread over the D frames that decoded: as many more
    frames, spread evenly over those not taken, are read in a second sequential pass that stops at the
    last of them (they come after the first pass's frames, out of frame order). A complete stream costs
    nothing extra; one that ends early costs a second decode of at most its D frames. The video fails
    (DecodeError) only when no frame decodes.

    After iterating: `declared` (the container's count), `decoded` (frames the stream delivered, up to
    the last one needed), `shortfall` (declared - decoded when the stream ended before the last planned
    frame, else 0), `sampled` (frames read: taken + undecodable), `undecodable` (frames that did not
    convert).
    """

    def __init__(self, path: Path, k: int) -> None:
        self.path, self.k = Path(path), k
        self.declared = frame_count(self.path)
        if self.declared <= 0:
            raise DecodeError("no frames (empty or zero-frame video)")
        self.decoded = self.shortfall = self.sampled = self.undecodable = 0

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        planned = sample_indices(self.declared, self.k)
        grabbed, read = [0], np.zeros(0, np.int64)
        taken: list[int] = []
        for indices in (planned, None):
            if indices is None:  # the second pass: the lost samples re-spread over what decoded
                free = np.ones(self.decoded, bool)
                free[read] = False
                indices = _spread(np.flatnonzero(free), len(planned) - len(taken))
                if not len(indices):
                    break
            for index, frame in _decode_pass(self.path, indices, grabbed if indices is planned else [0]):
                read = np.append(read, index)
                self.sampled += 1
                if frame is None:
                    self.undecodable += 1
                    continue
                taken.append(index)
                yield index, frame
            if indices is planned:
                self.decoded = grabbed[0]
                self.shortfall = self.declared - self.decoded if self.decoded <= planned[-1] else 0
                if len(taken) == len(planned):
                    break
        if not taken:
            raise DecodeError(f"no frame decodes: the container lists {self.declared}, the stream ended after "
                              f"{self.decoded}" if self.decoded < self.declared else
                              f"none of the {self.sampled} sampled frames can be decoded")
