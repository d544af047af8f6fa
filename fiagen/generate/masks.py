"""MTMS, multi-type mask synthesis: the region of a pseudo-fake that gets the manipulated side.

Five types (docs/method.md §2.3): two macro masks (convex hull of the 81 landmarks; the rectangle through
the 4 extreme keypoints) and three micro masks (eyes; mouth; eyes and mouth) from the stored mesh
regions. Macro masks are elastically deformed, then eroded or dilated by two Gaussian blurs (SBI's
recipe: blur, keep the part still at full strength, blur again); micro masks get one softening blur.

All of it runs on a low-resolution canvas, never on the full image: the canvas puts the face's
landmark box at SBI's mask resolution (its 2x-wide working area resized to 192..256 px), so SBI's
kernel sizes keep their meaning; it covers only where the mask can be non-zero within the crop, and
only the final soft mask is resampled onto the image region.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from fiagen.precompute.landmarks import LEFT_EYE_MESH, MOUTH_MESH, RIGHT_EYE_MESH, region_points

MASK_TYPES = ("hull81", "rect4", "eyes", "mouth", "eyes_mouth")
MACRO_TYPES = ("hull81", "rect4", "hull68")  # hull68 (dlib points only) is SBI's variant, used by the sbi ablation
BLEND_RATIOS = (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)

# SBI: the working area is the 68-point box grown to 2x its width and 2.4x its height, and the mask is
# resized to 192..256 px per side before its blurs; these set the canvas scale.
CANVAS_SIDE = (192, 256)
WORK_AREA = (2.0, 2.4)
# Room (in face-box units) kept on the canvas around the mask's shapes for its blurs and deformation:
# macro blurs reach up to 12 + 12 canvas px (~0.22 face), micro ones 5 px.
MACRO_PAD = 0.3
MICRO_PAD = 0.1
# SBI's kernels: both macro blurs use odd sizes 5..25; the second blur's sigma is 5..45 canvas px.
MACRO_KERNELS = tuple(range(5, 26, 2))
SOFT_SIGMAS = (5, 45)
# Micro masks (an eye is ~25 canvas px wide) get one softening blur of odd size 3..11.
MICRO_KERNELS = (3, 5, 7, 9, 11)
# SBI's elastic deformation of the mask (albumentations alpha=50, sigma=7) in native pixels; on the
# canvas, sigma scales with the canvas scale c and alpha with c**2 so displacements match in native pixels.
ELASTIC_ALPHA = 50.0
ELASTIC_SIGMA = 7.0
# A blurred pixel counts as "still at full strength" above this fraction of the peak (SBI: == peak).
CORE_LEVEL = 1.0 - 1e-3


@dataclass(frozen=True)
class FaceParts:
    """The landmark sets masks are built from, (n, 2) x, y arrays in one coordinate frame."""

    landmarks81: np.ndarray
    left_eye: np.ndarray
    right_eye: np.ndarray
    mouth: np.ndarray

    @classmethod
    def from_landmarks(cls, landmarks81: np.ndarray, mesh478: np.ndarray) -> FaceParts:
        """Parts of a stored row: the 81 points and the eye/mouth mesh regions."""
        return cls(np.asarray(landmarks81, dtype=np.float32)[:, :2], region_points(mesh478, LEFT_EYE_MESH),
                   region_points(mesh478, RIGHT_EYE_MESH), region_points(mesh478, MOUTH_MESH))

    def mapped(self, fn: Callable[[np.ndarray], np.ndarray]) -> FaceParts:
        """The same parts with every point set passed through fn (e.g. an affine map)."""
        return FaceParts(fn(self.landmarks81), fn(self.left_eye), fn(self.right_eye), fn(self.mouth))

    def box68(self) -> tuple[float, float, float, float]:
        """x0, y0, x1, y1 of the 68 dlib-style points (SBI's face box for its working area)."""
        pts = self.landmarks81[:68]
        return float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max())


