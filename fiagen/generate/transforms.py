"""T, the source-target augmentation: a colour change then a frequency change (docs/method.md §2.2).

Each transform is a small frozen dataclass of explicit parameters: `draw(rng, ...)` picks them
(always the same number of draws, so a sample can be replayed) and calling it applies them to a
uint8 RGB image. The colour change is one affine map in RGB (per-channel shift, hue rotation about
the grey axis, saturation and value scale, brightness/contrast), applied in a single pass.

Ranges: SBI's source transform uses RGB shift ±20 (p=0.3) and brightness/contrast ±0.1; its HSV
limits (±0.3 on a 0..180/0..255 scale) change nothing on uint8 images, so the sbi preset has no HSV
change while the FIA-USA preset uses small real ones (hue ±5°, saturation ±15%, value ±10%).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

LUMA = np.array([0.299, 0.587, 0.114])
FREQ_OPS = ("downscale", "sharpen", "blur", "jpeg")
SBI_FREQ_OPS = ("downscale", "sharpen")
DOWNSCALE_FACTORS = (2, 4)
SHARPEN_ALPHA = (0.2, 0.5)
SHARPEN_LIGHTNESS = (0.5, 1.0)
BLUR_KERNELS = (3, 5)
BLUR_SIGMA = (0.5, 1.5)
T_JPEG_QUALITY = (40, 90)


@dataclass(frozen=True)
class ColourRanges:
    """Limits and probabilities of a colour change (shift in grey levels, hue in degrees, the rest as fractions)."""

    shift: float = 20.0
    shift_p: float = 0.3
    hue: float = 5.0
    saturation: float = 0.15
    value: float = 0.1
    hsv_p: float = 1.0
    brightness: float = 0.1
    contrast: float = 0.1
    bc_p: float = 1.0


FIA_COLOUR = ColourRanges()
SBI_COLOUR = ColourRanges(hue=0.0, saturation=0.0, value=0.0, hsv_p=0.0)


def _hue_rotation(degrees: float) -> np.ndarray:
    theta = np.deg2rad(degrees)
    n = np.full(3, 1 / np.sqrt(3))
    cross = np.array([[0, -n[2], n[1]], [n[2], 0, -n[0]], [-n[1], n[0], 0]])
    return np.cos(theta) * np.eye(3) + (1 - np.cos(theta)) * np.outer(n, n) + np.sin(theta) * cross


@dataclass(frozen=True)
class ColourJitter:
    """A colour change with explicit parameters; identity when every field is neutral."""

    shift: tuple[float, float, float] = (0.0, 0.0, 0.0)  # grey levels added per RGB channel
    hue: float = 0.0  # degrees about the grey axis
    saturation: float = 1.0  # scale
    value: float = 1.0  # scale
    brightness: float = 0.0  # fraction of 255 added
    contrast: float = 0.0  # gain - 1 about the mean grey

    @classmethod
    def draw(cls, rng: np.random.Generator, ranges: ColourRanges) -> ColourJitter:
        u_shift, u_hsv, u_bc = rng.random(3)
        shift = rng.uniform(-ranges.shift, ranges.shift, size=3)
        hue, sat, val = rng.uniform(-1.0, 1.0, size=3)
        bright, contrast = rng.uniform(-1.0, 1.0, size=2)
        on_shift, on_hsv, on_bc = u_shift < ranges.shift_p, u_hsv < ranges.hsv_p, u_bc < ranges.bc_p
        return cls(
            shift=tuple(float(s) for s in shift) if on_shift else (0.0, 0.0, 0.0),
            hue=float(hue * ranges.hue) if on_hsv else 0.0,
            saturation=float(1 + sat * ranges.saturation) if on_hsv else 1.0,
            value=float(1 + val * ranges.value) if on_hsv else 1.0,
            brightness=float(bright * ranges.brightness) if on_bc else 0.0,
            contrast=float(contrast * ranges.contrast) if on_bc else 0.0,
        )

    @property
    def is_identity(self) -> bool:
        return self == ColourJitter()

    def matrix(self, mean_rgb: np.ndarray) -> np.ndarray:
        """The 3x4 affine map [A | t] in RGB; contrast pivots on the mean grey of the image at that point."""
        a, t = np.eye(3), np.array(self.shift, dtype=np.float64)
        sat = self.saturation * np.eye(3) + (1 - self.saturation) * np.outer(np.ones(3), LUMA)
        a_mid = self.value * sat @ _hue_rotation(self.hue)
        a, t = a_mid @ a, a_mid @ t
        pivot = float(LUMA @ (a @ mean_rgb + t))
        gain = 1 + self.contrast
        a, t = gain * a, gain * t + (1 - gain) * pivot + 255.0 * self.brightness
        return np.hstack([a, t[:, None]]).astype(np.float32)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        if self.is_identity:
            return image
        mean = np.array(cv2.mean(image)[:3])
        return cv2.transform(image, self.matrix(mean))


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """An RGB uint8 image through JPEG encode/decode at a quality (1..100)."""
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("OpenCV could not JPEG-encode an image")
    return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def sharpen_kernel(alpha: float, lightness: float) -> np.ndarray:
    """A 3x3 sharpening kernel: identity mixed (by alpha) with a Laplacian boost of strength lightness."""
    effect = -np.ones((3, 3), np.float32)
    effect[1, 1] = 8 + lightness
    ident = np.zeros((3, 3), np.float32)
    ident[1, 1] = 1
    return (1 - alpha) * ident + alpha * effect


@dataclass(frozen=True)
class FrequencyOp:
    """One frequency change: random down-then-up scale (nearest down, bilinear up), sharpen, Gaussian blur or JPEG."""

    op: str  # one of FREQ_OPS; the fields below serve the op named
    factor: int = 2  # downscale
    alpha: float = 0.0  # sharpen
    lightness: float = 0.0  # sharpen
    ksize: int = 3  # blur
    sigma: float = 1.0  # blur
    quality: int = 90  # jpeg

    @classmethod
    def draw(cls, rng: np.random.Generator, ops: tuple[str, ...] = FREQ_OPS) -> FrequencyOp:
        op = ops[int(rng.integers(len(ops)))]
        factor = DOWNSCALE_FACTORS[int(rng.integers(len(DOWNSCALE_FACTORS)))]
        alpha, lightness, sigma = rng.uniform(size=3)
        ksize = BLUR_KERNELS[int(rng.integers(len(BLUR_KERNELS)))]
        quality = int(rng.integers(T_JPEG_QUALITY[0], T_JPEG_QUALITY[1] + 1))
        return cls(op, factor=factor, alpha=float(SHARPEN_ALPHA[0] + alpha * (SHARPEN_ALPHA[1] - SHARPEN_ALPHA[0])),
                   lightness=float(SHARPEN_LIGHTNESS[0] + lightness * (SHARPEN_LIGHTNESS[1] - SHARPEN_LIGHTNESS[0])),
                   ksize=ksize, sigma=float(BLUR_SIGMA[0] + sigma * (BLUR_SIGMA[1] - BLUR_SIGMA[0])), quality=quality)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        if self.op == "downscale":
            small = cv2.resize(image, (max(1, w // self.factor), max(1, h // self.factor)),
                               interpolation=cv2.INTER_NEAREST)
            return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
        if self.op == "sharpen":
            return cv2.filter2D(image, -1, sharpen_kernel(self.alpha, self.lightness))
        if self.op == "blur":
            return cv2.GaussianBlur(image, (self.ksize, self.ksize), self.sigma)
        if self.op == "jpeg":
            return jpeg(image, self.quality)
        raise ValueError(f"unknown frequency op {self.op!r}; expected one of {FREQ_OPS}")


@dataclass(frozen=True)
class SourceTargetTransform:
    """T: the colour change, then the frequency change."""

    colour: ColourJitter
    frequency: FrequencyOp

    @classmethod
    def draw(cls, rng: np.random.Generator, colour: ColourRanges = FIA_COLOUR,
             ops: tuple[str, ...] = FREQ_OPS) -> SourceTargetTransform:
        return cls(ColourJitter.draw(rng, colour), FrequencyOp.draw(rng, ops))

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return self.frequency(self.colour(image))


@dataclass(frozen=True)
class TargetAffine:
    """SBI's random affine of the blended-in side (and its mask): scale about the face centre and a
    shift, both relative to SBI's working area (2x the face's width, 2.4x its height)."""

    scale: float = 1.0
    shift: tuple[float, float] = (0.0, 0.0)

    @classmethod
    def draw(cls, rng: np.random.Generator) -> TargetAffine:
        scale = rng.uniform(0.95, 1 / 0.95)
        tx, ty = rng.uniform(-0.03, 0.03), rng.uniform(-0.015, 0.015)
        return cls(float(scale), (float(tx), float(ty)))

    def matrix(self, face_box: tuple[float, float, float, float]) -> np.ndarray:
        """The 2x3 forward map in image pixels for a face whose 68-point box is face_box."""
        x0, y0, x1, y1 = face_box
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        tx, ty = self.shift[0] * 2.0 * (x1 - x0), self.shift[1] * 2.4 * (y1 - y0)
        return np.array([[self.scale, 0, (1 - self.scale) * cx + tx],
                         [0, self.scale, (1 - self.scale) * cy + ty]], dtype=np.float64)
