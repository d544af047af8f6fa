"""Robustness perturbations at five levels, after DeeperForensics-1.0 (Jiang et al., CVPR 2020).

Parameters per level follow DeeperForensics' `get_distortion_parameter` tables; each function takes an
RGB uint8 frame and returns a new one. Differences, on purpose:
- `jpeg` is a real JPEG re-encode (quality 90..10). DeeperForensics' own "JPEG" distortion is a
  down-then-up resize; it is kept here as `pixelate` (factors 2..6).
- DeeperForensics' video compression (H.264 CRF 30..40) needs an H.264 encoder, which the bundled
  OpenCV lacks, so `compression` is refused with a clear message.
Random parts (block positions, noise) come from the generator passed in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from fiagen.core.errors import FiagenError

LEVELS = (1, 2, 3, 4, 5)
BLOCK = 8  # DeeperForensics' grey block side, in pixels


class PerturbError(FiagenError):
    """A --perturb or --levels value that cannot be used."""


def saturation(img: np.ndarray, factor: float, rng: np.random.Generator) -> np.ndarray:
    """Colour saturation change (CS): chroma (Cb, Cr) pulled towards grey by `factor` (1 = unchanged)."""
    ycc = cv2.cvtColor(img, cv2.COLOR_RGB2YCrCb).astype(np.float32)
    ycc[..., 1:] = 128.0 + (ycc[..., 1:] - 128.0) * factor
    return cv2.cvtColor(np.clip(ycc + 0.5, 0, 255).astype(np.uint8), cv2.COLOR_YCrCb2RGB)


def contrast(img: np.ndarray, factor: float, rng: np.random.Generator) -> np.ndarray:
    """Colour contrast change (CC): every pixel value scaled by `factor` (DeeperForensics' definition)."""
    return (img.astype(np.float32) * factor).astype(np.uint8)


def block(img: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Local block-wise distortion (BW): `count` x (short side // 256, at least 1) grey 8x8 blocks."""
    out = img.copy()
    h, w = out.shape[:2]
    if h <= BLOCK or w <= BLOCK:
        return out
    n = count * max(1, min(h, w) // 256)
    ys = rng.integers(0, h - BLOCK, n)
    xs = rng.integers(0, w - BLOCK, n)
    for y, x in zip(ys, xs, strict=False):
        out[y:y + BLOCK, x:x + BLOCK] = 128
    return out


def noise(img: np.ndarray, variance: float, rng: np.random.Generator) -> np.ndarray:
    """White Gaussian noise in the colour components (GNC): YCbCr in [0, 1] plus N(0, variance)."""
    ycc = cv2.cvtColor(img, cv2.COLOR_RGB2YCrCb).astype(np.float32) / 255.0
    ycc += np.sqrt(variance) * rng.standard_normal(ycc.shape, dtype=np.float32)
    return cv2.cvtColor(np.clip(ycc * 255.0 + 0.5, 0, 255).astype(np.uint8), cv2.COLOR_YCrCb2RGB)


def blur(img: np.ndarray, kernel: int, rng: np.random.Generator) -> np.ndarray:
    """Gaussian blur (GB): a kernel x kernel Gaussian with sigma = kernel / 6."""
    return cv2.GaussianBlur(img, (kernel, kernel), kernel / 6.0)


def jpeg(img: np.ndarray, quality: int, rng: np.random.Generator) -> np.ndarray:
    """JPEG re-encode at `quality`."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise PerturbError("JPEG encoding failed")
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def pixelate(img: np.ndarray, factor: int, rng: np.random.Generator) -> np.ndarray:
    """DeeperForensics' "JPEG" distortion: resize down by `factor`, then back up (bilinear)."""
    h, w = img.shape[:2]
    small = cv2.resize(img, (max(1, w // factor), max(1, h // factor)), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


@dataclass(frozen=True)
class Perturbation:
    """One perturbation type: its function and the parameter at each of the five levels."""

    name: str
    code: str  # DeeperForensics' abbreviation
    fn: Callable[[np.ndarray, float, np.random.Generator], np.ndarray]
    params: tuple[float, ...]

    def apply(self, img: np.ndarray, level: int, rng: np.random.Generator) -> np.ndarray:
        """The perturbed copy of an RGB uint8 image at `level` (1..5)."""
        return self.fn(img, self.params[level - 1], rng)


PERTURBATIONS = {p.name: p for p in (
    Perturbation("blur", "GB", blur, (7, 9, 13, 17, 21)),
    Perturbation("block", "BW", block, (16, 32, 48, 64, 80)),
    Perturbation("contrast", "CC", contrast, (0.85, 0.725, 0.6, 0.475, 0.35)),
    Perturbation("jpeg", "JPEG", jpeg, (90, 70, 50, 30, 10)),
    Perturbation("saturation", "CS", saturation, (0.4, 0.3, 0.2, 0.1, 0.0)),
    Perturbation("noise", "GNC", noise, (0.001, 0.002, 0.005, 0.01, 0.05)),
    Perturbation("pixelate", "JPEG-DF", pixelate, (2, 3, 4, 5, 6)),
)}


def parse_perturb(value: str | None) -> tuple[str, ...]:
    """A comma list of perturbation names ("" or None: none)."""
    names = tuple(v.strip() for v in (value or "").split(",") if v.strip())
    if "compression" in names:
        raise PerturbError("perturbation 'compression' (DeeperForensics' H.264 video compression, CRF 30-40) needs "
                           "an H.264 encoder, which the bundled OpenCV lacks; use jpeg or pixelate")
    bad = [n for n in names if n not in PERTURBATIONS]
    if bad:
        raise PerturbError(f"unknown perturbation {', '.join(bad)}: expected a comma list of "
                           f"{', '.join(PERTURBATIONS)}")
    return names


def parse_levels(value: str) -> tuple[int, ...]:
    """Levels as "1-5", "1,3,5" or "2"; each in 1..5."""
    out: list[int] = []
    try:
        for part in (p.strip() for p in value.split(",") if p.strip()):
            lo, _, hi = part.partition("-")
            out += range(int(lo), int(hi or lo) + 1)
    except ValueError:
        raise PerturbError(f"--levels {value!r}: expected a range like 1-5 or a list like 1,3,5") from None
    if not out or any(lv not in LEVELS for lv in out):
        raise PerturbError(f"--levels {value!r}: levels run from 1 to 5")
    return tuple(sorted(set(out)))


def condition_name(name: str | None, level: int | None) -> str:
    """The folder/table name of a scoring condition: "raw" or "<perturbation>-<level>"."""
    return "raw" if not name else f"{name}-{level}"