@dataclass(frozen=True)
class Canvas:
    """A low-resolution raster over the image: canvas index = (x - origin) * scale - 0.5 per axis
    (pixel centres at integer indices on both sides)."""

    origin: tuple[float, float]
    scale: tuple[float, float]
    shape: tuple[int, int]

    def points(self, xy: np.ndarray) -> np.ndarray:
        """Image points (n, 2) in canvas index coordinates."""
        shifted = np.asarray(xy, np.float32) - np.float32(self.origin)
        return (shifted * np.float32(self.scale) - 0.5).astype(np.float32)

    def region_matrix(self, box: Sequence[int]) -> np.ndarray:
        """The 2x3 map from pixel indices of the image region `box` (x0, y0, x1, y1) to canvas indices."""
        sx, sy = self.scale
        ox, oy = self.origin
        return np.array([[sx, 0.0, (box[0] + 0.5 - ox) * sx - 0.5],
                         [0.0, sy, (box[1] + 0.5 - oy) * sy - 0.5]], dtype=np.float64)

    def sample(self, mask: np.ndarray, box: Sequence[int], window: Sequence[int] | None = None) -> np.ndarray:
        """The canvas mask resampled (bilinear) onto the pixels of the image region `box`. With `window`
        (x0, y0, x1, y1 in region pixels, e.g. `support`), only that part is resampled, the rest is 0."""
        bw, bh = int(box[2] - box[0]), int(box[3] - box[1])
        if window is None:
            window = (0, 0, bw, bh)
        wx0, wy0, wx1, wy1 = window
        m = self.region_matrix(box)
        m[:, 2] += m[:, 0] * wx0 + m[:, 1] * wy0
        part = cv2.warpAffine(mask, m, (wx1 - wx0, wy1 - wy0), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
        if (wx0, wy0, wx1, wy1) == (0, 0, bw, bh):
            return part
        out = np.zeros((bh, bw), np.float32)
        out[wy0:wy1, wx0:wx1] = part
        return out

    def support(self, mask: np.ndarray, box: Sequence[int]) -> tuple[int, int, int, int] | None:
        """The region-pixel box (x0, y0, x1, y1, relative to `box`) outside which `sample` is exactly 0;
        None when the mask is empty."""
        x, y, w, h = cv2.boundingRect((mask > 0).astype(np.uint8))
        if w == 0 or h == 0:
            return None
        m = self.region_matrix(box)
        # canvas index c -> region pixel u = (c - t) / s; bilinear reads the neighbours, so grow by 1 canvas px.
        u0 = int(np.floor((x - 1 - m[0, 2]) / m[0, 0]))
        u1 = int(np.ceil((x + w - m[0, 2]) / m[0, 0])) + 1
        v0 = int(np.floor((y - 1 - m[1, 2]) / m[1, 1]))
        v1 = int(np.ceil((y + h - m[1, 2]) / m[1, 1])) + 1
        bw, bh = int(box[2] - box[0]), int(box[3] - box[1])
        u0, v0, u1, v1 = max(0, u0), max(0, v0), min(bw, u1), min(bh, v1)
        return (u0, v0, u1, v1) if u1 > u0 and v1 > v0 else None


def polygons(kind: str, parts: FaceParts) -> list[np.ndarray]:
    """The point sets whose convex hulls make up a mask type (image coordinates)."""
    if kind == "hull81":
        return [parts.landmarks81]
    if kind == "hull68":
        return [parts.landmarks81[:68]]
    if kind == "rect4":
        return [rectangle(parts.landmarks81)]
    if kind == "eyes":
        return [parts.left_eye, parts.right_eye]
    if kind == "mouth":
        return [parts.mouth]
    if kind == "eyes_mouth":
        return [parts.left_eye, parts.right_eye, parts.mouth]
    raise ValueError(f"unknown mask type {kind!r}; expected one of {MASK_TYPES + ('hull68',)}")


def rectangle(points: np.ndarray) -> np.ndarray:
    """The 4 corners of the box through the extreme left, top, right and bottom points."""
    x0, y0 = points.min(axis=0)
    x1, y1 = points.max(axis=0)
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float32)


def mask_canvas(rng: np.random.Generator, parts: FaceParts, box: Sequence[int], shapes: Sequence[np.ndarray],
                pad: float = MACRO_PAD) -> Canvas:
    """A canvas at SBI's mask resolution (drawn per axis, as SBI resizes its mask to a random 192..256 px
    per side) over the part of the crop `box` the shapes can reach: their bounding box within the crop,
    plus `pad` face-box units of room for blurs and deformation."""
    fx0, fy0, fx1, fy1 = parts.box68()
    fw, fh = max(fx1 - fx0, 1.0), max(fy1 - fy0, 1.0)
    side_x, side_y = rng.integers(CANVAS_SIDE[0], CANVAS_SIDE[1] + 1, size=2)
    sx, sy = float(side_x) / (WORK_AREA[0] * fw), float(side_y) / (WORK_AREA[1] * fh)
    pts = np.concatenate([np.asarray(p, np.float32) for p in shapes])
    x0, y0 = np.maximum(pts.min(axis=0), (box[0], box[1])) - (pad * fw, pad * fh)
    x1, y1 = np.minimum(pts.max(axis=0), (box[2], box[3])) + (pad * fw, pad * fh)
    w = max(int(np.ceil((x1 - x0) * sx)), 1)
    h = max(int(np.ceil((y1 - y0) * sy)), 1)
    return Canvas((float(x0), float(y0)), (sx, sy), (h, w))


