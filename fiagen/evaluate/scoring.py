"""Frame scoring: sampled frames -> every face -> evaluation crop -> P(fake).

Faces are found with the face policy of precompute (fiagen.precompute.faces); per unit, `--face` says
what a frame without a detected face becomes: nothing (detect), the whole image as the face
(detect-or-whole), or no detection at all, the whole image always (whole).

The decode/detect/crop side (and its Ray task) imports neither torch nor pandas, so the many task
workers stay small; `predict` imports torch when called (in the detector actor). The aggregation of
these scores into frame and video scores lives in fiagen.evaluate.tables.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import ray

from fiagen.core.media import IMAGE_SUFFIXES, is_image, sample_indices
from fiagen.evaluate.perturb import PERTURBATIONS, Perturbation
from fiagen.generate.crop import eval_crop
from fiagen.manifests.suites.listing import EvalItem
from fiagen.precompute.faces import Detection, FaceLandmarker, PassCounts
from fiagen.precompute.video import DecodeError, SampledFrames

if TYPE_CHECKING:  # the decode side never imports torch
    import torch

NO_FACE_SCORE = 0.5
AGGREGATION = "frame = max over faces; video = mean over frames; no face in any frame = 0.5"
# The finder of a face that is the whole image (detect-or-whole fallback, or whole).
WHOLE = "whole"


@dataclass
class VideoCrops:
    """The evaluation crops of one item: crops (N, S, S, 3) uint8 and, per crop, its frame, face index
    in the frame, box, detector score and finder (a pass of the face policy, or "whole"); plus counts,
    the failure reason if the item failed, the face mode it ran with, how many frames were scored as
    the whole image, and the face finder's passes (runs and faces found per pass)."""

    item: EvalItem
    crops: np.ndarray
    frame: np.ndarray
    face: np.ndarray
    boxes: np.ndarray
    det_score: np.ndarray
    frames_sampled: int = 0
    failure: str | None = None
    frames_undecodable: int = 0
    finder: tuple[str, ...] = ()
    face_mode: str = ""  # "" for an item whose task failed before it ran
    frames_whole: int = 0
    face_passes: dict[str, dict[str, int]] = field(default_factory=lambda: PassCounts().as_dict())
    # a video: the frames its stream delivered, and how many fewer than its container lists when the
    # stream ended early (the samples were then re-spread over the frames that decoded)
    frames_decoded: int = 0
    frames_shortfall: int = 0
    frames_with_face: int = field(init=False)

    def __post_init__(self) -> None:
        self.frames_with_face = len(np.unique(self.frame))


