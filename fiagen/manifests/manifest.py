"""The frame manifest (`out/manifest.parquet`) and the run report (`out/run.json`) of precompute (the
manifest is written from the shards by fiagen.pipeline.index).

Manifest columns, one row per stored frame:
    shard (path relative to the output folder), row (index in the shard), split, video_id,
    frame_index, n_faces, det_score, crop_box [x0, y0, x1, y1] (source-frame pixels), face_box
    [x0, y0, x1, y1] (crop pixels), frame_h, frame_w, crop_h, crop_w, ae_id, sr_id, ae_ok, sr_ok,
    shard_sha256.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from fiagen.errors import ShardError
from fiagen.files import write_text

MANIFEST_NAME = "manifest.parquet"
RUN_NAME = "run.json"
MANIFEST_COLUMNS = (
    "shard", "row", "split", "video_id", "frame_index", "n_faces", "det_score", "crop_box", "face_box",
    "frame_h", "frame_w", "crop_h", "crop_w", "ae_id", "sr_id", "ae_ok", "sr_ok", "shard_sha256",
)


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
