"""The final face crop shared by training and evaluation: a margin around the face box, resized."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from fiagen.precompute.faces import expand_box

# Evaluation crops add 12.5% of the face box on every side (training draws random margins).
EVAL_MARGIN = 0.125
# Training draws each side's margin uniformly from this range (fractions of the face box); its mean is
# the evaluation margin. SBI draws w/4 * U(0.2, 0.8), the same range.
TRAIN_MARGINS = (0.05, 0.20)

Box = tuple[int, int, int, int]


def margin_box(face_box: Sequence[float], margins: Sequence[float], width: int, height: int) -> Box:
    """The integer crop box x0, y0, x1, y1: the face box grown by (left, top, right, bottom) margins."""
    left, top, right, bottom = margins
    return expand_box(face_box, left, top, right, bottom, width, height)


def train_margins(rng: np.random.Generator, low: float = TRAIN_MARGINS[0],
                  high: float = TRAIN_MARGINS[1]) -> tuple[float, float, float, float]:
    """Four random margins (left, top, right, bottom) for a training crop."""
    left, top, right, bottom = rng.uniform(low, high, size=4)
    return float(left), float(top), float(right), float(bottom)


# Shrinking by more than this factor averages areas; up to it (and when enlarging) bilinear is as good
# and ~7x faster (OpenCV's area resampling is slow at non-integer factors).
AREA_FACTOR = 1.25


def resize_to(image: np.ndarray, size: int) -> np.ndarray:
    """A crop resized to (size, size): bilinear, or area averaging when it shrinks by more than AREA_FACTOR."""
    interp = cv2.INTER_AREA if max(image.shape[:2]) > AREA_FACTOR * size else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interp)


def eval_crop(image: np.ndarray, face_box: Sequence[float], size: int) -> np.ndarray:
    """The (size, size, 3) uint8 crop of a face at evaluation: face box + 12.5% per side, resized."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = margin_box(face_box, (EVAL_MARGIN,) * 4, w, h)
    return resize_to(image[y0:y1, x0:x1], size)
