"""The evaluation's settings (EvalConfig, ExplainConfig) and results (SuiteResult, BenchResult), the output
names they share, and the stamp every table carries: the checkpoint (its info and sha256) and the scoring
settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fiagen.core.errors import FiagenError
from fiagen.core.settings import seed_setting, setting
from fiagen.evaluate.perturb import LEVELS, parse_levels, parse_perturb

if TYPE_CHECKING:  # the command line reads EvalConfig; pandas and Ray load when a stage runs
    import pandas as pd

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

    suites: tuple[str, ...] = setting(("ff++",), "The suites (see --suite).", option=False)
    root: str | None = setting(None, "Dataset folder, or a folder holding the datasets (FaceForensics++/, "
                                     "Celeb-DF-v2/, DF40/, ...). Default: $FIAGEN_DATA.", folder=True)
    ckpt: str | None = setting(None, "Detector checkpoint. Default: the newest runs/*/best.pt.", file=True)
    out: str | None = setting(None, "Output folder (one subfolder per suite). Default: <checkpoint folder>/eval.",
                              output=True)
    frames: int = setting(32, "Frames per video, spread uniformly.", min=1)
    level: str = setting("auto", "Level of AP, EER and ACC (both AUCs are always given). auto: video for FF++, CDF, "
                                 "DFD, DFDC(P) and folders; frame for DF40, DiFF and DeepfakeBench JSONs.",
                         choices=("auto", "frame", "video"))
    batch_size: int = setting(64, "Crops per forward pass.", min=1)
    concurrency: int | None = setting(None, "Ray tasks at once (decode/detect). Default: all cores (local) or all "
                                            "cluster CPUs (--address).", min=1, alias="--workers")
    address: str | None = setting(None, "Ray cluster address ('auto' on a cluster node, or ray://HOST:PORT). "
                                        "Default: a local Ray.")
    perturb: tuple[str, ...] = setting((), "Also score under perturbations (comma list): blur, block, contrast, "
                                           "jpeg, saturation, noise, pixelate (DeeperForensics levels) -> R_AUC "
                                           "table and plot.", parse=parse_perturb)
    levels: tuple[int, ...] = setting(LEVELS, "Perturbation levels: a range 1-5 or a list 1,3,5.", parse=parse_levels)
    seed: int = seed_setting("the perturbations' random parts (block positions, noise) and a pseudo: suite's "
                             "pairs (0 gives a seed-0 run's val pairs)")
    limit: int | None = setting(None, "Only the first N videos of each suite (pseudo: suites: N frames) (quick "
                                      "tries).", min=1)
    chunk: int = setting(64, "Videos per appended score chunk (resume granularity).", min=1)
    min_face_score: float = setting(0.5, "Face detector confidence threshold.", min=0, max=1)
    face: str = setting("auto", "What a frame's faces are: detect (found by the face finder; none: the unit scores "
                                "0.5), detect-or-whole (found, else the whole image is the face), whole (the whole "
                                "image, no detection). auto: detect-or-whole for the images and frame folders of "
                                "DF40, DiFF and DeepfakeBench (face crops), detect for everything else.",
                        choices=("auto", "detect", "detect-or-whole", "whole"))
    allow_outside_root: bool = setting(False, "Open the paths a suite's list or index file names outside the suite's "
                                              "root (its folder, or the list file's folder); without it they are "
                                              "refused, counted as paths_refused and listed in report.json.",
                                       flag=True)
    skip_missing_suites: bool = setting(False, "Skip the suites whose data is not found (bench --suite all).",
                                        option=False)
    overwrite: bool = setting(False, "Score again where the output holds scores made with other settings.",
                              flag=True)
    quiet: bool = setting(False, "No progress bar.", flag=True)

@dataclass(frozen=True)
class ExplainConfig:
    """Every setting of `fiagen explain`."""

    ckpt: str | None = setting(None, "Detector checkpoint.", file=True, required=True)
    input: str | None = setting(None, "A video or an image.", file=True, required=True)
    out: str | None = setting(None, "Folder for the overlays and explain.json.", output=True, required=True)
    frames: int = setting(8, "Frames of a video to explain, spread uniformly.", min=1)
    layer: str | None = setting(None, "Module name of the target layer. Default: the final feature map (last "
                                      "module with a spatial output).")
    min_face_score: float = setting(0.5, "Face detector confidence threshold.", min=0, max=1)


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
    """Every suite evaluated, the suites skipped because their data was not found and those where every
    video failed (each with the reason), and the combined summary table."""

    out: Path
    suites: list[SuiteResult] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    summary: pd.DataFrame | None = None


def table_stamp(cfg: EvalConfig, info: dict[str, Any], level: str, condition: str) -> dict[str, Any]:
    """What a table of scores depends on: the level, frames and aggregation, the condition, the checkpoint."""
    from fiagen.evaluate.scoring import AGGREGATION

    return {"level": level, "frames_per_video": cfg.frames, "aggregation": AGGREGATION,
            "condition": condition, "checkpoint": info["path"], "training_data": info.get("train_data"),
            "epoch": info.get("epoch"), "val_auc": info.get("val_auc"), "backbone": info.get("backbone"),
            "weights": info.get("weights"),
            "input_size": info.get("size")}
