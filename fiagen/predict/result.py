"""What `Detector.predict` returns: per face, per sampled frame and per track scores of one input."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fiagen.predict.tracks import assign_tracks


@dataclass
class Face:
    """One face of a sampled frame: its box (x0, y0, x1, y1, frame pixels), the face finder's score (NaN
    for a whole image), the pass that found it, P(fake) of its crop, and its track."""

    frame: int
    time: float | None
    box: tuple[float, float, float, float]
    det_score: float
    finder: str
    score: float
    track: int = -1


@dataclass
class FrameScore:
    """A sampled frame with a face: its index, time (seconds; None for an image) and score (max over its
    faces, as evaluation)."""

    index: int
    time: float | None
    score: float
    faces: list[Face]


@dataclass
class Track:
    """A face followed across sampled frames: its mean P(fake) over the frames it is in, its peak, how
    many faces it holds and when it is first and last seen (seconds; None for an image)."""

    id: int
    score: float
    peak: float
    faces: int
    first: float | None
    last: float | None


@dataclass
class Prediction:
    """One input's verdict material. `score` is P(fake) (mean over frames with a face of the frame's max
    over faces; None when no face was scored); `status` ok / no_face / failed with `reason`; `note` says
    what else happened (a stream that ended before its container's frame count)."""

    source: str
    kind: str  # video, image or array
    status: str
    score: float | None
    frames: list[FrameScore] = field(default_factory=list)
    tracks: list[Track] = field(default_factory=list)
    frames_sampled: int = 0
    fps: float | None = None
    duration: float | None = None
    reason: str = ""
    note: str = ""

    @property
    def faces(self) -> list[Face]:
        """Every scored face, in frame order."""
        return [f for fr in self.frames for f in fr.faces]

    def __str__(self) -> str:
        if self.score is None:
            return f"{self.source}: {self.status} ({self.reason or 'no face found'})"
        return (f"{self.source}: P(fake) {self.score:.4f} over {len(self.frames)} frames, {len(self.faces)} faces, "
                f"{len(self.tracks)} tracks")


def build(source: str, kind: str, faces: list[Face], **fields: object) -> Prediction:
    """The Prediction of scored faces: tracks assigned, frames grouped (in frame order), the score
    aggregated as evaluation aggregates it; no face: status no_face (unless `fields` says failed)."""
    faces = sorted(faces, key=lambda f: (f.frame, f.box[0]))
    ids = assign_tracks([f.frame for f in faces], np.array([f.box for f in faces]))
    for f, t in zip(faces, ids, strict=True):
        f.track = int(t)
    frames: list[FrameScore] = []
    for f in faces:
        if not frames or frames[-1].index != f.frame:
            frames.append(FrameScore(f.frame, f.time, f.score, []))
        frames[-1].faces.append(f)
        frames[-1].score = max(frames[-1].score, f.score)
    tracks = []
    for t in range(int(ids.max()) + 1 if len(ids) else 0):
        mine = [f for f in faces if f.track == t]
        tracks.append(Track(t, float(np.mean([f.score for f in mine])), max(f.score for f in mine), len(mine),
                            mine[0].time, mine[-1].time))
    status = str(fields.pop("status", "ok" if frames else "no_face"))
    if status == "no_face":
        fields["reason"] = f"no face found in {fields.get('frames_sampled', 0)} sampled frame(s)"
    score = float(np.mean([fr.score for fr in frames])) if frames and status == "ok" else None
    return Prediction(source, kind, status, score, frames, tracks, **fields)  # type: ignore[arg-type]

