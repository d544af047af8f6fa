"""The DataLoader for FIA-USA datasets: worker processes that are safe to start at any time.

Workers come from a forkserver that has imported the online stage but never run OpenCV's or torch's
thread pools: a plain fork of a process whose OpenCV pool has run copies the pool's locks with
waiters that do not exist in the child, and the worker then hangs in `cv2.setNumThreads`.

Starting a worker costs seconds when the main module imports much (each worker re-imports it), so a
training run keeps its workers for the whole run (`persistent_workers=True`) and tells them the epoch
with every index: `AtEpoch(ds)` takes (epoch, index) keys, which `EpochSampler` yields.
"""

from __future__ import annotations

import itertools
import multiprocessing
from collections.abc import Iterator
from typing import Any

from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from fiagen.generate.dataset import worker_init


class AtEpoch(Dataset):
    """A dataset with `set_epoch` read by (epoch, index) keys: each item carries its epoch, so workers that
    live across epochs draw the right pairs; the item is the dataset's item `index` at that epoch."""

    def __init__(self, ds: Dataset) -> None:
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        self.ds.set_epoch(epoch)
        return self.ds[index]


class EpochSampler(DistributedSampler):
    """DistributedSampler (order from seed + epoch via set_epoch) that yields (epoch, index) keys for an
    `AtEpoch` dataset and can start `skip` samples into an epoch."""

    def __init__(self, dataset: Dataset, world: int, rank: int, seed: int):
        super().__init__(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed)
        self.skip = 0

    def __iter__(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        epoch = self.epoch
        return ((epoch, i) for i in itertools.islice(super().__iter__(), self.skip, None))

    def __len__(self) -> int:
        return super().__len__() - self.skip


def pair_loader(ds: Dataset, batch_size: int | None, *, num_workers: int = 0, sampler: Sampler | None = None,
                drop_last: bool = False, pin_memory: bool = False, **kwargs: Any) -> DataLoader:
    """A DataLoader over `ds`; with workers, each starts from a clean forkserver and runs `worker_init`."""
    context = None
    if num_workers > 0:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["fiagen.generate.dataset"])
    return DataLoader(ds, batch_size=batch_size, sampler=sampler, drop_last=drop_last, num_workers=num_workers,
                      worker_init_fn=worker_init if num_workers > 0 else None, multiprocessing_context=context,
                      pin_memory=pin_memory, **kwargs)
