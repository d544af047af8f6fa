"""The torch Dataset of FIA-USA pairs over a precompute output (shards + manifest).

    ds = FIAUSADataset(out_dir, split="train", size=380, seed=0, train=True, ablation="full")
    ds.set_epoch(epoch)
    ds[i] -> {"real": (3, S, S) float32 in [0, 1], "fake": same, "mask": (1, S, S) float32 in [0, 1],
              "meta": {video_id, frame_index, index, epoch, mask_type, recon, blend_ratio, t_side}}

Item i is the i-th manifest row of the split; its pair is a pure function of (seed, i, epoch), so it
is the same bytes in any process and with any number of DataLoader workers. set_epoch changes the
draws; with `persistent_workers=True` the workers keep the epoch they were started with, so either
call set_epoch before each epoch's iterator is made without persistent workers (the default), or
read the dataset through `fiagen.generate.loader.AtEpoch`, whose (epoch, index) keys carry the
epoch to every worker (the trainer does). With the mask warm-up (`generate.micro_masks_from`), `epochs`
is the run's length, and the epochs before its switch draw the macro masks only (Recipe.at_epoch); a pair
after the switch is the one the same recipe without warm-up draws. Validation (train=False) uses the 12.5%
evaluation crop, no shared augmentations, all the recipe's masks, and epoch 0 always. HDF5 files are opened
lazily per process, at most MAX_OPEN_SHARDS at once (the least recently read is closed, and reopened when
read again), so a process's open files do not grow with the number of shards; use `worker_init` as the
DataLoader's worker_init_fn to keep each worker on one thread.

"real" is the untouched (outside) side of the blend: where the mask is 0 it equals the fake before
the shared augmentations. The mask went through the images' crop, resize and flip, and is 0 under a
cut-out (where real and fake are both blanked). "recon" is the variant actually used: a row without the drawn AE/SR
reconstruction uses the original (see `recon_coverage`).
"""

from __future__ import annotations

import ctypes
import signal
import warnings
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from fiagen.generate.augment import NoiseBank
from fiagen.generate.config import ABLATIONS, GenerateConfig, GenerateError, Recipe, resolve_recipe
from fiagen.generate.draws import sample_streams
from fiagen.generate.masks import FaceParts
from fiagen.generate.pair import Frame, Pair, Timer, make_pair, untimed
from fiagen.manifests.manifest import read_manifest
from fiagen.precompute.landmarks import LEFT_EYE_MESH, MOUTH_MESH, RIGHT_EYE_MESH
from fiagen.precompute.shards import ShardError, ShardReader, row_key

__all__ = ["ABLATIONS", "FIAUSADataset", "GenerateConfig", "GenerateError", "worker_init"]


# glibc mallopt parameters: allocations below the mmap threshold come from the heap, and the heap keeps
# up to the trim threshold of freed memory instead of returning it to the OS.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def worker_init(worker_id: int = 0) -> None:
    """DataLoader worker_init_fn: one thread for torch and OpenCV, and (glibc only) freed buffers kept
    for reuse; otherwise each pair's few-MB outputs come from fresh pages, ~1000 page faults per pair
    at 380 px, about a fifth of its time. SIGINT and SIGTERM are ignored: a Ctrl-C or a scheduler's
    signal to the process group stops the run at its next step (fiagen.core.stop), which then ends the workers."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(_M_MMAP_THRESHOLD, 16 << 20)
    libc.mallopt(_M_TRIM_THRESHOLD, 256 << 20)


REGION_MESH = LEFT_EYE_MESH + RIGHT_EYE_MESH + MOUTH_MESH
MAX_OPEN_SHARDS = 128  # shard files one process keeps open (FF++ c23 train at 32 frames: 90; a reopen: 1-2 ms)


def _read_image(reader: ShardReader, row: int, kind: str) -> np.ndarray:
    """A row's image of a kind (image, ae, sr) by one HDF5 lookup."""
    try:
        return reader.file[f"{kind}/{row_key(row)}"][()]
    except KeyError:
        raise ShardError(f"row {row} of {reader.path} has no '{kind}' image") from None


