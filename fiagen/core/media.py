"""Media facts every layer may use (no decoding here): the file suffixes fiagen reads as videos or
images, and the evenly spread picks of frames, videos or preview items."""

from __future__ import annotations

from pathlib import Path

import numpy as np

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".webm", ".mkv"})
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})


def is_image(path: Path) -> bool:
    """Whether a file's suffix is a still image's."""
    return path.suffix.lower() in IMAGE_SUFFIXES


def is_media(path: Path) -> bool:
    """Whether a file's suffix is a video's or an image's."""
    return path.suffix.lower() in VIDEO_SUFFIXES | IMAGE_SUFFIXES


def sample_indices(n_frames: int, k: int) -> np.ndarray:
    """`k` indices spread uniformly over `n_frames` (linspace, rounded, duplicates removed)."""
    if n_frames <= 0 or k <= 0:
        return np.zeros(0, dtype=np.int64)
    return np.unique(np.round(np.linspace(0, n_frames - 1, k)).astype(np.int64))
