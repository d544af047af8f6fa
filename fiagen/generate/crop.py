"""The final face crop shared by training and evaluation: a margin around the face box, resized."""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from fiagen.pipeline.faces import expand_box

# Evaluation crops add 12.5% of the face box on every side (training draws random margins).
EVAL_MARGIN = 0.125


def eval_crop(image: np.ndarray, face_box: Sequence[float], size: int) -> np.ndarray:
    """The (size, size, 3) uint8 crop of a face at evaluation: face box + 12.5% per side, resized."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = expand_box(face_box, EVAL_MARGIN, EVAL_MARGIN, EVAL_MARGIN, EVAL_MARGIN, w, h)
    crop = image[y0:y1, x0:x1]
    interp = cv2.INTER_AREA if crop.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interp)
