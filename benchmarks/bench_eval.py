"""Evaluation throughput and memory for 10 and for 40 videos (the shared real clips, repeated).

Each size runs `fiagen evaluate` on a folder suite in a fresh process (its own local Ray) with a tiny
random-init checkpoint, and samples the memory of that process and all its descendants (Ray's
raylet, object store, workers) every 0.2 s: the sum of RSS, the sum of PSS (shared pages split between
the processes that map them, so the object store is not counted once per worker), and the driver's RSS.
videos/s is the scoring phase (report.json timings: decode, detect, crop, inference, writing), without
Ray's start; marginal videos/s, (40 - 10) / (time for 40 - time for 10), leaves out the fixed start of
the task workers and the detector actor too. The last line is a JSON object with `rss_ratio_40_vs_10`
(tree PSS peak, 40 over 10 videos; the target is <= 1.2, memory flat in the number of videos).

    python benchmarks/bench_eval.py [--data ../shared/data] [--frames 32] [--size 128] [--concurrency N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from fiagen.manifests.suites import suite_dirname
from fiagen.train.checkpoint import save_checkpoint
from fiagen.train.model import build_detector


def suite_folder(data: Path, n: int, into: Path) -> Path:
    """real/ with `n` links cycling over the shared clips; an empty fake/ (the layout needs it)."""
    clips = sorted((data / "real_videos").glob("*.mp4"))
    (into / "real").mkdir(parents=True)
    (into / "fake").mkdir()
    for i in range(n):
        (into / "real" / f"{i:03d}_{clips[i % len(clips)].name}").symlink_to(clips[i % len(clips)].resolve())
    return into


def _tree(root: int) -> list[int]:
    """`root` and every descendant process, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    out, stack = [], [root]
    while stack:
        pid = stack.pop()
        out.append(pid)
        stack += children.get(pid, [])
    return out


def _kb(path: str, key: str) -> int:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def run(data: Path, n: int, ckpt: Path, frames: int, concurrency: int, tmp: Path) -> dict:
    """One `fiagen evaluate` on `n` videos in a subprocess, with its memory sampled."""
    suite = suite_folder(data, n, tmp / f"suite{n}")
    out = tmp / f"eval{n}"
    cmd = [sys.executable, "-m", "fiagen", "evaluate", "--suite", f"folder:{suite}", "--ckpt", str(ckpt),
           "--out", str(out), "--frames", str(frames), "--concurrency", str(concurrency), "--quiet"]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak_rss = peak_pss = peak_driver = 0
    while proc.poll() is None:
        pids = _tree(proc.pid)
        peak_rss = max(peak_rss, sum(_kb(f"/proc/{p}/status", "VmRSS:") for p in pids))
        peak_pss = max(peak_pss, sum(_kb(f"/proc/{p}/smaps_rollup", "Pss:") for p in pids))
        peak_driver = max(peak_driver, _kb(f"/proc/{proc.pid}/status", "VmRSS:"))
        time.sleep(0.2)
    stdout, stderr = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"fiagen evaluate failed ({proc.returncode}): {stderr.strip()[-2000:]}")
    report = json.loads((out / suite_dirname(f"folder:{suite}") / "report.json").read_text())
    timings, raw = report["timings"], report["conditions"]["raw"]
    return {
        "videos": raw["videos"],
        "faces": raw["faces"],
        "scoring_s": timings["wall_s"],
        "total_s": time.perf_counter() - start,
        "videos_per_s": raw["videos_scored_now"] / timings["wall_s"],
        "peak_rss_mb": peak_rss / 1024,
        "peak_pss_mb": peak_pss / 1024,
        "driver_peak_rss_mb": peak_driver / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("FIAGEN_TEST_DATA", "../shared/data"))
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--backbone", default="resnet10t")
    parser.add_argument("--size", type=int, default=128, help="the tiny checkpoint's input size")
    parser.add_argument("--concurrency", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        torch.manual_seed(0)
        ckpt = save_checkpoint(tmp / "run" / "best.pt", build_detector(args.backbone, args.size), train_data="none")
        results = {n: run(Path(args.data), n, ckpt, args.frames, args.concurrency, tmp) for n in (10, 40)}
    for n, r in results.items():
        print(f"{n} videos: {r['videos_per_s']:.2f} videos/s ({r['scoring_s']:.1f}s scoring, {r['total_s']:.1f}s "
              f"with Ray start), {r['faces']} faces; peak RSS {r['peak_rss_mb']:.0f} MB (tree), PSS "
              f"{r['peak_pss_mb']:.0f} MB (tree), driver {r['driver_peak_rss_mb']:.0f} MB")
    a, b = results[10], results[40]
    print(json.dumps({
        "videos_per_s_10": round(a["videos_per_s"], 3),
        "videos_per_s_40": round(b["videos_per_s"], 3),
        "marginal_videos_per_s": round((b["videos"] - a["videos"]) / (b["scoring_s"] - a["scoring_s"]), 3),
        "peak_pss_mb_10": round(a["peak_pss_mb"], 1),
        "peak_pss_mb_40": round(b["peak_pss_mb"], 1),
        "rss_ratio_40_vs_10": round(b["peak_pss_mb"] / a["peak_pss_mb"], 3),
        "rss_sum_ratio_40_vs_10": round(b["peak_rss_mb"] / a["peak_rss_mb"], 3),
        "driver_rss_ratio_40_vs_10": round(b["driver_peak_rss_mb"] / a["driver_peak_rss_mb"], 3),
        "frames": args.frames,
        "concurrency": args.concurrency,
        "checkpoint": f"{args.backbone}@{args.size} (random init)",
        "cpu_count": os.cpu_count(),
    }))


if __name__ == "__main__":
    main()