def _fill_hull(mask: np.ndarray, points: np.ndarray) -> None:
    hull = cv2.convexHull(np.asarray(points, np.float32).reshape(-1, 1, 2))
    fixed = np.round(hull * 16).astype(np.int32)  # 4 fractional bits: sub-pixel vertices
    cv2.fillConvexPoly(mask, fixed, 1.0, lineType=cv2.LINE_8, shift=4)


def raw_mask(shapes: Sequence[np.ndarray], canvas: Canvas) -> np.ndarray:
    """The binary float32 mask on the canvas: the union of the shapes' convex hulls, before any blur."""
    mask = np.zeros(canvas.shape, np.float32)
    for points in shapes:
        _fill_hull(mask, canvas.points(points))
    return mask


def elastic(mask: np.ndarray, rng: np.random.Generator, alpha: float, sigma: float) -> np.ndarray:
    """The mask displaced by a smooth random field: uniform noise in [-1, 1], Gaussian-blurred by sigma,
    times alpha. The field is drawn on a grid ~sigma/1.5 times coarser and upsampled (it is smooth at
    that scale anyway), with alpha scaled so that its spread matches the fine field's."""
    h, w = mask.shape
    grid = max(1, int(round(sigma / 1.5)))
    gh, gw = max(2, -(-h // grid)), max(2, -(-w // grid))
    noise = rng.random((2, gh, gw), dtype=np.float32) * 2.0 - 1.0
    gain = np.float32(alpha / grid)
    dx = cv2.resize(cv2.GaussianBlur(noise[0], (0, 0), sigma / grid) * gain, (w, h), interpolation=cv2.INTER_LINEAR)
    dy = cv2.resize(cv2.GaussianBlur(noise[1], (0, 0), sigma / grid) * gain, (w, h), interpolation=cv2.INTER_LINEAR)
    dx += np.arange(w, dtype=np.float32)
    dy += np.arange(h, dtype=np.float32)[:, None]
    return cv2.remap(mask, dx, dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)


def _normalised(mask: np.ndarray) -> np.ndarray:
    peak = float(mask.max())
    return mask / np.float32(peak) if peak > 0 else mask


def erode_dilate(mask: np.ndarray, k1: int, k2: int, sigma2: float) -> np.ndarray:
    """SBI's erosion/dilation by two Gaussian blurs: blur with k1 and keep only what is still at full
    strength (the mask eroded by ~k1/2), then blur with k2 (a soft edge reaching k2/2 beyond it).
    The support shrinks when k1 > k2 and grows when k1 < k2; the result is normalised to peak 1."""
    blurred = cv2.GaussianBlur(mask, (k1, k1), 0)
    peak = float(blurred.max())
    if peak <= 0:
        return blurred
    core = (blurred >= np.float32(peak * CORE_LEVEL)).astype(np.float32)
    return _normalised(cv2.GaussianBlur(core, (k2, k2), sigma2))


def soften(mask: np.ndarray, k: int) -> np.ndarray:
    """One Gaussian blur of odd size k, normalised to peak 1 (the soft edge of micro masks)."""
    return _normalised(cv2.GaussianBlur(mask, (k, k), 0))


def blend_ratio(rng: np.random.Generator) -> float:
    """SBI's blend ratio: one of 0.25, 0.5, 0.75, 1, 1, 1."""
    return float(BLEND_RATIOS[int(rng.integers(len(BLEND_RATIOS)))])


def soft_mask(rng: np.random.Generator, kind: str, parts: FaceParts, box: Sequence[int],
              elastic_p: float = 1.0, elastic_micro: bool = False) -> tuple[Canvas, np.ndarray]:
    """The canvas and soft [0, 1] mask of a type over the crop `box`: macro = elastic deformation
    (p=elastic_p) then erode/dilate; micro = elastic deformation (p=elastic_p, only with `elastic_micro`:
    SBI's spatial step, docs/method.md §2.3b) then one softening blur. Every random number comes from rng,
    always in the same order."""
    shapes = polygons(kind, parts)
    macro = kind in MACRO_TYPES
    canvas = mask_canvas(rng, parts, box, shapes, MACRO_PAD if macro else MICRO_PAD)
    u_elastic = rng.random()
    k1, k2 = (int(k) for k in rng.choice(MACRO_KERNELS, size=2))
    sigma2 = float(rng.integers(SOFT_SIGMAS[0], SOFT_SIGMAS[1] + 1))
    k_micro = int(rng.choice(MICRO_KERNELS))
    mask = raw_mask(shapes, canvas)
    if u_elastic < elastic_p and (macro or elastic_micro):
        c = 0.5 * (canvas.scale[0] + canvas.scale[1])
        mask = elastic(mask, rng, ELASTIC_ALPHA * c * c, max(ELASTIC_SIGMA * c, 0.5))
    return canvas, erode_dilate(mask, k1, k2, sigma2) if macro else soften(mask, k_micro)
