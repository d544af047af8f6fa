"""Writing HDF5 shards (the format: fiagen.precompute.shards): one shard atomically with its checksum sidecar,
or the record of a shard whose videos gave no frame.

Rows are written as they come, straight into the shard's temporary file: `write_shard` takes any iterable
of rows (precompute's writer fetches a shard's videos one at a time), keeps only each row's geometry
(about 8 kB) and holds neither the file's bytes nor rows already written. A writer's memory is thus the
rows its caller holds at once (one video's, in precompute) plus about 20 MB, whatever the shard's size
(`benchmarks/bench_shard_writer.py`).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from fiagen.core.files import atomic_file, sha256_file, write_text
from fiagen.core.version import __version__
from fiagen.precompute.shards import (
    GZIP_LEVEL,
    IMAGE_KINDS,
    SCHEMA_VERSION,
    FrameRecord,
    ShardContent,
    checksum_path,
    empty_record_path,
    row_key,
)


class _Sink:
    """The file HDF5 writes a shard into (h5py's file-object driver). The first write that fails (a full
    disk, a file size limit, an I/O error) is kept and every later write is dropped, unreported: HDF5's
    error path for a write that fails in its flush on close crashed the process (SIGSEGV in
    H5D__flush_all_cb), so HDF5 never sees one. The writer then adds no more rows, lets HDF5 close, and
    raises the kept error (a full disk: one DiskFullError, the temporary removed)."""

    def __init__(self, path: Path) -> None:
        self.fh = open(path, "w+b", buffering=0)  # noqa: SIM115 (closed by close())
        self.error: OSError | None = None

    def seek(self, pos: int, whence: int = 0) -> int:
        return self.fh.seek(pos, whence)

    def tell(self) -> int:
        return self.fh.tell()

    def read(self, size: int = -1) -> bytes:
        return self.fh.read(size) or b""

    def readinto(self, buffer: Any) -> int:
        return self.fh.readinto(buffer) or 0

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        done = 0
        while self.error is None and done < len(view):
            try:
                done += self.fh.write(view[done:]) or 0
            except OSError as err:
                self.error = err
        return len(view)

    def truncate(self, size: int | None = None) -> int:
        if self.error is None:
            try:
                return self.fh.truncate(size)
            except OSError as err:
                self.error = err
        return size or 0

    def flush(self) -> None:
        """Nothing to do: writes are unbuffered, and atomic_file syncs the file."""

    def close(self) -> None:
        self.fh.close()


def _image_dataset(group: h5py.Group, row: int, array: np.ndarray, compression: str) -> None:
    array = np.ascontiguousarray(array, dtype=np.uint8)
    gzip = compression == "gzip"
    group.create_dataset(row_key(row), data=array, chunks=array.shape, track_times=False,
                         compression="gzip" if gzip else None, compression_opts=GZIP_LEVEL if gzip else None)


def write_shard(path: Path, content: ShardContent, rows: Iterable[FrameRecord] | None = None) -> str:
    """Write a shard atomically (fiagen.core.files.atomic_file) and its checksum sidecar; return the sha256.

    The rows are `content.records`, or `rows`, consumed once as they come; the attributes are taken from
    `content` after the last row (an iterable may fill its failures and counts as it goes). When no row
    comes, the shard is recorded by write_empty_shard instead and "" returned. A write that fails is
    raised once HDF5 has closed the file (see _Sink); a full disk is one DiskFullError, nothing left."""
    path = Path(path)
    rows = iter(content.records if rows is None else rows)
    first = next(rows, None)
    if first is None:
        return write_empty_shard(path, content)
    with atomic_file(path) as tmp:
        sink = _Sink(tmp)
        try:
            with h5py.File(sink, "w", libver="latest") as f:
                _write_hdf5(f, content, itertools.chain([first], rows), sink)
        except Exception:
            if sink.error is None:
                raise  # else HDF5 stumbled on the writes dropped after the failed one: the failure is that one
        finally:
            sink.close()
        if sink.error is not None:
            raise sink.error
        digest = sha256_file(tmp)
    write_text(checksum_path(path), f"{digest}  {path.name}\n")
    empty_record_path(path).unlink(missing_ok=True)
    return digest


def _write_hdf5(f: h5py.File, content: ShardContent, rows: Iterator[FrameRecord], sink: _Sink) -> None:
    """A shard's HDF5 file: each row's images as it comes (until a write fails), then the per-row
    columns and the attributes."""
    present = {"image": True, "ae": content.ae_id != "none", "sr": content.sr_id != "none"}
    groups = {kind: f.create_group(kind) for kind in IMAGE_KINDS if present[kind]}
    kept: list[dict[str, Any]] = []  # each row without its images
    for row, rec in enumerate(rows):
        if sink.error is not None:
            return
        _image_dataset(groups["image"], row, rec.image, content.compression)
        for kind in ("ae", "sr"):
            variant = getattr(rec, kind)
            if variant is None:
                continue
            if variant.shape != rec.image.shape:
                raise ValueError(f"{kind} of {rec.video_id}:{rec.frame_index} has shape {variant.shape}, "
                                 f"the frame has {rec.image.shape}")
            _image_dataset(groups[kind], row, variant, content.compression)
        kept.append({**{name: getattr(rec, name) for name in _GEOMETRY}, "ae_ok": rec.ae is not None,
                     "sr_ok": rec.sr is not None})
    if sink.error is not None:
        return
    n = len(kept)
    for name, (dtype, shape) in _COLUMNS.items():
        values = np.array([r[name] for r in kept], dtype=dtype).reshape(n, *shape)
        f.create_dataset(name, data=values, dtype=h5py.string_dtype() if dtype is object else values.dtype,
                         track_times=False)
    f.attrs.update(schema_version=SCHEMA_VERSION, split=content.split, shard_id=content.shard_id,
                   fiagen_version=__version__, ae_id=content.ae_id, sr_id=content.sr_id,
                   compression=content.compression, videos=json.dumps(content.videos),
                   failures=json.dumps(content.failures),
                   video_stats=json.dumps(content.video_stats, sort_keys=True))


_COLUMNS: dict[str, tuple[Any, tuple[int, ...]]] = {  # the per-row datasets: dtype, shape of one row
    "video_id": (object, ()), "frame_index": (np.int64, ()), "n_faces": (np.int16, ()),
    "det_score": (np.float32, ()), "crop_box": (np.int32, (4,)), "frame_size": (np.int32, (2,)),
    "face_box": (np.float32, (4,)), "landmarks81": (np.float32, (81, 2)), "mesh478": (np.float32, (478, 3)),
    "ae_ok": (bool, ()), "sr_ok": (bool, ()),
}
_GEOMETRY = tuple(name for name in _COLUMNS if not name.endswith("_ok"))


def write_empty_shard(path: Path, content: ShardContent) -> str:
    """Record a shard none of whose videos gave a frame: its attributes (the failures, the videos'
    counts) as JSON at empty_record_path, and no HDF5 file (an earlier one and its sidecar are removed),
    so a rerun knows it is done and no 0-row shard lies among the shards. Returns "" (no checksum)."""
    path = Path(path)
    meta = {"schema_version": SCHEMA_VERSION, "split": content.split, "shard_id": content.shard_id,
            "fiagen_version": __version__, "ae_id": content.ae_id, "sr_id": content.sr_id,
            "compression": content.compression, "videos": content.videos, "failures": content.failures,
            "video_stats": content.video_stats, "n_rows": 0}
    write_text(empty_record_path(path), json.dumps(meta, indent=1, sort_keys=True) + "\n")
    for stale in (checksum_path(path), path):
        stale.unlink(missing_ok=True)
    return ""
