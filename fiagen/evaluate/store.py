"""Score tables on disk, appended in chunks so an evaluation streams and resumes.

A scoring folder holds two parquet datasets (folders of part files that pandas reads as one table):
    frames.parquet/part-NNNNN.parquet  one row per face: video, frame, face, score, label, method, pool,
                                       family, x0, y0, x1, y1, det_score, finder
    videos.parquet/part-NNNNN.parquet  one row per video: video, path, label, method, pool, family,
                                       frames_sampled, frames_with_face, faces, score, status, reason,
                                       face_policy, frames_whole, face_passes (JSON), frames_undecodable
                                       (frame images, or video frames, of the unit that could not be
                                       decoded, skipped),
                                       frames_decoded, frames_shortfall (a video: the frames its stream
                                       delivered, and how many fewer than its container lists when it
                                       ended early; null in parts written before they were recorded)
A chunk is written frames part first, videos part second, each whole or not at all (fiagen.core.files); the
videos part commits the chunk. On open, frames parts without their videos part (a run killed between
the two writes) are removed, so the videos of that chunk are simply scored again. (Temporaries of a
killed run go when the next run takes the output folder, fiagen.core.outputs.hold_folder.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fiagen.core.files import atomic_file

FRAMES_NAME = "frames.parquet"
VIDEOS_NAME = "videos.parquet"
FRAME_SCHEMA = pa.schema([
    ("video", pa.string()), ("frame", pa.int64()), ("face", pa.int64()), ("score", pa.float32()),
    ("label", pa.int8()), ("method", pa.string()), ("pool", pa.string()), ("family", pa.string()),
    ("x0", pa.float32()), ("y0", pa.float32()), ("x1", pa.float32()), ("y1", pa.float32()),
    ("det_score", pa.float32()), ("finder", pa.string()),
])
VIDEO_SCHEMA = pa.schema([
    ("video", pa.string()), ("path", pa.string()), ("label", pa.int8()), ("method", pa.string()),
    ("pool", pa.string()), ("family", pa.string()), ("frames_sampled", pa.int64()),
    ("frames_with_face", pa.int64()), ("faces", pa.int64()), ("score", pa.float32()), ("status", pa.string()),
    ("reason", pa.string()), ("face_policy", pa.string()), ("frames_whole", pa.int64()),
    ("face_passes", pa.string()), ("frames_undecodable", pa.int64()), ("frames_decoded", pa.int64()),
    ("frames_shortfall", pa.int64()),
])


def _parts(folder: Path) -> dict[int, Path]:
    return {int(p.stem.split("-")[1]): p for p in folder.glob("part-*.parquet")} if folder.is_dir() else {}


def _write(table: pa.Table, path: Path) -> None:
    with atomic_file(path) as tmp:
        pq.write_table(table, tmp)


def _read(folder: Path, schema: pa.Schema) -> pd.DataFrame:
    parts = [p for _, p in sorted(_parts(folder).items())]
    if not parts:
        return schema.empty_table().to_pandas()
    return pa.concat_tables([pq.read_table(p, schema=schema) for p in parts]).to_pandas()


class ScoreStore:
    """The chunked score tables of one scoring run (one suite under one condition); other schemas (their
    per-unit key column named "video") for other chunked scores, e.g. fiagen.predict's."""

    def __init__(self, folder: Path, frame_schema: pa.Schema = FRAME_SCHEMA,
                 video_schema: pa.Schema = VIDEO_SCHEMA) -> None:
        self.folder = Path(folder)
        self.frame_schema, self.video_schema = frame_schema, video_schema
        self.frames_dir = self.folder / FRAMES_NAME
        self.videos_dir = self.folder / VIDEOS_NAME
        self.frames_dir.mkdir(parents=True, exist_ok=True)
        self.videos_dir.mkdir(parents=True, exist_ok=True)
        committed = _parts(self.videos_dir)
        for k, path in _parts(self.frames_dir).items():
            if k not in committed:
                path.unlink()
        self._next = max(committed, default=-1) + 1
        self._frames: list[dict[str, Any]] = []
        self._videos: list[dict[str, Any]] = []

    def done(self) -> set[str]:
        """Video ids whose scores are committed."""
        parts = _parts(self.videos_dir).values()
        return {v for p in parts for v in pq.read_table(p, columns=["video"]).column("video").to_pylist()}

    def add(self, frame_rows: list[dict[str, Any]], video_row: dict[str, Any]) -> None:
        """Buffer one video's rows (written at the next flush)."""
        self._frames += frame_rows
        self._videos.append(video_row)

    @property
    def pending(self) -> int:
        """Videos buffered and not yet written."""
        return len(self._videos)

    def flush(self) -> None:
        """Write the buffered videos as one chunk (frames part, then the videos part that commits it)."""
        if not self._videos:
            return
        name = f"part-{self._next:05d}.parquet"
        _write(pa.Table.from_pylist(self._frames, schema=self.frame_schema), self.frames_dir / name)
        _write(pa.Table.from_pylist(self._videos, schema=self.video_schema), self.videos_dir / name)
        self._next += 1
        self._frames, self._videos = [], []

    def frames(self) -> pd.DataFrame:
        """Every committed face row."""
        return _read(self.frames_dir, self.frame_schema)

    def videos(self) -> pd.DataFrame:
        """Every committed video row."""
        return _read(self.videos_dir, self.video_schema)


def read_scores(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(frames, videos) tables of a scoring folder, without touching it."""
    folder = Path(folder)
    return _read(folder / FRAMES_NAME, FRAME_SCHEMA), _read(folder / VIDEOS_NAME, VIDEO_SCHEMA)
