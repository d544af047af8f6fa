"""HDF5 shards: the on-disk format between precompute and every later stage.

Schema (version 1), one file per shard, `out/shards/<split>/<shard_id>.h5`; a shard none of whose videos
gave a frame has no HDF5 file (no 0-row shards) but its record `<shard_id>.h5.empty.json`: the same file
attributes as JSON, with n_rows 0 (write_empty_shard; read_shard_meta reads either):

file attributes
    schema_version (int), split, shard_id, fiagen_version, ae_id, sr_id (reconstructor ids, "none"
    when absent), compression ("none" or "gzip"), videos (JSON list of the planned video ids), failures (JSON list of
    {"video_id", "path", "reason"}: a failed video; entries that also have "frame_index" and "stage" ("ae" or
    "sr") are single frames a reconstructor failed on, whose ae_ok/sr_ok is False), video_stats (JSON
    {video_id: {"frames_sampled", "frames_stored", "frames_no_face", "frames_no_landmarks", "frames_decoded",
    "frames_shortfall"}}: the last two, where recorded, say how many frames the stream delivered and how many
    fewer than its container lists when it ended early).
per-row datasets (N rows, one per stored frame, in video then frame order)
    video_id (N,) str; frame_index (N,) int64; n_faces (N,) int16; det_score (N,) float32;
    crop_box (N, 4) int32: x0, y0, x1, y1 of the crop in the source frame (its offset is x0, y0);
    frame_size (N, 2) int32: source frame height, width;
    face_box (N, 4) float32: detector box x0, y0, x1, y1 in crop pixels;
    landmarks81 (N, 81, 2) float32 and mesh478 (N, 478, 3) float32 in crop pixels
    (see fiagen.precompute.landmarks for the layouts);
    ae_ok, sr_ok (N,) bool: the reconstruction of that row is present and valid.
images (ragged storage: one dataset per row, one chunk per dataset, gzip, lossless)
    image/<row>, ae/<row>, sr/<row>: uint8 (H, W, 3) RGB, the same H, W for one row, stored raw or
    gzip-compressed (the `compression` setting: raw reads ~10x faster, gzip is ~3x smaller); ae/ and sr/
    exist only when a reconstructor ran; a row whose reconstruction failed has ae_ok/sr_ok False
    and no dataset under that group.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from fiagen.core.errors import ShardError
from fiagen.core.files import sha256_file

SCHEMA_VERSION = 1
IMAGE_KINDS = ("image", "ae", "sr")
GZIP_LEVEL = 1


@dataclass
class FrameRecord:
    """Everything stored for one frame: the face-context crop and its geometry in crop pixels."""

    video_id: str
    frame_index: int
    n_faces: int
    det_score: float
    crop_box: tuple[int, int, int, int]
    frame_size: tuple[int, int]
    face_box: np.ndarray  # (4,)
    landmarks81: np.ndarray  # (81, 2)
    mesh478: np.ndarray  # (478, 3)
    image: np.ndarray  # (H, W, 3) uint8 RGB
    ae: np.ndarray | None = None
    sr: np.ndarray | None = None


@dataclass
class ShardContent:
    """The rows of one shard plus what the shard says about the videos planned into it."""

    split: str
    shard_id: str
    videos: list[str]
    records: list[FrameRecord] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)
    video_stats: dict[str, dict[str, int]] = field(default_factory=dict)
    ae_id: str = "none"
    sr_id: str = "none"
    compression: str = "none"


def shard_name(index: int) -> str:
    """The file stem of the index-th shard of a split."""
    return f"{index:05d}"


def row_key(row: int) -> str:
    """The key of a row in a shard (zero-padded, so keys sort as rows do)."""
    return f"{row:06d}"


def checksum_path(path: Path) -> Path:
    """The sidecar that holds a complete shard's sha256."""
    return path.with_suffix(path.suffix + ".sha256")


def recorded_checksum(path: Path) -> str | None:
    """The sha256 its sidecar records for a shard, or None when there is no sidecar."""
    side = checksum_path(Path(path))
    if not side.exists():
        return None
    text = side.read_text().split()
    return text[0] if text else None


