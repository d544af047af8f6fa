"""The frame manifest (`out/manifest.parquet`) and the run report (`out/run.json`) of precompute.

Manifest columns, one row per stored frame:
    shard (path relative to the output folder), row (index in the shard), split, video_id,
    frame_index, n_faces, det_score, crop_box [x0, y0, x1, y1] (source-frame pixels), face_box
    [x0, y0, x1, y1] (crop pixels), frame_h, frame_w, crop_h, crop_w, ae_id, sr_id, ae_ok, sr_ok,
    shard_sha256.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from fiagen.files import atomic_file, write_text
from fiagen.pipeline.shards import ShardError, ShardReader

MANIFEST_NAME = "manifest.parquet"
RUN_NAME = "run.json"
MANIFEST_COLUMNS = (
    "shard", "row", "split", "video_id", "frame_index", "n_faces", "det_score", "crop_box", "face_box",
    "frame_h", "frame_w", "crop_h", "crop_w", "ae_id", "sr_id", "ae_ok", "sr_ok", "shard_sha256",
)


def shard_rows(out: Path, relpath: str, sha256: str) -> pd.DataFrame:
    """The manifest rows of one shard, read from the shard itself (the single source of truth)."""
    reader = ShardReader(Path(out) / relpath)
    try:
        t = reader.table()
    finally:
        reader.close()
    n = len(t["frame_index"])
    crop = t["crop_box"].astype(np.int64)
    return pd.DataFrame({
        "shard": [relpath] * n,
        "row": np.arange(n, dtype=np.int64),
        "split": [reader.attrs["split"]] * n,
        "video_id": t["video_id"].astype(str),
        "frame_index": t["frame_index"].astype(np.int64),
        "n_faces": t["n_faces"].astype(np.int64),
        "det_score": t["det_score"].astype(np.float32),
        "crop_box": list(crop),
        "face_box": list(t["face_box"].astype(np.float32)),
        "frame_h": t["frame_size"][:, 0].astype(np.int64),
        "frame_w": t["frame_size"][:, 1].astype(np.int64),
        "crop_h": (crop[:, 3] - crop[:, 1]) if n else np.zeros(0, np.int64),
        "crop_w": (crop[:, 2] - crop[:, 0]) if n else np.zeros(0, np.int64),
        "ae_id": [reader.attrs["ae_id"]] * n,
        "sr_id": [reader.attrs["sr_id"]] * n,
        "ae_ok": t["ae_ok"].astype(bool),
        "sr_ok": t["sr_ok"].astype(bool),
        "shard_sha256": [sha256] * n,
    }, columns=list(MANIFEST_COLUMNS))


def write_manifest(out: Path, shards: Iterable[tuple[str, str]]) -> pd.DataFrame:
    """Build `out/manifest.parquet` from (relpath, sha256) of every shard, in order; return it."""
    frames = [shard_rows(out, rel, sha) for rel, sha in shards]
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(MANIFEST_COLUMNS))
    with atomic_file(Path(out) / MANIFEST_NAME) as tmp:
        table.to_parquet(tmp, index=False)
    return table


def read_manifest(out: Path) -> pd.DataFrame:
    """The manifest of a precompute output folder; ShardError with one line when there is none."""
    path = Path(out) / MANIFEST_NAME
    if not path.exists():
        raise ShardError(f"{out} has no {MANIFEST_NAME}: run `fiagen precompute --out {out}` first")
    return pd.read_parquet(path)


def write_run_report(out: Path, report: dict[str, Any]) -> None:
    write_text(Path(out) / RUN_NAME, json.dumps(report, indent=2, sort_keys=False, default=str) + "\n")


def read_run_report(out: Path) -> dict[str, Any]:
    path = Path(out) / RUN_NAME
    if not path.exists():
        raise ShardError(f"{out} has no {RUN_NAME}: run `fiagen precompute --out {out}` first")
    return json.loads(path.read_text())
