"""Landmark layouts derived from mediapipe's 478-point face mesh.

Image orientation throughout: x grows to the right of the picture, y grows downwards. "Left"
means the picture's left (the subject's right side), as in dlib's 68-point layout.

The 81-point layout is dlib's 68 points followed by 13 forehead points ordered as one arc from the
picture's left to its right (points 68..80): the top of mediapipe's face oval from mesh point 21 (above
the left brow's outer end) over 10 (top centre) to 251, resampled to 13 points equally spaced along it.
The micro-mask regions (eyes, mouth) are given as mesh contours, richer than the 81-point subsets.
"""

from __future__ import annotations

import numpy as np

# dlib 68, in dlib order. Each entry is the mesh index that stands in for that dlib point.
DLIB68_FROM_MESH: tuple[int, ...] = (
    # 0-16 jaw line, picture-left ear level -> chin (8) -> picture-right ear level
    234, 93, 132, 58, 172, 136, 150, 176, 152, 400, 379, 365, 397, 288, 361, 323, 454,
    # 17-21 picture-left brow, outer -> inner; 22-26 picture-right brow, inner -> outer
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300,
    # 27-30 nose bridge, top -> tip; 31-35 nostril base, left -> right
    168, 197, 5, 4, 98, 97, 2, 326, 327,
    # 36-41 picture-left eye: outer corner, upper lid x2, inner corner, lower lid x2
    33, 160, 158, 133, 153, 144,
    # 42-47 picture-right eye: inner corner, upper lid x2, outer corner, lower lid x2
    362, 385, 387, 263, 373, 380,
    # 48-59 outer lip: left corner, upper lip -> right corner, lower lip back to the left
    61, 40, 37, 0, 267, 270, 291, 321, 314, 17, 84, 91,
    # 60-67 inner lip: left corner, upper -> right corner, lower back
    78, 81, 13, 311, 308, 402, 14, 178,
)

# 68-80 come from this polyline (the upper face oval, left to right), resampled to FOREHEAD_POINTS points.
FOREHEAD_ARC_MESH: tuple[int, ...] = (21, 54, 103, 67, 109, 10, 338, 297, 332, 284, 251)
FOREHEAD_POINTS = 13

# Named index ranges into the 81-point layout.
JAW81 = tuple(range(0, 17))
BROWS81 = tuple(range(17, 27))
NOSE81 = tuple(range(27, 36))
EYES81 = tuple(range(36, 48))
MOUTH81 = tuple(range(48, 68))
FOREHEAD81 = tuple(range(68, 81))

# Micro-mask regions as mesh indices: each eye is its lid contour plus the ring around it (the lids
# and the skin a face editor touches when it edits an eye); the mouth is the outer lip contour.
LEFT_EYE_MESH: tuple[int, ...] = (
    33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246,
    130, 25, 110, 24, 23, 22, 26, 112, 243, 190, 56, 28, 27, 29, 30, 247,
)
RIGHT_EYE_MESH: tuple[int, ...] = (
    263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466,
    359, 255, 339, 254, 253, 252, 256, 341, 463, 414, 286, 258, 257, 259, 260, 467,
)
MOUTH_MESH: tuple[int, ...] = (
    61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185,
)

# The four extreme keypoints of the rectangle mask are taken from the 81 points at run time
# (leftmost, rightmost, topmost, bottommost), so they need no fixed indices.


def forehead_arc(mesh: np.ndarray) -> np.ndarray:
    """FOREHEAD_POINTS (x, y) points equally spaced along the FOREHEAD_ARC_MESH polyline."""
    line = np.asarray(mesh, dtype=np.float64)[list(FOREHEAD_ARC_MESH), :2]
    along = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(line, axis=0), axis=1))])
    at = np.linspace(0.0, along[-1], FOREHEAD_POINTS)
    return np.stack([np.interp(at, along, line[:, 0]), np.interp(at, along, line[:, 1])], axis=1)


def landmarks81(mesh: np.ndarray) -> np.ndarray:
    """The 81-point dlib-style layout (x, y) from a (478, 2|3) mesh array."""
    dlib68 = np.asarray(mesh, dtype=np.float64)[list(DLIB68_FROM_MESH), :2]
    return np.concatenate([dlib68, forehead_arc(mesh)]).astype(np.float32)


def region_points(mesh: np.ndarray, region: tuple[int, ...]) -> np.ndarray:
    """The (x, y) points of a mesh region such as LEFT_EYE_MESH."""
    return np.asarray(mesh, dtype=np.float32)[list(region), :2].copy()