def shard_is_complete(path: Path) -> bool:
    """True when the shard exists, has a checksum sidecar, and its bytes match it."""
    path = Path(path)
    expected = recorded_checksum(path)
    return path.exists() and expected is not None and sha256_file(path) == expected


PER_ROW_FIELDS = ("video_id", "frame_index", "n_faces", "det_score", "crop_box", "frame_size", "face_box",
                  "ae_ok", "sr_ok")


class ShardReader:
    """Random access to one shard's rows. Opens the file lazily, so it can be made before a fork and
    used in DataLoader workers (each process opens its own handle)."""

    def __init__(self, path: Path | str, expected_sha256: str | None = None) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise ShardError(f"shard not found: {self.path}")
        if expected_sha256 is not None and sha256_file(self.path) != expected_sha256:
            raise ShardError(f"shard {self.path} does not match its recorded sha256 (changed or corrupt)")
        self._file: h5py.File | None = None
        self._pid: int | None = None
        with h5py.File(self.path, "r") as f:
            version = int(f.attrs.get("schema_version", -1))
            if version != SCHEMA_VERSION:
                raise ShardError(f"shard {self.path} has schema version {version}, this fiagen reads {SCHEMA_VERSION}")
            self.attrs: dict[str, Any] = {k: _attr(v) for k, v in f.attrs.items()}
            self.n_rows = int(f["frame_index"].shape[0])
            self.kinds = tuple(k for k in IMAGE_KINDS if k in f)

    def __len__(self) -> int:
        return self.n_rows

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_file"] = None
        state["_pid"] = None
        return state

    @property
    def file(self) -> h5py.File:
        if self._file is None or self._pid != os.getpid():
            self._file = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._file

    def close(self) -> None:
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file = None

    def _check_row(self, row: int) -> None:
        if not 0 <= row < self.n_rows:
            raise ShardError(f"row {row} is outside shard {self.path} ({self.n_rows} rows)")

    def image(self, row: int, kind: str = "image") -> np.ndarray:
        """The (H, W, 3) uint8 RGB crop of a row; kind is image, ae or sr."""
        self._check_row(row)
        if kind not in self.kinds:
            raise ShardError(f"shard {self.path} holds no '{kind}' images (it has {', '.join(self.kinds)})")
        group = self.file[kind]
        key = row_key(row)
        if key not in group:
            raise ShardError(f"row {row} of {self.path} has no '{kind}' image (its reconstruction failed)")
        return group[key][()]

    def row(self, row: int) -> dict[str, Any]:
        """A row's geometry and ids (everything but the images)."""
        self._check_row(row)
        f = self.file
        out = {name: f[name][row] for name in PER_ROW_FIELDS}
        out["video_id"] = _attr(out["video_id"])
        out["landmarks81"] = f["landmarks81"][row]
        out["mesh478"] = f["mesh478"][row]
        return out

    def table(self) -> dict[str, np.ndarray]:
        """Every per-row field as whole arrays (no images), for manifests."""
        f = self.file
        out = {name: f[name][()] for name in PER_ROW_FIELDS}
        out["video_id"] = np.array([_attr(v) for v in out["video_id"]], dtype=object)
        return out


def _attr(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def empty_record_path(path: Path) -> Path:
    """Where the record of a shard with no rows (every video of it failed) lies: `<id>.h5.empty.json`,
    written instead of an HDF5 file."""
    return Path(path).with_suffix(Path(path).suffix + ".empty.json")


def read_shard_meta(path: Path) -> dict[str, Any]:
    """A shard's attributes with the JSON ones decoded (a shard without rows: its empty record's)."""
    if not Path(path).exists() and empty_record_path(path).exists():
        return json.loads(empty_record_path(path).read_text())
    reader = ShardReader(path)
    meta = dict(reader.attrs)
    for key in ("videos", "failures", "video_stats"):
        meta[key] = json.loads(meta[key])
    meta["n_rows"] = reader.n_rows
    return meta

