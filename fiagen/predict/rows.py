"""A Prediction as rows: one per input (predictions.csv / .jsonl, schema SCHEMA) and one per scored face
(faces.csv), kept in chunks (fiagen.evaluate.store.ScoreStore with these schemas) so a big folder resumes.

Input row (schema "fiagen.predictions/1"): schema, input (the path as found), kind (video, image, frames,
array), status (ok, no_face, failed), reason, note, score (P(fake); empty unless ok), verdict (fake, real,
or the status), threshold, threshold_source, frames_sampled, frames_with_face, faces, tracks, top_track
(the id of the most suspicious track), track_scores (JSON list of {track, score, peak, faces, first_s,
last_s}), fps, duration_s, detector.
Face row: input, frame, time_s, face (index in its frame), track, x0, y0, x1, y1 (frame pixels), det_score
(NaN for a whole image), finder, score.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pyarrow as pa

from fiagen.predict.result import Prediction

SCHEMA = "fiagen.predictions/1"
# The store's key column is "video" (fiagen.evaluate.store); the rows call it "input".
INPUT_SCHEMA = pa.schema([
    ("video", pa.string()), ("kind", pa.string()), ("status", pa.string()), ("reason", pa.string()),
    ("note", pa.string()), ("score", pa.float64()), ("frames_sampled", pa.int64()),
    ("frames_with_face", pa.int64()), ("faces", pa.int64()), ("tracks", pa.int64()), ("top_track", pa.int64()),
    ("track_scores", pa.string()), ("fps", pa.float64()), ("duration_s", pa.float64()),
])
FACE_SCHEMA = pa.schema([
    ("video", pa.string()), ("frame", pa.int64()), ("time_s", pa.float64()), ("face", pa.int64()),
    ("track", pa.int64()), ("x0", pa.float32()), ("y0", pa.float32()), ("x1", pa.float32()), ("y1", pa.float32()),
    ("det_score", pa.float32()), ("finder", pa.string()), ("score", pa.float32()),
])
INPUT_COLUMNS = ["schema", "input", "kind", "status", "reason", "note", "score", "verdict", "threshold",
                 "threshold_source", "frames_sampled", "frames_with_face", "faces", "tracks", "top_track",
                 "track_scores", "fps", "duration_s", "detector"]


def _r(x: float | None, nd: int = 3) -> float | None:
    return None if x is None else round(float(x), nd)


def prediction_rows(p: Prediction, key: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(face rows, input row) of a Prediction, stored under `key`."""
    faces = []
    for fr in p.frames:
        for k, f in enumerate(fr.faces):
            faces.append({"video": key, "frame": f.frame, "time_s": f.time, "face": k, "track": f.track,
                          "x0": f.box[0], "y0": f.box[1], "x1": f.box[2], "y1": f.box[3],
                          "det_score": f.det_score, "finder": f.finder, "score": f.score})
    tracks = [{"track": t.id, "score": _r(t.score, 4), "peak": _r(t.peak, 4), "faces": t.faces,
               "first_s": _r(t.first), "last_s": _r(t.last)} for t in p.tracks]
    top = max(p.tracks, key=lambda t: t.score).id if p.tracks else None
    row = {"video": key, "kind": p.kind, "status": p.status, "reason": p.reason, "note": p.note, "score": p.score,
           "frames_sampled": p.frames_sampled, "frames_with_face": len(p.frames), "faces": len(faces),
           "tracks": len(p.tracks), "top_track": top, "track_scores": json.dumps(tracks), "fps": p.fps,
           "duration_s": p.duration}
    return faces, row


def verdict(score: float | None, status: str, threshold: float) -> str:
    """fake (score >= threshold), real, or the status of an input without a score."""
    if score is None or (isinstance(score, float) and math.isnan(score)) or status != "ok":
        return status
    return "fake" if score >= threshold else "real"


def input_row(stored: dict[str, Any], threshold: float, source: str, detector: str) -> dict[str, Any]:
    """The published row of a stored input row: the verdict against `threshold` (chosen on `source`), the
    schema and the detector added, in INPUT_COLUMNS order."""
    row = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in stored.items()}
    row["input"] = row.pop("video")
    row.update(schema=SCHEMA, verdict=verdict(row["score"], row["status"], threshold), threshold=threshold,
               threshold_source=source, detector=detector)
    for key in ("frames_sampled", "frames_with_face", "faces", "tracks", "top_track"):
        row[key] = None if row[key] is None else int(row[key])
    if row["score"] is not None:
        row["score"] = round(float(row["score"]), 6)
    return {k: row.get(k) for k in INPUT_COLUMNS}
