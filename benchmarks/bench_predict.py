"""`fiagen predict` speed on a 720p video: frames/s end to end and each stage's share, per backbone and engine.

The video is a shared real clip upscaled to 720 px high and centred on a 1280x720 canvas (MPEG-4 part 2,
OpenCV's one mp4 encoder), written into a temporary folder. Backbones: tf_efficientnet_lite0 at 160 px and
efficientnet_b4 at 380 px, random init (speed does not depend on the weights), saved as checkpoints and
exported to ONNX. Engines: torch (the checkpoint) and onnxruntime (the export), on --device.

Per case: `Detector.predict(video)` end to end (frames sampled per second of wall time, best of --repeat),
then the same work stage by stage with the same objects: decode (the sampled frames, read as predict reads
them), face finding (the face policy on each frame), crop (the evaluation crop of each face) and the
detector (the crops scored in predict's batches). Overhead: end to end over the sum of the stages, minus 1
(the goal is <= 10%). Both are timed in wall seconds and in this process's CPU seconds (all its threads):
on a shared, busy machine the wall figures swing with the load while the CPU ones (the work done) hold,
so the stage shares and the overhead are quoted from CPU time, frames/s from wall time. The last line is
JSON with every case.

    python benchmarks/bench_predict.py [--data ../shared/data] [--frames 32] [--device cpu|cuda] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from fiagen.evaluate.scoring import frame_faces
from fiagen.generate.crop import eval_crop
from fiagen.precompute.faces import FaceLandmarker
from fiagen.precompute.video import SampledFrames
from fiagen.predict.detector import Detector
from fiagen.predict.export import export_model
from fiagen.train.checkpoint import save_checkpoint
from fiagen.train.model import build_detector

BACKBONES = (("tf_efficientnet_lite0", 160), ("efficientnet_b4", 380))
CLIP = "real_videos/liveportrait_d12.mp4"
STAGES = ("decode", "faces", "crop", "detector")


def make_720p(src: Path, out: Path) -> Path:
    """`src` upscaled to 720 px high, centred on a black 1280x720 canvas, every frame, same fps."""
    cap = cv2.VideoCapture(str(src))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (1280, 720))
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        h, w = frame.shape[:2]
        scaled = cv2.resize(frame, (round(w * 720 / h), 720), interpolation=cv2.INTER_CUBIC)[:, :1280]
        canvas = np.zeros((720, 1280, 3), np.uint8)
        x0 = (1280 - scaled.shape[1]) // 2
        canvas[:, x0:x0 + scaled.shape[1]] = scaled
        writer.write(canvas)
    cap.release()
    writer.release()
    return out


def models(backbone: str, size: int, folder: Path) -> dict[str, Path]:
    """A random-init checkpoint of `backbone` at `size` and its ONNX export: {engine: file}."""
    torch.manual_seed(0)
    ckpt = save_checkpoint(folder / f"{backbone}-{size}.pt", build_detector(backbone, size))
    return {"torch": ckpt, "onnxruntime": export_model(ckpt, "onnx").path}


def timed(fn: Callable[[], Any]) -> tuple[np.ndarray, Any]:
    """([wall seconds, CPU seconds of this process], fn())."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return np.array([time.perf_counter() - wall, time.process_time() - cpu]), out


def stage_seconds(det: Detector, finder: FaceLandmarker, video: Path) -> dict[str, np.ndarray]:
    """Each stage of predict on its own, [wall, CPU] seconds: decode, face finding (with a warm `finder`),
    crop, detector (in predict's batches)."""
    seconds = {k: np.zeros(2) for k in STAGES}
    seconds["decode"], frames = timed(lambda: list(SampledFrames(video, det.frames)))
    found = []
    for _, frame in frames:
        s, faces = timed(lambda frame=frame: frame_faces(frame, finder, det.face))
        seconds["faces"] += s
        found.append((frame, faces))
    crops = []
    for frame, faces in found:
        s, some = timed(lambda frame=frame, faces=faces: [eval_crop(frame, f.box, det.size) for f in faces])
        seconds["crop"] += s
        crops += some
    for i in range(0, len(crops), det.batch_size):
        batch = np.stack(crops[i:i + det.batch_size])
        seconds["detector"] += timed(lambda batch=batch: det.engine.score_crops(batch))[0]
    return seconds


def run_case(path: Path, device: str, video: Path, frames: int, repeat: int) -> dict[str, Any]:
    """End to end and per stage for one model file on one device (best of `repeat` each, after a warm run)."""
    with Detector.load(path, device=device, frames=frames) as det, FaceLandmarker(det.min_face_score) as finder:
        faces = len(det.predict(video).faces)  # warm: face finder graphs, the engine's first run
        times, runs = [], []
        for _ in range(repeat):  # alternated, so that a busy spell of the machine hits both alike
            times.append(timed(lambda: det.predict(video))[0])
            runs.append(stage_seconds(det, finder, video))
    e2e = np.min(times, axis=0)  # best of the runs, wall and CPU apart
    stages = {k: np.min([r[k] for r in runs], axis=0) for k in STAGES}
    total = sum(stages.values())
    return {"frames": frames, "faces": faces, "frames_per_s": frames / e2e[0], "e2e_wall_s": e2e[0],
            "e2e_cpu_s": e2e[1], "stages_wall_s": {k: v[0] for k, v in stages.items()},
            "stages_cpu_s": {k: v[1] for k, v in stages.items()},
            "shares_cpu": {k: v[1] / total[1] for k, v in stages.items()},
            "overhead_cpu": e2e[1] / total[1] - 1, "overhead_wall": e2e[0] / total[0] - 1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("FIAGEN_TEST_DATA", "../shared/data"))
    parser.add_argument("--frames", type=int, default=32, help="frames sampled from the video (predict's --frames)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        video = make_720p(Path(args.data) / CLIP, Path(tmp) / "clip720p.mp4")
        print(f"video: {CLIP} upscaled to 1280x720, {SampledFrames(video, 1).declared} frames; {args.frames} "
              f"sampled; device {args.device}; torch {torch.get_num_threads()} threads")
        for backbone, size in BACKBONES:
            for engine, path in models(backbone, size, Path(tmp)).items():
                case = {"backbone": backbone, "size": size, "engine": engine, "device": args.device}
                try:
                    case.update(run_case(path, args.device, video, args.frames, args.repeat))
                except Exception as err:  # noqa: BLE001 - e.g. no CUDA provider in this onnxruntime
                    print(f"{backbone} {size} px {engine}: skipped ({type(err).__name__}: {err})")
                    continue
                shares = "  ".join(f"{k} {v:.0%}" for k, v in case["shares_cpu"].items())
                print(f"{backbone} {size} px {engine:11s} {case['frames_per_s']:6.2f} frames/s ({case['faces']} faces, "
                      f"{case['e2e_wall_s']:.2f} s wall, {case['e2e_cpu_s']:.2f} s CPU); CPU shares: {shares}; "
                      f"overhead {case['overhead_cpu']:+.1%} CPU ({case['overhead_wall']:+.1%} wall)")
                results.append(case)
    print(json.dumps({"device": args.device, "cases": results}, default=float))


if __name__ == "__main__":
    main()
