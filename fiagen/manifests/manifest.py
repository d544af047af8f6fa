"""The frame manifest (`out/manifest.parquet`) and the run report (`out/run.json`) of precompute (the
manifest is written from the shards by fiagen.precompute.index).

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

from fiagen.core.errors import ShardError
from fiagen.core.files import write_text

MANIFEST_NAME = "manifest.parquet"
RUN_NAME = "run.json"
MANIFEST_COLUMNS = (
    "shard", "row", "split", "video_id", "frame_index", "n_faces", "det_score", "crop_box", "face_box",
    "frame_h", "frame_w", "crop_h", "crop_w", "ae_id", "sr_id", "ae_ok", "sr_ok", "shard_sha256",
)


def not_precomputed(out: Path, lacks: str) -> str:
    """The line for a folder given as a precompute output that is not one; the advice never writes into it
    (it may be a dataset: precompute reads a dataset and writes into a new folder)."""
    dataset = any((out / marker).exists() for marker in ("original_sequences", "manipulated_sequences"))
    kind = "a dataset folder, not a precompute output" if dataset else "not a precompute output"
    return (f"{out} has no {lacks}: it is {kind}; make one with `fiagen precompute --src ... --out NEW_FOLDER` "
            f"(a new folder, never the dataset's) and pass NEW_FOLDER")


def check_precompute_output(out: str | Path | None, what: str = "--shards") -> Path:
    """`out` if it is a precompute output (its manifest is there): one error line otherwise, before any work."""
    path = Path(out or "")
    if not path.is_dir():
        raise ShardError(f"{path} has no {MANIFEST_NAME} ({'a file' if path.exists() else 'no such folder'}): {what} "
                         f"takes the --out folder of a finished `fiagen precompute`")
    if not (path / MANIFEST_NAME).is_file():
        raise ShardError(not_precomputed(path, MANIFEST_NAME))
    return path


def read_manifest(out: Path) -> pd.DataFrame:
    """The manifest of a precompute output folder; ShardError with one line when there is none."""
    path = Path(out) / MANIFEST_NAME
    if not path.exists():
        raise ShardError(not_precomputed(Path(out), MANIFEST_NAME))
    return pd.read_parquet(path)


def write_run_report(out: Path, report: dict[str, Any]) -> None:
    """Write OUT/run.json (replacing it atomically)."""
    write_text(Path(out) / RUN_NAME, json.dumps(report, indent=2, sort_keys=False, default=str) + "\n")


def read_run_report(out: Path) -> dict[str, Any]:
    """OUT/run.json; ShardError (one line) when OUT holds none."""
    path = Path(out) / RUN_NAME
    if not path.exists():
        raise ShardError(not_precomputed(Path(out), RUN_NAME))
    return json.loads(path.read_text())
