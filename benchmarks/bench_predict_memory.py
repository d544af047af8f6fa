"""`fiagen predict` memory on a long video versus a short one.

A shared clip is looped (frames resized to --width px wide, written with OpenCV's mp4v) into a
--short-seconds video and a --minutes video under a temporary folder (deleted at the end; nothing is
committed). Each is predicted in a fresh process with the API the command uses (fiagen.Detector, a tiny
random-init checkpoint, --frames frames, or a frame every --every seconds) and that process's peak RSS
(getrusage ru_maxrss) is read. The last line is JSON with `rss_ratio_long_vs_short` (the target is
<= 1.2: a video is decoded as a stream, so memory does not grow with its length).

    python benchmarks/bench_predict_memory.py [--data ../shared/data] [--minutes 10] [--short-seconds 10]
                                              [--width 320] [--frames 32] [--every SECONDS]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2


def looped_video(clip: Path, seconds: float, width: int, out: Path) -> Path:
    """`clip` played again and again for `seconds`, resized to `width` px wide, as an mp4 (mp4v)."""
    cap = cv2.VideoCapture(str(clip))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        h, w = frame.shape[:2]
        frames.append(cv2.resize(frame, (width, round(h * width / w / 2) * 2), interpolation=cv2.INTER_AREA))
    cap.release()
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, frames[0].shape[1::-1])
    for k in range(round(seconds * fps)):
        writer.write(frames[k % len(frames)])
    writer.release()
    return out


def child(video: str, ckpt: str, frames: int, every: float | None) -> None:
    """Predict `video` and print one JSON line: score, frames scored, seconds and peak RSS (MiB)."""
    from fiagen import Detector

    start = time.perf_counter()
    with Detector.load(ckpt, frames=frames, every=every) as det:
        p = det.predict(video)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"score": p.score, "status": p.status, "frames_scored": len(p.frames),
                      "duration_s": p.duration, "seconds": round(time.perf_counter() - start, 1),
                      "peak_rss_mib": round(peak, 1)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--clip", default="real_videos/liveportrait_d18.mp4")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--short-seconds", type=float, default=10.0)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--every", type=float, default=None)
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        video, ckpt, frames, every = args.child
        return child(video, ckpt, int(frames), None if every == "none" else float(every))
    import torch

    from fiagen.train.checkpoint import save_checkpoint
    from fiagen.train.model import build_detector

    with tempfile.TemporaryDirectory(prefix="bench_predict_memory-") as tmp:
        torch.manual_seed(0)
        ckpt = save_checkpoint(Path(tmp) / "best.pt", build_detector("resnet10t", 128), train_data="bench")
        results = {}
        for name, seconds in (("short", args.short_seconds), ("long", 60 * args.minutes)):
            t0 = time.perf_counter()
            video = looped_video(args.data / args.clip, seconds, args.width, Path(tmp) / f"{name}.mp4")
            made = time.perf_counter() - t0
            line = subprocess.run([sys.executable, __file__, "--child", str(video), str(ckpt), str(args.frames),
                                   str(args.every or "none")], check=True, capture_output=True, text=True).stdout
            results[name] = json.loads(line.strip().splitlines()[-1])
            print(f"{name}: {seconds:.0f} s video ({video.stat().st_size / 2**20:.1f} MiB, written in {made:.0f} s): "
                  f"{results[name]}")
    ratio = results["long"]["peak_rss_mib"] / results["short"]["peak_rss_mib"]
    print(json.dumps({"frames": args.frames, "every": args.every, "width": args.width,
                      "peak_rss_mib_short": results["short"]["peak_rss_mib"],
                      "peak_rss_mib_long": results["long"]["peak_rss_mib"],
                      "rss_ratio_long_vs_short": round(ratio, 3)}))


if __name__ == "__main__":
    main()
