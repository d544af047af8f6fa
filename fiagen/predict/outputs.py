"""What `fiagen predict` writes and prints: predictions.csv / .jsonl (one row per input, fiagen.predict.rows),
faces.csv (one row per scored face), a timeline PNG per video (P(fake) over time, one line per track),
and the terminal table, most suspicious first."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen first
import pandas as pd  # noqa: E402

from fiagen.core.files import atomic_file, write_text  # noqa: E402

FACES_COLUMNS = ["input", "frame", "time_s", "face", "track", "x0", "y0", "x1", "y1", "det_score", "finder", "score"]


def slug(source: str) -> str:
    """A file name stem for an input: its stem and a short digest of its path (two inputs of one name
    stay apart)."""
    return f"{Path(source).stem}-{hashlib.sha1(source.encode()).hexdigest()[:8]}"


def ranked(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows most suspicious first: scored inputs by score, then the others in the order found."""
    return sorted(rows, key=lambda r: (r["score"] is None, -(r["score"] or 0.0)))


def write_rows(rows: list[dict[str, Any]], faces: pd.DataFrame, out: Path) -> list[Path]:
    """predictions.csv, predictions.jsonl and faces.csv under `out`, each written whole."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "predictions.csv", out / "predictions.jsonl", out / "faces.csv"]
    with atomic_file(paths[0]) as tmp:
        pd.DataFrame(rows, columns=list(rows[0]) if rows else None).to_csv(tmp, index=False)
    write_text(paths[1], "".join(json.dumps(r) + "\n" for r in rows))
    with atomic_file(paths[2]) as tmp:
        faces.rename(columns={"video": "input"})[FACES_COLUMNS].to_csv(tmp, index=False, float_format="%.6g")
    return paths


def timeline(faces: pd.DataFrame, source: str, threshold: float, path: Path) -> Path:
    """P(fake) over time of one video's faces, one line per track, the threshold dashed."""
    fig, ax = plt.subplots(figsize=(7.0, 3.0), dpi=110)
    x = "time_s" if faces["time_s"].notna().all() else "frame"
    for track, part in faces.groupby("track"):
        part = part.sort_values("frame")
        ax.plot(part[x], part["score"], marker=".", lw=1.2, label=f"track {track}")
    ax.axhline(threshold, ls="--", lw=0.8, color="grey", label=f"threshold {threshold:g}")
    ax.set(xlabel="seconds" if x == "time_s" else "frame", ylabel="P(fake)", ylim=(0, 1), title=Path(source).name)
    ax.legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def table(rows: list[dict[str, Any]]) -> str:
    """The terminal table: verdict, P(fake), faces, tracks, frames, the top track's score, the input and
    the reason or note, most suspicious first."""
    lines = [f"{'verdict':<8} {'P(fake)':>7} {'faces':>5} {'tracks':>6} {'frames':>6} {'top track':>9}  input"]
    for r in ranked(rows):
        tracks = json.loads(r["track_scores"] or "[]")
        top = next((f"#{t['track']} {t['score']:.3f}" for t in tracks if t["track"] == r["top_track"]), "-")
        score = "-" if r["score"] is None else f"{r['score']:.4f}"
        why = r["reason"] or r["note"]
        lines.append(f"{r['verdict']:<8} {score:>7} {r['faces']:>5} {r['tracks']:>6} {r['frames_with_face']:>6} "
                     f"{top:>9}  {r['input']}" + (f"  ({why})" if why else ""))
    return "\n".join(lines)
