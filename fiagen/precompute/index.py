"""The frame manifest of a precompute output, built from its shards (the single source of truth);
its columns and reader: fiagen.manifests.manifest."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from fiagen.core.files import atomic_file
from fiagen.manifests.manifest import MANIFEST_COLUMNS, MANIFEST_NAME
from fiagen.precompute.shards import ShardReader


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
