"""The DataLoader for FIA-USA datasets: worker processes that are safe to start at any time.

Workers come from a forkserver that has imported the online stage but never run OpenCV's or torch's
thread pools: a plain fork of a process whose OpenCV pool has run copies the pool's locks with
waiters that do not exist in the child, and the worker then hangs in `cv2.setNumThreads`.
"""

from __future__ import annotations

import multiprocessing
from typing import Any

from torch.utils.data import DataLoader, Dataset, Sampler

from fiagen.generate.dataset import worker_init


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
