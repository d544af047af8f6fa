"""`fiagen preview`: a labelled PNG grid of generated pairs, real | fake | mask per item."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from fiagen.core.media import sample_indices
from fiagen.generate.config import GenerateConfig, GenerateError
from fiagen.generate.dataset import FIAUSADataset

LABEL_H = 18
FONT = cv2.FONT_HERSHEY_SIMPLEX


def _image(t: torch.Tensor) -> np.ndarray:
    arr = (t.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    return np.repeat(arr, 3, axis=0).transpose(1, 2, 0) if arr.shape[0] == 1 else arr.transpose(1, 2, 0)


def _label(width: int, text: str) -> np.ndarray:
    bar = np.full((LABEL_H, width, 3), 255, np.uint8)
    scale = 0.4
    while scale > 0.2 and cv2.getTextSize(text, FONT, scale, 1)[0][0] > width - 4:
        scale -= 0.05
    cv2.putText(bar, text, (2, LABEL_H - 5), FONT, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return bar


def triplet(item: dict, tile: int) -> np.ndarray:
    """One item as real | fake | mask tiles with their labels and a line of what was drawn."""
    tiles = []
    for name in ("real", "fake", "mask"):
        img = cv2.resize(_image(item[name]), (tile, tile), interpolation=cv2.INTER_AREA)
        tiles.append(np.vstack([_label(tile, name), img]))
    m = item["meta"]
    text = (f"{m['video_id']}:{m['frame_index']} {m['mask_type']} {m['recon']} r={m['blend_ratio']:g} "
            f"T={m['t_side']}")
    row = np.hstack(tiles)
    return np.vstack([row, _label(row.shape[1], text)])


def preview_grid(shards: Path, out: Path, n: int = 16, split: str = "train", seed: int = 0, epoch: int = 0,
                 size: int = 380, tile: int = 192, columns: int = 4, train: bool = True, ablation: str = "full",
                 config: GenerateConfig | None = None, epochs: int | None = None) -> Path:
    """Write a PNG grid of n pairs spread over the split (columns triplets per row); return its path. `epochs`:
    the training run's length, for the mask warm-up."""
    if n < 1:
        raise GenerateError("preview needs n >= 1")
    ds = FIAUSADataset(shards, split=split, size=size, seed=seed, train=train, ablation=ablation, config=config,
                       epochs=epochs)
    ds.set_epoch(epoch)
    cells = [triplet(ds[i], tile) for i in sample_indices(len(ds), n).tolist()]
    blank = np.full_like(cells[0], 255)
    rows = []
    for start in range(0, len(cells), columns):
        row = cells[start:start + columns]
        row += [blank] * (columns - len(row)) if len(cells) > columns else []
        rows.append(np.hstack([np.pad(c, ((2, 2), (2, 2), (0, 0)), constant_values=128) for c in row]))
    grid = np.vstack(rows)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR)):
        raise GenerateError(f"could not write {out} (is the extension .png or .jpg and the folder writable?)")
    return out
