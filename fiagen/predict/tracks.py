"""Face tracks across the sampled frames: each face joins the track whose last box overlaps it most
(IoU >= MIN_IOU), else the one whose last centre is nearest (within one box width), else starts a new
track. Greedy, frame by frame in frame order; enough to tell two people of a video apart."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MIN_IOU = 0.3


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two x0, y0, x1, y1 boxes."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _near(a: Sequence[float], b: Sequence[float]) -> float:
    """Centre distance of two boxes over the width of the first; < 1 counts as near."""
    ca = np.array([(a[0] + a[2]) / 2, (a[1] + a[3]) / 2])
    cb = np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2])
    return float(np.linalg.norm(ca - cb)) / max(1e-6, a[2] - a[0])


def assign_tracks(frames: Sequence[int], boxes: np.ndarray) -> np.ndarray:
    """The track id (0, 1, ... in order of first appearance) of every face, given each face's frame index
    and box (N, 4)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    out = np.full(len(boxes), -1, np.int64)
    last: list[np.ndarray] = []  # each track's latest box
    order = np.argsort(np.asarray(frames, np.int64), kind="stable")
    for frame in dict.fromkeys(np.asarray(frames, np.int64)[order].tolist()):
        faces = [int(i) for i in order if frames[i] == frame]
        free = set(range(len(last)))
        pairs = sorted((-iou(last[t], boxes[i]), _near(last[t], boxes[i]), t, i) for t in free for i in faces)
        for neg_iou, near, t, i in pairs:
            if t in free and out[i] < 0 and (-neg_iou >= MIN_IOU or near < 1.0):
                out[i] = t
                free.discard(t)
        for i in faces:
            if out[i] < 0:
                out[i] = len(last)
                last.append(boxes[i])
            last[out[i]] = boxes[i]
    return out
