"""RAC, random artifact combination: the blend F = M * I_t + (1 - M) * I_s (docs/method.md §2.4).

Inside the mask is the manipulated side I_t (reconstructed and/or transformed), outside is I_s. Where
M = 0 the result is I_s exactly, where M = 1 it is I_t exactly; in between it is the formula rounded
to the nearest grey level (within one level).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np


def blend(target: np.ndarray, source: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """M * target + (1 - M) * source for uint8 (H, W, 3) images and a float32 (H, W) mask in [0, 1]."""
    if target.shape != source.shape or mask.shape != source.shape[:2]:
        raise ValueError(f"blend needs equal shapes: target {target.shape}, source {source.shape}, mask {mask.shape}")
    mask = mask.astype(np.float32, copy=False)
    return cv2.blendLinear(target, source, mask, 1.0 - mask)


def blend_within(target: np.ndarray, source: np.ndarray, mask: np.ndarray,
                 support: Sequence[int] | None) -> np.ndarray:
    """The blend computed only inside `support` (x0, y0, x1, y1), outside which the mask is 0: there the
    result is a copy of source. `target` covers just the support box; source and mask the whole region."""
    fake = source.copy()
    if support is None:
        return fake
    x0, y0, x1, y1 = support
    fake[y0:y1, x0:x1] = blend(target, source[y0:y1, x0:x1], mask[y0:y1, x0:x1])
    return fake
