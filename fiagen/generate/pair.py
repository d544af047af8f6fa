"""One FIA-USA pair from one stored frame: MMR -> T -> MTMS -> RAC -> shared augmentations -> crop.

The work is done on the final crop only (the face box plus its margins, at native resolution), the
mask on a low-resolution canvas, and T on the target side only where the mask is non-zero; the
result is identical to doing each step on the whole stored crop and cutting out the face last,
except within a few pixels of the crop's edge for the spatial filters.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from fiagen.generate.augment import PairAugment
from fiagen.generate.blend import blend_within
from fiagen.generate.config import Recipe
from fiagen.generate.crop import EVAL_MARGIN, margin_box, resize_to, train_margins
from fiagen.generate.draws import pick
from fiagen.generate.masks import FaceParts, blend_ratio, soft_mask
from fiagen.generate.mmr import available_recon, draw_recon
from fiagen.generate.transforms import SourceTargetTransform, TargetAffine

# Pixels kept around the mask's support when T runs on the target side only (filters reach 2-4 px).
T_PAD = 8
STEPS = ("draw", "mask", "read_target", "transform", "blend", "augment", "resize")
Timer = Callable[[str], AbstractContextManager[Any]]


def untimed(step: str) -> AbstractContextManager[Any]:
    """The default `timed`: times nothing."""
    return nullcontext()


class Stopwatch:
    """Wall and CPU seconds spent per step; pass the instance as `timed` to make_pair."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.cpu_seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, step: str) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.seconds[step] += time.perf_counter() - wall
            self.cpu_seconds[step] += time.process_time() - cpu


@dataclass(frozen=True)
class Frame:
    """A stored frame as the recipe needs it: the crop, its face box and parts (crop pixels), which
    reconstructions the row holds, and how to read one."""

    image: np.ndarray
    face_box: tuple[float, float, float, float]
    parts: FaceParts
    available: frozenset[str]
    load: Callable[[str], np.ndarray]


@dataclass
class Pair:
    """real, fake: (S, S, 3) uint8 RGB; mask: (S, S) float32 in [0, 1]; the shared augmentation still
    to apply on the float images (noise), and what was drawn."""

    real: np.ndarray
    fake: np.ndarray
    mask: np.ndarray
    augment: PairAugment | None
    meta: dict[str, Any]


def _grow(box: tuple[int, int, int, int], pad: int, width: int, height: int) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = box
    return max(0, x0 - pad), max(0, y0 - pad), min(width, x1 + pad), min(height, y1 + pad)


def _affine_points(matrix: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    a, t = matrix[:, :2].astype(np.float32), matrix[:, 2].astype(np.float32)
    return lambda pts: pts @ a.T + t


def _target_region(image: np.ndarray, origin: tuple[int, int], size: tuple[int, int],
                   forward: np.ndarray | None) -> np.ndarray:
    """The (h, w) window of the target at image offset origin, through the forward affine if given."""
    x, y = origin
    w, h = size
    if forward is None:
        return image[y:y + h, x:x + w]
    inv = cv2.invertAffineTransform(forward)
    to_src = np.hstack([inv[:, :2], (inv[:, :2] @ np.array([x, y], np.float64) + inv[:, 2])[:, None]])
    return cv2.warpAffine(image, to_src, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REFLECT_101)


def make_pair(frame: Frame, recipe: Recipe, rngs: dict[str, np.random.Generator], timed: Timer = untimed) -> Pair:
    """The (real, fake, mask) of one frame; every random number comes from `rngs` (draws.sample_streams)."""
    height, width = frame.image.shape[:2]
    with timed("draw"):
        r = rngs["choice"]
        margins = train_margins(r, *recipe.margins) if recipe.train else (EVAL_MARGIN,) * 4
        box = margin_box(frame.face_box, margins, width, height)
        drawn = draw_recon(r, recipe.recon_probs)
        recon = available_recon(drawn, frame.available)
        mask_type = pick(r, recipe.mask_types)
        ratio = blend_ratio(r)
        t_source = bool(r.random() < recipe.t_source_p)
        transform = SourceTargetTransform.draw(rngs["transform"], recipe.colour, recipe.freq_ops)
        affine = TargetAffine.draw(rngs["transform"])
        augment = PairAugment.draw(rngs["augment"], recipe.augment) if recipe.augment is not None else None

    with timed("mask"):
        parts = frame.parts
        forward = affine.matrix(parts.box68()) if recipe.affine else None
        if forward is not None:
            parts = parts.mapped(_affine_points(forward))
        canvas, soft = soft_mask(rngs["mask"], mask_type, parts, box, recipe.elastic_p, recipe.affine)
        soft *= np.float32(ratio)
        support = canvas.support(soft, box)
        x0, y0, x1, y1 = box
        region_w, region_h = x1 - x0, y1 - y0
        mask = canvas.sample(soft, box, support) if support is not None else np.zeros((region_h, region_w), np.float32)

    source = frame.image[y0:y1, x0:x1]
    target = None
    if support is not None:
        with timed("read_target"):
            target_image = frame.image if recon == "original" else frame.load(recon)
        with timed("transform"):
            # The target is needed only where the mask is non-zero: T runs on that window (+ a margin).
            tx0, ty0, tx1, ty1 = _grow(support, T_PAD if recipe.transform and not t_source else 0, region_w, region_h)
            target = _target_region(target_image, (x0 + tx0, y0 + ty0), (tx1 - tx0, ty1 - ty0), forward)
            if recipe.transform and not t_source:
                target = transform(target)
            sx0, sy0, sx1, sy1 = support
            target = target[sy0 - ty0:sy1 - ty0, sx0 - tx0:sx1 - tx0]
    with timed("transform"):
        if recipe.transform and t_source:
            source = transform(source)

    with timed("blend"):
        fake = blend_within(target, source, mask, support)
        real = source

    with timed("augment"):
        if augment is not None:
            real, fake = augment.photometric(real, fake, support)

    with timed("resize"):
        real, fake, mask = _resized(real, fake, mask, recipe.size, augment)

    meta = {"mask_type": mask_type, "recon": recon, "blend_ratio": ratio,
            "t_side": ("source" if t_source else "target") if recipe.transform else "none"}
    return Pair(real, fake, mask, augment, meta)


def _resized(real: np.ndarray, fake: np.ndarray, mask: np.ndarray, size: int,
             augment: PairAugment | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The three resized to `size`, then flipped and cut out together as `augment` drew."""
    real, fake, mask = resize_to(real, size), resize_to(fake, size), resize_to(mask, size)
    if augment is not None:
        if augment.flip:
            real, fake, mask = cv2.flip(real, 1), cv2.flip(fake, 1), cv2.flip(mask, 1)
        cut = augment.cutout_box(size)
        if cut is not None:
            cx0, cy0, cx1, cy1 = cut
            real[cy0:cy1, cx0:cx1] = 0
            fake[cy0:cy1, cx0:cx1] = 0
            mask[cy0:cy1, cx0:cx1] = 0.0
    return real, fake, mask
