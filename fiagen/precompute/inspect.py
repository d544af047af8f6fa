"""`fiagen inspect`: per-split counts and failures of a precompute output, and drawn sample frames."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from skimage.metrics import peak_signal_noise_ratio

from fiagen.manifests.manifest import read_manifest, read_run_report
from fiagen.precompute.landmarks import FOREHEAD81
from fiagen.precompute.shards import ShardReader


def summary(out: Path) -> str:
    """A plain-text report: counts per split, missing videos, and every failure with its reason."""
    report = read_run_report(out)
    c = report["counts"]
    if report.get("status", "complete") != "complete":  # stopped by a full disk: run.json lists the shards
        return (f"{out}: the last precompute {report['status']}\n{c['shards_complete']} of {c['shards']} shards are "
                f"complete; run it again to build the rest")
    manifest = read_manifest(out)
    lines = [
        f"{out}: source {report['config']['src']}, {c['shards']} shards, "
        f"schema {report['fingerprint']['schema_version']}",
        f"videos: {c['videos_found']} found, {c['videos_missing']} missing, {c['videos_failed']} failed",
        f"frames: {c['frames_sampled']} sampled, {c['frames_stored']} stored, {c['frames_no_face']} without a face, "
        f"{c['frames_no_landmarks']} without landmarks",
        "",
        f"{'split':<6} {'videos':>7} {'failed':>7} {'frames':>7} {'faces>1':>8} {'det_score':>9}",
    ]
    for split, s in report["per_split"].items():
        rows = manifest[manifest["split"] == split]
        multi = int((rows["n_faces"] > 1).sum())
        score = f"{rows['det_score'].mean():.3f}" if len(rows) else "-"
        lines.append(f"{split:<6} {s['videos']:>7} {s['videos_failed']:>7} {len(rows):>7} {multi:>8} {score:>9}")
    if report["failures"]:
        lines += ["", f"failures ({len(report['failures'])}):"]
        lines += [f"  {f['split']}/{f['video_id']}: {f['reason']}" for f in report["failures"]]
    if report["missing"]:
        shown = ", ".join(m["video_id"] for m in report["missing"][:10])
        more = f" and {len(report['missing']) - 10} more" if len(report["missing"]) > 10 else ""
        lines += ["", f"missing ({len(report['missing'])}): {shown}{more} (all listed in run.json)"]
    return "\n".join(lines)


def draw_landmarks(image: np.ndarray, face_box: np.ndarray, landmarks81: np.ndarray) -> np.ndarray:
    """A copy of an RGB crop with the face box (green), the 68 points (red) and the forehead arc (cyan)."""
    canvas = image.copy()
    scale = max(1, int(round(max(canvas.shape[:2]) / 256)))
    x0, y0, x1, y1 = np.round(face_box).astype(int)
    cv2.rectangle(canvas, (x0, y0), (x1, y1), (0, 255, 0), scale)
    for x, y in np.round(landmarks81[:68]).astype(int):
        cv2.circle(canvas, (x, y), scale + 1, (255, 0, 0), -1)
    arc = np.round(landmarks81[list(FOREHEAD81)]).astype(np.int32)
    cv2.polylines(canvas, [arc.reshape(-1, 1, 2)], False, (0, 255, 255), scale)
    for x, y in arc:
        cv2.circle(canvas, (x, y), scale + 1, (0, 255, 255), -1)
    return canvas


def _titled(panel: np.ndarray, title: str) -> np.ndarray:
    """A panel under a black bar that holds its title in white."""
    height = max(18, panel.shape[0] // 12)
    bar = np.zeros((height, panel.shape[1], 3), dtype=np.uint8)
    scale = height / 40
    cv2.putText(bar, title, (4, int(height * 0.75)), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255),
                max(1, int(round(scale * 2))), cv2.LINE_AA)
    return np.vstack([bar, panel])


def side_by_side(drawn: np.ndarray, original: np.ndarray,
                 variants: dict[str, np.ndarray | None]) -> tuple[np.ndarray, dict[str, float | None]]:
    """The drawn original | each reconstruction (AE, SR), titled with its PSNR (dB) against the original;
    a reconstruction that failed (None) is a grey panel titled 'failed'. Returns the image and the PSNRs."""
    panels, psnrs = [_titled(drawn, "original")], {}
    for kind, image in variants.items():
        if image is None:
            psnrs[kind] = None
            panels.append(_titled(np.full_like(original, 128), f"{kind.upper()} failed"))
        else:
            psnrs[kind] = float(peak_signal_noise_ratio(original, image, data_range=255))
            panels.append(_titled(image, f"{kind.upper()} {psnrs[kind]:.2f} dB"))
    return np.hstack(panels), psnrs


def draw_frames(out: Path, n: int, to: Path, seed: int = 0) -> list[Path]:
    """Draw `n` manifest frames (a seeded pick spread over the manifest) as PNGs in `to`; when the shards
    hold reconstructions, each PNG shows original | AE | SR with their PSNRs."""
    manifest = read_manifest(out)
    if manifest.empty:
        return []
    rng = np.random.default_rng(seed)
    picks = np.sort(rng.choice(len(manifest), size=min(n, len(manifest)), replace=False))
    to.mkdir(parents=True, exist_ok=True)
    readers: dict[str, ShardReader] = {}
    written = []
    for i in picks:
        row = manifest.iloc[int(i)]
        reader = readers.setdefault(row["shard"], ShardReader(out / row["shard"]))
        geometry = reader.row(int(row["row"]))
        original = reader.image(int(row["row"]))
        canvas = draw_landmarks(original, geometry["face_box"], geometry["landmarks81"])
        variants = {kind: reader.image(int(row["row"]), kind) if geometry[f"{kind}_ok"] else None
                    for kind in ("ae", "sr") if kind in reader.kinds}
        if variants:
            canvas, _ = side_by_side(canvas, original, variants)
        path = to / f"{row['split']}_{str(row['video_id']).replace('/', '_')}_{int(row['frame_index']):06d}.png"
        cv2.imwrite(str(path), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
        written.append(path)
    for reader in readers.values():
        reader.close()
    return written
