"""`fiagen generate --export`: materialise pseudo-fakes as PNG files for other trainers.

Item i of the export is manifest row i % len(split) at epoch i // len(split), so N may exceed the
split. Layouts (paths in the JSON and CSV are relative to the export folder):

png            <split>/{real,fake,mask}/<video>/<frame>_e<epoch>.png
deepfakebench  FIA-USA/{real,fake}/frames/<video>/<frame>_e<epoch>.png and FIA-USA/fake/masks/... (the
               frame path with frames -> masks, as DeepfakeBench looks masks up), plus FIA-USA.json:
               {"FIA-USA": {"FIA-USA-real" | "FIA-USA-fake": {<split>: {<video>: {"label", "frames"}}}}}
               (no compression level: DeepfakeBench keys that only for FF++); add
               "FIA-USA-real": 0, "FIA-USA-fake": 1 to its label_dict and point its rgb_dir here.
Both also write pairs.csv: one line per pair with what was drawn and the three paths.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
from torch.utils.data import Dataset

from fiagen.core.progress import stage_progress
from fiagen.generate.config import GenerateConfig, GenerateError
from fiagen.generate.dataset import FIAUSADataset
from fiagen.generate.loader import pair_loader

FORMATS = ("png", "deepfakebench")
DATASET_NAME = "FIA-USA"
LABELS = {"real": f"{DATASET_NAME}-real", "fake": f"{DATASET_NAME}-fake"}


@dataclass
class ExportReport:
    """What an export wrote: the folder, the pairs table, and the dataset JSON (deepfakebench only)."""

    dest: Path
    pairs: pd.DataFrame
    dataset_json: Path | None


def _paths(fmt: str, split: str, video: str, frame: int, epoch: int) -> dict[str, str]:
    name = f"{video}/{frame:06d}_e{epoch}.png"
    if fmt == "png":
        return {kind: f"{split}/{kind}/{name}" for kind in ("real", "fake", "mask")}
    root = DATASET_NAME
    return {"real": f"{root}/real/frames/{name}", "fake": f"{root}/fake/frames/{name}",
            "mask": f"{root}/fake/masks/{name}"}


def _write_png(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(str(path), image):
        raise GenerateError(f"could not write {path}")


class _Writer(Dataset):
    """Export item i -> writes its three PNGs, returns its pairs.csv line."""

    def __init__(self, ds: FIAUSADataset, dest: Path, fmt: str, n: int) -> None:
        self.ds, self.dest, self.fmt, self.n = ds, dest, fmt, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, Any]:
        index, epoch = i % len(self.ds), i // len(self.ds)
        self.ds.set_epoch(epoch)
        item = self.ds[index]
        meta = item["meta"]
        paths = _paths(self.fmt, self.ds.split, meta["video_id"], meta["frame_index"], meta["epoch"])
        for kind in ("real", "fake", "mask"):
            arr = (item[kind].clamp(0, 1) * 255).round().byte().numpy()
            _write_png(self.dest / paths[kind], arr[0] if kind == "mask" else arr.transpose(1, 2, 0))
        return {**meta, "split": self.ds.split, **paths}


def export_pairs(shards: Path, dest: Path, n: int, fmt: str = "png", split: str = "train", seed: int = 0,
                 size: int = 380, ablation: str = "full", augment: bool = False, loader_workers: int = 0,
                 quiet: bool = False, config: GenerateConfig | None = None, epochs: int | None = None) -> ExportReport:
    """Write n pairs of a split (training draws; the shared post-blend augmentations only with
    augment=True) in a layout of FORMATS; return what was written. `epochs`: the training run's length, for
    the mask warm-up."""
    if fmt not in FORMATS:
        raise GenerateError(f"unknown export format '{fmt}': expected one of {', '.join(FORMATS)}")
    if n < 1:
        raise GenerateError("export needs n >= 1")
    config = replace(config or GenerateConfig(), post_blend=augment)
    ds = FIAUSADataset(shards, split=split, size=size, seed=seed, train=True, ablation=ablation, config=config,
                       epochs=epochs)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    loader = pair_loader(_Writer(ds, dest, fmt, n), None, num_workers=loader_workers)
    rows = []
    with stage_progress(quiet, unit="pairs") as bar:
        task = bar.add_task("export", total=n, rate="")
        for row in loader:
            rows.append(row)
            bar.advance(task)
    pairs = pd.DataFrame(rows)
    pairs.to_csv(dest / "pairs.csv", index=False)
    dataset_json = None
    if fmt == "deepfakebench":
        dataset_json = dest / f"{DATASET_NAME}.json"
        dataset_json.write_text(json.dumps(_deepfakebench_index(pairs, split), indent=1) + "\n")
    return ExportReport(dest, pairs, dataset_json)


def _deepfakebench_index(pairs: pd.DataFrame, split: str) -> dict[str, Any]:
    """DeepfakeBench's nesting: dataset -> label -> split -> video -> {label, frames}."""
    index: dict[str, Any] = {DATASET_NAME: {}}
    for kind, label in LABELS.items():
        videos: dict[str, list[str]] = defaultdict(list)
        for video, path in zip(pairs["video_id"], pairs[kind], strict=False):
            videos[video].append(path)
        index[DATASET_NAME][label] = {split: {v: {"label": label, "frames": frames} for v, frames in videos.items()}}
    return index
