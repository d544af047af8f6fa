"""The evaluation's settings (EvalConfig) and results (SuiteResult, BenchResult), the output names they
share, and the stamp every table carries: the checkpoint (its info and sha256) and the scoring settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from fiagen.errors import FiagenError
from fiagen.evaluate.perturb import LEVELS
from fiagen.evaluate.scoring import AGGREGATION
from fiagen.files import sha256_file

REPORT_NAME = "report.json"
FLUSH_SECONDS = 60.0
# Unlisted files named in report.json (all are counted) and on the terminal.
UNLISTED_SHOWN = (20, 3)
# The stamp entries that differ per suite (face mode, whole-image units).
FACE_STAMP = ("face", "whole_image_units")


class EvalMismatch(FiagenError):
    """Scores on disk made with other settings; the message says how to proceed."""


@dataclass(frozen=True)
class EvalConfig:
    """Every setting of `fiagen evaluate` / `fiagen bench` (see their --help)."""

    suites: tuple[str, ...] = ("ff++",)
    root: str | None = None
    ckpt: str | None = None
    out: str | None = None
    frames: int = 32
    level: str = "auto"
    batch_size: int = 64
    workers: int | None = None
    address: str | None = None
    perturb: tuple[str, ...] = ()
    levels: tuple[int, ...] = LEVELS
    seed: int = 0
    limit: int | None = None
    chunk: int = 64
    min_face_score: float = 0.5
    face: str = "auto"
    skip_missing_suites: bool = False
    overwrite: bool = False
    quiet: bool = False


@dataclass
class SuiteResult:
    """One suite's outcome: its folder, per-method table, stamp, report, and robustness table if asked."""

    name: str
    folder: Path
    table: pd.DataFrame
    stamp: dict[str, Any]
    report: dict[str, Any]
    robustness: pd.DataFrame | None = None


@dataclass
class BenchResult:
    """Every suite evaluated, the suites skipped (with the reason), and the combined summary table."""

    out: Path
    suites: list[SuiteResult] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    summary: pd.DataFrame | None = None


def checkpoint_info(path: Path) -> dict[str, Any]:
    """The checkpoint's info (size, backbone, train_data, epoch, val_auc) and its sha256."""
    from fiagen.train.checkpoint import read_checkpoint

    info = dict(read_checkpoint(path)["info"])
    return {**info, "path": str(path), "sha256": sha256_file(path)}


def table_stamp(cfg: EvalConfig, info: dict[str, Any], level: str, condition: str) -> dict[str, Any]:
    """What a table of scores depends on: the level, frames and aggregation, the condition, the checkpoint."""
    return {"level": level, "frames_per_video": cfg.frames, "aggregation": AGGREGATION,
            "condition": condition, "checkpoint": info["path"], "training_data": info.get("train_data"),
            "epoch": info.get("epoch"), "val_auc": info.get("val_auc"), "backbone": info.get("backbone"),
            "weights": info.get("weights"),
            "input_size": info.get("size")}
