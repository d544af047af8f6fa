"""Precompute throughput on the shared real videos, with 1 and 2 Ray workers.

Prints frames/s per worker count, the per-frame split into decode / detect / mesh / crop / write, and as
its last line a JSON object with speedup_2_vs_1, overhead_fraction (time beyond decode+detect+mesh over
frame time, one worker) and landmark_hit_rate. Needs FIAGEN_TEST_DATA (or --data) pointing at the
shared media folder.

    python benchmarks/bench_precompute.py [--data ../shared/data] [--repeat 4] [--frames 32]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import ray

from fiagen.precompute.entry import PrecomputeConfig, precompute

STEPS = ("decode", "detect", "mesh", "crop", "write")


def media_folder(data: Path, repeat: int, into: Path) -> Path:
    """A folder source of the shared real clips and 519.mp4, each linked `repeat` times."""
    into.mkdir(parents=True, exist_ok=True)
    clips = sorted((data / "real_videos").glob("*.mp4")) + [data / "ffpp_train_real" / "519.mp4"]
    for r in range(repeat):
        for clip in clips:
            (into / f"{clip.stem}_{r}.mp4").symlink_to(clip.resolve())
    return into


def run(src: Path, workers: int, frames: int, tmp: Path) -> dict:
    """One measured precompute on a fresh local Ray with `workers` CPUs, after a warm-up run."""
    ray.init(address="local", num_cpus=workers, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        warm = PrecomputeConfig(src=f"folder:{src}", out=str(tmp / f"warm{workers}"), frames=1, limit=workers,
                                concurrency=workers, ae="none", sr="none", quiet=True)
        precompute(warm)
        cfg = PrecomputeConfig(src=f"folder:{src}", out=str(tmp / f"out{workers}"), frames=frames,
                               concurrency=workers, ae="none", sr="none", quiet=True)
        report = precompute(cfg).report
    finally:
        ray.shutdown()
    t, c = report["timings"], report["counts"]
    frames_done = t["frames_processed"]
    per_frame_ms = {s: 1000 * t[f"{s}_s"] / frames_done for s in STEPS}
    return {
        "workers": workers,
        "frames": frames_done,
        "seconds": t["process_s"],
        "frames_per_s": t["frames_per_s"],
        "frame_ms": 1000 * t["process_s"] * workers / frames_done,
        "per_frame_ms": per_frame_ms,
        "landmark_hit_rate": c["frames_stored"] / c["frames_sampled"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("FIAGEN_TEST_DATA", "../shared/data"))
    parser.add_argument("--repeat", type=int, default=4,
                        help="times each clip is listed (4: 1024 frames, enough for a stable figure)")
    parser.add_argument("--frames", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        src = media_folder(Path(args.data), args.repeat, tmp / "src")
        results = {w: run(src, w, args.frames, tmp) for w in (1, 2)}
    for r in results.values():
        split = "  ".join(f"{s} {ms:.1f}" for s, ms in r["per_frame_ms"].items())
        print(f"{r['workers']} worker(s): {r['frames']} frames in {r['seconds']:.1f}s = "
              f"{r['frames_per_s']:.1f} frames/s; per frame (ms, summed over workers): {split}; "
              f"frame time {r['frame_ms']:.1f} ms")
    one = results[1]
    core_ms = sum(one["per_frame_ms"][s] for s in ("decode", "detect", "mesh"))
    summary = {
        "frames_per_s_1": round(one["frames_per_s"], 2),
        "frames_per_s_2": round(results[2]["frames_per_s"], 2),
        "speedup_2_vs_1": round(results[2]["frames_per_s"] / one["frames_per_s"], 3),
        "per_frame_ms_1": {s: round(v, 2) for s, v in one["per_frame_ms"].items()},
        "overhead_fraction": round(1 - core_ms / one["frame_ms"], 3),
        "landmark_hit_rate": round(min(r["landmark_hit_rate"] for r in results.values()), 4),
        "cpu_count": os.cpu_count(),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
