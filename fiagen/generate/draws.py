"""Random draws of the online stage: per-sample generators from (seed, index, epoch), weighted choice.

Every random number of a pair comes from generators made here, never from global state, so a
pseudo-fake is regenerated exactly from (seed, index, epoch) in any process.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

STREAMS = ("choice", "mask", "transform", "augment")


def sample_streams(seed: int, index: int, epoch: int) -> dict[str, np.random.Generator]:
    """Independent generators, one per stage of a pair (STREAMS), for one (seed, index, epoch)."""
    if min(seed, index, epoch) < 0:
        raise ValueError(f"seed, index and epoch must be >= 0, got {seed}, {index}, {epoch}")
    children = np.random.SeedSequence([seed, index, epoch]).spawn(len(STREAMS))
    return {name: np.random.Generator(np.random.PCG64(child)) for name, child in zip(STREAMS, children, strict=False)}


def pick(rng: np.random.Generator, options: Sequence[tuple[str, float]]) -> str:
    """One name of (name, weight) pairs with probability weight / sum, by exactly one uniform draw."""
    weights = np.array([w for _, w in options], dtype=np.float64)
    cum = np.cumsum(weights / weights.sum())
    return options[min(int(np.searchsorted(cum, rng.random(), side="right")), len(options) - 1)][0]