def _read_image(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DecodeError(f"cannot decode image {path.name}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _try_image(path: Path) -> np.ndarray | None:
    """An RGB frame image, or None when it cannot be decoded."""
    try:
        return _read_image(path)
    except DecodeError:
        return None


def sampled_frames(item: EvalItem, n_frames: int) -> tuple[int, Iterator[tuple[int, np.ndarray | None]]]:
    """(number of frames sampled, iterator of (frame index, RGB frame)) for a video file, an image, a
    folder of frame images or an explicit frame list; `n_frames` spread uniformly (images: one). In a
    folder or list of frames, an image that cannot be decoded comes as None (skipped by the caller). A
    video's frames come from a SampledFrames (spread over the frames that decode; its counts are known
    once it has been iterated, so the number given here is 0)."""
    if item.frames or item.path.is_dir():
        files = [Path(f) for f in item.frames] if item.frames else sorted(
            p for p in item.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DecodeError("frame folder holds no images")
        idx = sample_indices(len(files), n_frames)
        return len(idx), ((int(i), _try_image(files[i])) for i in idx)
    if is_image(item.path):
        return 1, iter([(0, _read_image(item.path))])
    return 0, SampledFrames(item.path, n_frames)


def frame_rng(seed: int, video_id: str, frame: int) -> np.random.Generator:
    """The generator for a perturbation's random parts of one frame: fixed by (seed, video, frame)."""
    return np.random.default_rng([seed, zlib.crc32(video_id.encode()), frame])


def face_mode(item: EvalItem, face_crops: bool, face: str) -> str:
    """The face mode of one unit: `face` itself, or for "auto" detect-or-whole for the image units
    (an image, a folder or list of frames) of a suite of face crops, and detect otherwise."""
    if face != "auto":
        return face
    return "detect-or-whole" if face_crops and (item.frames or item.path.is_dir() or is_image(item.path)) \
        else "detect"


def frame_faces(frame: np.ndarray, faces: FaceLandmarker, mode: str) -> list[Detection]:
    """The faces of a frame under a face mode: detected; or, when none is found (detect-or-whole) or
    always (whole), the whole image as one face with no detector score."""
    found = faces.detect(frame) if mode != WHOLE else []
    if found or mode == "detect":
        return found
    h, w = frame.shape[:2]
    return [Detection((0.0, 0.0, float(w), float(h)), float("nan"), WHOLE)]


def video_crops(item: EvalItem, n_frames: int, size: int, faces: FaceLandmarker,
                perturb: Perturbation | None = None, level: int = 0, seed: int = 0,
                mode: str = "detect") -> VideoCrops:
    """Every face of every sampled frame (`frame_faces` under `mode`), cropped with the evaluation
    policy and resized to `size`.

    Faces are found on the clean frame; a perturbation at `level` is then applied to the whole frame
    before cropping (its random parts seeded by `seed`, the video and the frame). Never raises for bad
    media: the failure is recorded.
    """
    crops, frames, face_ix, boxes, scores, finders = [], [], [], [], [], []
    sampled, undecodable, failure, video = 0, 0, None, None
    faces.passes = PassCounts()
    try:
        sampled, frames_iter = sampled_frames(item, n_frames)
        video = frames_iter if isinstance(frames_iter, SampledFrames) else None
        for index, frame in frames_iter:
            if frame is None:  # a frame image that cannot be decoded: skipped and counted
                undecodable += 1
                continue
            detections = frame_faces(frame, faces, mode)
            if detections and perturb is not None:
                frame = perturb.apply(frame, level, frame_rng(seed, item.video_id, index))
            for k, det in enumerate(detections):
                crops.append(eval_crop(frame, det.box, size))
                frames.append(index)
                face_ix.append(k)
                boxes.append(det.box)
                scores.append(det.score)
                finders.append(det.finder)
        if sampled and undecodable == sampled:
            raise DecodeError(f"none of the {sampled} sampled frame images can be decoded")
    except DecodeError as err:
        failure = str(err)
    except Exception as err:  # noqa: BLE001 - a decoder/detector error fails this item, not the run
        failure = f"{type(err).__name__}: {err}"
    if video is not None:
        sampled, undecodable = video.sampled, video.undecodable
    if failure is not None:
        crops, frames, face_ix, boxes, scores, finders = [], [], [], [], [], []
    return VideoCrops(
        item=item,
        crops=np.stack(crops) if crops else np.zeros((0, size, size, 3), np.uint8),
        frame=np.asarray(frames, np.int64),
        face=np.asarray(face_ix, np.int64),
        boxes=np.asarray(boxes, np.float32).reshape(-1, 4),
        det_score=np.asarray(scores, np.float32),
        frames_sampled=sampled,
        failure=failure,
        frames_undecodable=undecodable,
        finder=tuple(finders),
        face_mode=mode,
        frames_whole=finders.count(WHOLE),
        face_passes=faces.passes.as_dict(),
        frames_decoded=video.decoded if video is not None else 0,
        frames_shortfall=video.shortfall if video is not None else 0,
    )


@ray.remote(num_cpus=1, num_returns=2)
def crops_task(items: list[EvalItem], modes: list[str], frames: int, size: int, perturb: str | None, level: int,
               seed: int, min_score: float) -> tuple[np.ndarray, list[VideoCrops]]:
    """Ray task: decode, detect and crop a few items (each with its face mode) with one detector; the
    crops come back as one array (the first return, handed straight to the detector actor), apart from
    the small per-item records."""
    cv2.setNumThreads(1)
    fn = PERTURBATIONS[perturb] if perturb else None
    with FaceLandmarker(min_score) as faces:
        results = [video_crops(it, frames, size, faces, fn, level, seed, mode)
                   for it, mode in zip(items, modes, strict=False)]
    crops = np.concatenate([r.crops for r in results])
    for r in results:
        r.crops = r.crops[:0]
    return crops, results


def predict(model: torch.nn.Module, crops: np.ndarray, batch_size: int, device: torch.device | str) -> np.ndarray:
    """P(fake) for (N, S, S, 3) uint8 crops: the model's logits (torch module) through a sigmoid, in batches."""
    import torch

    out = []
    with torch.inference_mode():
        for i in range(0, len(crops), batch_size):
            x = torch.from_numpy(crops[i:i + batch_size]).to(device).permute(0, 3, 1, 2).float().div_(255.0)
            out.append(torch.sigmoid(model(x).reshape(-1).float()).cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)
