"""Augmentations applied to the real and the fake of a pair with identical parameters (docs/method.md §2.5).

SBI's post-blend jitter (RGB shift, HSV, brightness/contrast, each p=0.3) and JPEG (quality 40..100,
p=0.5) at native resolution, then horizontal flip, cut-out and Gaussian noise. The same parameters on
both images keep the only difference between real and fake the blend itself. Gaussian noise is a window
of a fixed N(0, 1) field (drawn once per seed) at a random offset and sign, so a sample costs no fresh
normal draws and stays reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from fiagen.generate.transforms import ColourJitter, ColourRanges, jpeg

# SBI's post-blend transforms, with the HSV limits made real (SBI's change nothing on uint8 images).
POST_COLOUR = ColourRanges(shift=20.0, shift_p=0.3, hue=5.0, saturation=0.15, value=0.1, hsv_p=0.3,
                           brightness=0.3, contrast=0.3, bc_p=0.3)
NOISE_MARGIN = 128
JPEG_BLOCK = 16


@dataclass(frozen=True)
class AugmentRanges:
    """Probabilities and ranges of the shared augmentations (cut-out sides and noise sigma as fractions)."""

    colour: ColourRanges = POST_COLOUR
    jpeg_p: float = 0.5
    jpeg_quality: tuple[int, int] = (40, 100)
    flip_p: float = 0.5
    cutout_p: float = 0.3
    cutout_size: tuple[float, float] = (0.1, 0.35)
    noise_p: float = 0.3
    noise_sigma: tuple[float, float] = (0.005, 0.03)


@dataclass(frozen=True)
class PairAugment:
    """The drawn parameters of one pair's shared augmentation."""

    colour: ColourJitter = field(default_factory=ColourJitter)
    jpeg_quality: int | None = None
    flip: bool = False
    cutout: tuple[float, float, float, float] | None = None  # x0, y0, x1, y1 as fractions of the side
    noise_sigma: float | None = None
    noise_offset: tuple[int, int] = (0, 0)
    noise_sign: float = 1.0

    @classmethod
    def draw(cls, rng: np.random.Generator, ranges: AugmentRanges) -> PairAugment:
        colour = ColourJitter.draw(rng, ranges.colour)
        u_jpeg, u_flip, u_cut, u_noise = rng.random(4)
        quality = int(rng.integers(ranges.jpeg_quality[0], ranges.jpeg_quality[1] + 1))
        cw, ch = rng.uniform(ranges.cutout_size[0], ranges.cutout_size[1], size=2)
        cx, cy = rng.random(2)
        sigma = float(rng.uniform(*ranges.noise_sigma))
        offset = rng.integers(0, NOISE_MARGIN + 1, size=2)
        sign = 1.0 if rng.random() < 0.5 else -1.0
        x0, y0 = cx * (1 - cw), cy * (1 - ch)
        return cls(
            colour=colour,
            jpeg_quality=quality if u_jpeg < ranges.jpeg_p else None,
            flip=bool(u_flip < ranges.flip_p),
            cutout=(float(x0), float(y0), float(x0 + cw), float(y0 + ch)) if u_cut < ranges.cutout_p else None,
            noise_sigma=sigma if u_noise < ranges.noise_p else None,
            noise_offset=(int(offset[0]), int(offset[1])),
            noise_sign=sign,
        )

    def photometric(self, real: np.ndarray, fake: np.ndarray,
                    support: tuple[int, int, int, int] | None) -> tuple[np.ndarray, np.ndarray]:
        """The colour jitter then JPEG (native resolution, before the resize) on both images with one
        colour map (its contrast pivot taken from the real). The fake equals the real outside `support`
        (x0, y0, x1, y1), so only a window around it is redone for the fake: exact for the pixel-wise
        colour map, and for JPEG when the window follows the 16-px block grid with one block to spare
        on each side (a decoded block depends on its own and its neighbours' blocks only)."""
        matrix = None if self.colour.is_identity else self.colour.matrix(np.array(cv2.mean(real)[:3]))

        def apply(image: np.ndarray) -> np.ndarray:
            if matrix is not None:
                image = cv2.transform(image, matrix)
            return jpeg(image, self.jpeg_quality) if self.jpeg_quality is not None else image

        if matrix is None and self.jpeg_quality is None:
            return real, fake
        real_out = apply(real)
        fake_out = real_out.copy()
        if support is None:
            return real_out, fake_out
        h, w = real.shape[:2]
        paste = support if self.jpeg_quality is None else _block_grow(support, 1, w, h)
        window = paste if self.jpeg_quality is None else _block_grow(paste, 1, w, h)
        wx0, wy0, wx1, wy1 = window
        px0, py0, px1, py1 = paste
        redone = apply(fake[wy0:wy1, wx0:wx1])
        fake_out[py0:py1, px0:px1] = redone[py0 - wy0:py1 - wy0, px0 - wx0:px1 - wx0]
        return real_out, fake_out

    def cutout_box(self, size: int) -> tuple[int, int, int, int] | None:
        """The cut-out rectangle x0, y0, x1, y1 in pixels of a (size, size) image."""
        if self.cutout is None:
            return None
        x0, y0, x1, y1 = (int(round(v * size)) for v in self.cutout)
        return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)


def _block_grow(box: tuple[int, int, int, int], blocks: int, width: int, height: int) -> tuple[int, int, int, int]:
    """A box grown outward to the JPEG block grid (16 px, 4:2:0 chroma) and then by `blocks` more blocks."""
    x0, y0, x1, y1 = box
    b = JPEG_BLOCK
    return (max(0, (x0 // b - blocks) * b), max(0, (y0 // b - blocks) * b),
            min(width, (-(-x1 // b) + blocks) * b), min(height, (-(-y1 // b) + blocks) * b))


class NoiseBank:
    """A fixed (size + margin)^2 x 3 field of N(0, 1) noise drawn from a seed on first use (per process)."""

    def __init__(self, seed: int, size: int) -> None:
        self.seed = seed
        self.size = size
        self._field: np.ndarray | None = None

    def __getstate__(self) -> dict:
        return {"seed": self.seed, "size": self.size, "_field": None}

    def window(self, offset: tuple[int, int], sign: float, sigma: float) -> np.ndarray:
        """sigma * sign * the (size, size, 3) window of the field at offset (y, x)."""
        if self._field is None:
            rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, 0x6E6F6973])))
            side = self.size + NOISE_MARGIN
            self._field = rng.standard_normal((side, side, 3), dtype=np.float32)
        y, x = offset
        return self._field[y:y + self.size, x:x + self.size] * np.float32(sigma * sign)
