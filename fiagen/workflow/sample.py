"""The embedded sample: short real-face videos built offline from face photos that dependencies ship.

The faces are scikit-image's astronaut (Eileen Collins) and matplotlib's Grace Hopper portrait. Each
video is a seeded, smooth camera move (zoom, pan, slight roll) over one photo (or its mirror image)
with its own colour grade, written as mp4 in the FF++ c23 layout under ids from the official split, so
every stage runs on it exactly as on FF++. Smoke-scale only: two identities, a few dozen frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fiagen.manifests.sources import FFPP_VIDEO_DIR, ffpp_split_ids


@dataclass(frozen=True)
class SampleSpec:
    """What the embedded sample holds."""

    train: int = 8  # videos per split: train, val, test
    val: int = 2
    test: int = 4
    frames: int = 24  # frames per video
    size: int = 256  # frame side in pixels
    seed: int = 0  # the camera moves and colour grades


def sample_faces() -> list[np.ndarray]:
    """The real face photos available offline after install (RGB uint8)."""
    import matplotlib.cbook
    from skimage import data

    hopper = cv2.imread(str(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    return [data.astronaut(), cv2.cvtColor(hopper, cv2.COLOR_BGR2RGB)]


def face_box(image: np.ndarray) -> tuple[float, float, float, float]:
    """The largest face's detector box in a photo."""
    from fiagen.precompute.faces import FaceLandmarker, choose_face

    with FaceLandmarker() as faces:
        detections = faces.detect(image)
    if not detections:
        raise ValueError("the sample photo has no detectable face")
    return choose_face(detections, None).box


def camera_move(image: np.ndarray, box: tuple[float, float, float, float], frames: int, size: int,
                rng: np.random.Generator) -> list[np.ndarray]:
    """`frames` frames (size x size RGB) of a smooth random zoom/pan/roll centred near the face `box`;
    the face spans about 35-45% of the frame width."""
    t = np.linspace(0, 1, frames)
    phase = rng.uniform(0, 2 * np.pi, 4)
    face_w = box[2] - box[0]
    base_scale = size * rng.uniform(0.35, 0.45) / face_w
    fx, fy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    out = []
    for k in range(frames):
        scale = base_scale * (1 + 0.08 * np.sin(2 * np.pi * t[k] + phase[0]))
        angle = 4.0 * np.sin(2 * np.pi * t[k] + phase[1])
        cx = fx + 0.15 * face_w * np.sin(2 * np.pi * t[k] + phase[2])
        cy = fy + 0.15 * face_w * np.sin(2 * np.pi * t[k] + phase[3])
        m = cv2.getRotationMatrix2D((float(cx), float(cy)), float(angle), float(scale))
        m[:, 2] += np.array([size / 2 - cx, size / 2 - cy])
        out.append(cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT))
    return out


def colour_grade(frames: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """One random gain per channel and gamma for a whole video."""
    gain = rng.uniform(0.85, 1.15, 3)
    gamma = rng.uniform(0.85, 1.15)
    lut = np.stack([np.clip(255 * (np.arange(256) / 255) ** gamma * g, 0, 255) for g in gain], 1).astype(np.uint8)
    return [np.stack([lut[f[..., c], c] for c in range(3)], -1) for f in frames]


def write_video(path: Path, frames: list[np.ndarray], fps: float = 25.0) -> None:
    """An mp4 (MPEG-4 part 2) of RGB frames."""
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    try:
        for frame in frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()


def build_sample_ffpp(root: Path, spec: SampleSpec = SampleSpec()) -> dict[str, list[str]]:
    """Write the sample videos under root in the FF++ c23 layout; returns the video ids per split."""
    videos = Path(root) / FFPP_VIDEO_DIR
    videos.mkdir(parents=True, exist_ok=True)
    faces = sample_faces()
    faces += [np.ascontiguousarray(f[:, ::-1]) for f in faces]
    boxes = [face_box(f) for f in faces]
    ids = ffpp_split_ids()
    written: dict[str, list[str]] = {}
    for split in ("train", "val", "test"):
        written[split] = ids[split][: getattr(spec, split)]
        for n, vid in enumerate(written[split]):
            rng = np.random.default_rng([spec.seed, int(vid)])
            k = n % len(faces)
            frames = colour_grade(camera_move(faces[k], boxes[k], spec.frames, spec.size, rng), rng)
            write_video(videos / f"{vid}.mp4", frames)
    return written