def _open_shards(out: Path, rows: Any, verify: bool) -> tuple[dict[str, ShardReader], dict[str, np.ndarray]]:
    """One reader per shard the rows use, checked against the manifest: checksum (once per shard),
    row range, and that each row holds the video and frame the manifest names. Also returns, per row,
    what the shard stores besides images, read once here instead of per item: landmarks81, the eye and
    mouth mesh points (REGION_MESH), and whether the AE and SR images exist (ae, sr)."""
    readers: dict[str, ShardReader] = {}
    stored = {"landmarks81": np.zeros((len(rows), 81, 2), np.float32),
              "regions": np.zeros((len(rows), len(REGION_MESH), 2), np.float32),
              "ae": np.zeros(len(rows), bool), "sr": np.zeros(len(rows), bool)}
    for rel, group in rows.groupby("shard", sort=False):
        shas = group["shard_sha256"].unique()
        reader = ShardReader(out / rel, expected_sha256=str(shas[0]) if verify else None)
        try:
            table = reader.table()
            landmarks = reader.file["landmarks81"][()]
            regions = reader.file["mesh478"][()][:, list(REGION_MESH), :2]
        finally:
            reader.close()
        bad = group[(group["row"] < 0) | (group["row"] >= reader.n_rows)]
        if len(bad):
            first = bad.iloc[0]
            raise GenerateError(f"manifest row {first['video_id']}:{first['frame_index']} points to row {first['row']} "
                                f"of {rel}, which has {reader.n_rows} rows (manifest and shards disagree)")
        idx = group["row"].to_numpy()
        wrong = (table["video_id"][idx].astype(str) != group["video_id"].to_numpy().astype(str)) | (
            table["frame_index"][idx] != group["frame_index"].to_numpy())
        if wrong.any():
            first = group[wrong].iloc[0]
            raise GenerateError(f"manifest row {first['video_id']}:{first['frame_index']} points to row {first['row']} "
                                f"of {rel}, which holds another frame (manifest and shards disagree)")
        stored["landmarks81"][group.index] = landmarks[idx]
        stored["regions"][group.index] = regions[idx]
        for kind in ("ae", "sr"):
            stored[kind][group.index] = table[f"{kind}_ok"][idx] & (kind in reader.kinds)
        readers[rel] = reader
    return readers, stored


class FIAUSADataset(Dataset):
    """FIA-USA (real, fake, mask) triplets of one split; see the module docstring."""

    def __init__(self, out_dir: str | Path, split: str = "train", size: int = 380, seed: int = 0, train: bool = True,
                 ablation: str = "full", config: GenerateConfig | None = None, epochs: int | None = None) -> None:
        self.out = Path(out_dir)
        self.split = split
        self.size = int(size)
        self.seed = int(seed)
        self.train = bool(train)
        self.ablation = ablation
        self.config = config or GenerateConfig()
        if self.seed < 0:
            raise GenerateError(f"seed must be >= 0, got {seed}")
        self.recipe: Recipe = resolve_recipe(ablation, self.config, self.train, self.size, epochs)
        if epochs is not None and self.recipe.micro_from >= epochs:
            warnings.warn(f"generate.micro_masks_from {self.config.micro_masks_from} of {epochs} epochs: the micro "
                          f"masks are never drawn in training", stacklevel=2)
        manifest = read_manifest(self.out)
        rows = manifest[manifest["split"] == split].reset_index(drop=True)
        if rows.empty:
            present = ", ".join(sorted(manifest["split"].unique())) or "none"
            raise GenerateError(f"{self.out} has no frames of split '{split}' (splits present: {present})")
        self._readers, stored = _open_shards(self.out, rows, self.config.verify)
        self._landmarks, self._regions, self._ae, self._sr = (stored[k] for k in ("landmarks81", "regions", "ae", "sr"))
        names = list(self._readers)
        self._shard = rows["shard"].map({rel: i for i, rel in enumerate(names)}).to_numpy(np.int32)
        self._shard_names = names
        self._recent: dict[int, None] = {}  # the shards read in this process, least recently used first
        self._row = rows["row"].to_numpy(np.int64)
        self._face_box = np.stack(rows["face_box"].to_numpy()).astype(np.float32)
        self._video = rows["video_id"].to_numpy().astype(str)
        self._frame = rows["frame_index"].to_numpy(np.int64)
        self._noise = NoiseBank(self.seed, self.size)
        self.epoch = 0
        wanted = {name for name, p in self.recipe.recon_probs if p > 0 and name != "original"}
        missing = [name for name in sorted(wanted) if not self.recon_coverage[name]]
        if missing:
            warnings.warn(f"{self.out} ({split}) holds no {'/'.join(m.upper() for m in missing)} reconstructions: "
                          f"MMR uses the original in their place", stacklevel=2)

    @property
    def recon_coverage(self) -> dict[str, float]:
        """The fraction of the split's rows that hold each reconstruction."""
        return {"ae": float(self._ae.mean()), "sr": float(self._sr.mean())}

    def set_epoch(self, epoch: int) -> None:
        """Draw the pairs of this epoch (training only; validation always uses epoch 0)."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self._row)

    def _reader(self, shard: int) -> ShardReader:
        """A shard's reader, now the most recently used; beyond MAX_OPEN_SHARDS open in this process, the
        least recently used is closed (a reader reopens its file when read again)."""
        self._recent.pop(shard, None)
        self._recent[shard] = None
        if len(self._recent) > MAX_OPEN_SHARDS:
            oldest = next(iter(self._recent))
            del self._recent[oldest]
            self._readers[self._shard_names[oldest]].close()
        return self._readers[self._shard_names[shard]]

    def frame(self, index: int) -> Frame:
        """The stored frame of item `index`, read from its shard."""
        reader = self._reader(int(self._shard[index]))
        row = int(self._row[index])
        regions = self._regions[index]
        left, right = len(LEFT_EYE_MESH), len(LEFT_EYE_MESH) + len(RIGHT_EYE_MESH)
        parts = FaceParts(self._landmarks[index], regions[:left], regions[left:right], regions[right:])
        available = frozenset(k for k, ok in (("ae", self._ae[index]), ("sr", self._sr[index])) if ok)
        return Frame(image=_read_image(reader, row, "image"), face_box=tuple(float(v) for v in self._face_box[index]),
                     parts=parts, available=available, load=lambda kind: _read_image(reader, row, kind))

    def pair(self, index: int, epoch: int | None = None, timed: Timer = untimed) -> Pair:
        """The uint8 pair of item `index` (no noise yet) at an epoch (default: the dataset's)."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} is outside the dataset ({len(self)} items)")
        epoch = (self.epoch if epoch is None else epoch) if self.train else 0
        with timed("read"):
            frame = self.frame(index)
        return make_pair(frame, self.recipe.at_epoch(epoch), sample_streams(self.seed, index, epoch), timed)

    def item(self, index: int, timed: Timer = untimed) -> dict[str, Any]:
        """ds[index], with an optional per-step timer."""
        epoch = self.epoch if self.train else 0
        pair = self.pair(index, epoch, timed)
        with timed("tensor"):
            noise = None
            aug = pair.augment
            if aug is not None and aug.noise_sigma is not None:
                noise = self._noise.window(aug.noise_offset, aug.noise_sign, aug.noise_sigma)
            real, fake = _to_tensor(pair.real, noise), _to_tensor(pair.fake, noise)
            mask = torch.from_numpy(np.ascontiguousarray(pair.mask, dtype=np.float32)).unsqueeze(0)
        meta = {"video_id": str(self._video[index]), "frame_index": int(self._frame[index]), "index": int(index),
                "epoch": int(epoch), **pair.meta}
        return {"real": real, "fake": fake, "mask": mask, "meta": meta}

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.item(int(index))


def _to_tensor(image: np.ndarray, noise: np.ndarray | None) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H, W) float32 in [0, 1], plus noise (clipped) when given."""
    tensor = torch.from_numpy(image.transpose(2, 0, 1).astype(np.float32)).mul_(1.0 / 255.0)
    if noise is not None:
        tensor.add_(torch.from_numpy(noise).permute(2, 0, 1)).clamp_(0.0, 1.0)
    return tensor
