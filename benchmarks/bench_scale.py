"""How each stage's cost grows with its work: precompute, one epoch of the training data path and evaluate
on FF++-shaped sources of N = 10, 100 and 1000 videos.

The source: short copies (the first `--clip-frames` frames, re-encoded with OpenCV) of the shared real
clips (`real_videos/`, `real_videos_more/`), linked under the FF++ ids 000..N-1 in FF++'s c23 layout, so
`--src ff++_c23` reads them with the official split (the ids not present are listed as missing). Per N,
each stage runs in its own process, whose process tree (Ray's processes, loader workers) is sampled from
/proc every 0.2 s:
- precompute: `fiagen precompute --src ff++_c23 --frames F --ae none --sr none` (default shard size);
  items are videos, seconds are its processing time (run.json `process_s`, Ray's start left out);
- loader: one epoch of the train split's FIA-USA pairs through the training DataLoader (FIAUSADataset,
  AtEpoch, EpochSampler, pair_loader; batch 32, no model) with 0, 1 and 2 workers; items are frames;
- evaluate: `fiagen evaluate` on a folder suite of the N clips with a tiny random-init checkpoint
  (`--frames 2`); items are videos, seconds its scoring time (report.json `wall_s`).
Per stage and N it prints seconds, items/s, peak RSS of the driver and of the largest other process of
its tree, the peak open files of one process and of the tree, and for precompute shard count, shard bytes
and manifest bytes. After each N from the second, a JSON line: per stage the per-item time ratio and the
RSS ratios, that N over the one before (the last line: the largest N; goals: time ratio <= 1.1, RSS ratio
<= 1.2, open files that do not grow with N).

    nice -n 19 python benchmarks/bench_scale.py [--sizes 10,100,1000] [--frames 8] [--workdir DIR]
                                                [--stages precompute,loader,evaluate]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from functools import partial
from pathlib import Path

import cv2
from bench_eval import _kb, _tree, suite_folder

from fiagen.manifests.sources import FFPP_VIDEO_DIR, ffpp_split_ids

FIAGEN = [sys.executable, "-m", "fiagen"]


def short_clips(data: Path, frames: int, into: Path) -> list[Path]:
    """The first `frames` frames of every shared real clip, written as mp4 under into/real_videos."""
    folder = into / "real_videos"
    folder.mkdir(parents=True, exist_ok=True)
    clips = sorted((data / "real_videos").glob("*.mp4")) + sorted((data / "real_videos_more").glob("*.mp4"))
    out = []
    for clip in clips:
        target = folder / clip.name
        if not target.exists():
            cap = cv2.VideoCapture(str(clip))
            fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
            ok, frame = cap.read()
            writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*"mp4v"), fps, frame.shape[1::-1])
            for _ in range(frames):
                if not ok:
                    break
                writer.write(frame)
                ok, frame = cap.read()
            writer.release()
            cap.release()
        out.append(target)
    return out


def ffpp_root(clips: list[Path], n: int, into: Path) -> Path:
    """An FF++ c23 tree holding the ids 000..n-1, each a link to a short clip (cycling over them)."""
    videos = into / FFPP_VIDEO_DIR
    videos.mkdir(parents=True, exist_ok=True)
    ids = sorted(i for split in ffpp_split_ids().values() for i in split)[:n]
    for k, vid in enumerate(ids):
        (videos / f"{vid}.mp4").symlink_to(clips[k % len(clips)].resolve())
    return into


class TreeSampler(threading.Thread):
    """Samples a process and its descendants every 0.2 s: peak RSS of the root and of the largest other
    process (and its name), peak summed RSS, peak open files of one process and of the tree."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.done = pid, threading.Event()
        self.peak = {"driver_rss_mb": 0.0, "worker_rss_mb": 0.0, "tree_rss_mb": 0.0, "fds_process": 0,
                     "fds_tree": 0, "worker": ""}

    def run(self) -> None:
        while not self.done.is_set():
            tree = _tree(self.pid)
            rss = {p: _kb(f"/proc/{p}/status", "VmRSS:") / 1024 for p in tree}
            fds = {p: _fds(p) for p in tree}
            others = [p for p in tree if p != self.pid]
            peak = self.peak
            peak["driver_rss_mb"] = max(peak["driver_rss_mb"], rss.get(self.pid, 0.0))
            if others and max(rss[p] for p in others) > peak["worker_rss_mb"]:
                top = max(others, key=rss.__getitem__)
                peak["worker_rss_mb"], peak["worker"] = rss[top], _name(top)
            peak["tree_rss_mb"] = max(peak["tree_rss_mb"], sum(rss.values()))
            peak["fds_process"] = max(peak["fds_process"], max(fds.values(), default=0))
            peak["fds_tree"] = max(peak["fds_tree"], sum(fds.values()))
            self.done.wait(0.2)


def _fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()[-40:]
    except OSError:
        return "?"


def sampled(cmd: list[str]) -> tuple[dict, str]:
    """Run `cmd` with its process tree sampled; (peaks, stdout). A failure ends the benchmark."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = TreeSampler(proc.pid)
    sampler.start()
    stdout, stderr = proc.communicate()
    sampler.done.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} failed ({proc.returncode}): {stderr.strip()[-2000:]}")
    return sampler.peak, stdout


def precompute(root: Path, out: Path, frames: int, concurrency: int) -> dict:
    start = time.perf_counter()
    peak, _ = sampled([*FIAGEN, "precompute", "--src", "ff++_c23", "--root", str(root), "--out", str(out),
                       "--frames", str(frames), "--ae", "none", "--sr", "none", "--concurrency", str(concurrency),
                       "--quiet"])
    report = json.loads((out / "run.json").read_text())
    shards = list(out.glob("shards/*/*.h5"))
    return {**peak, "items": report["counts"]["videos_found"], "seconds": report["timings"]["process_s"],
            "wall_s": time.perf_counter() - start, "frames": report["counts"]["frames_stored"],
            "shards": len(shards), "shard_mb": sum(p.stat().st_size for p in shards) / 1e6,
            "manifest_kb": (out / "manifest.parquet").stat().st_size / 1e3}


def loader_epoch(shards: str, workers: int, size: int) -> dict:
    """(in a child process) One epoch of the train split through the training DataLoader."""
    from fiagen.generate.dataset import FIAUSADataset
    from fiagen.generate.loader import AtEpoch, EpochSampler, pair_loader

    start = time.perf_counter()
    ds = FIAUSADataset(shards, split="train", size=size, seed=0, train=True)
    sampler = EpochSampler(ds, 1, 0, seed=0)
    loader = pair_loader(AtEpoch(ds), 32, sampler=sampler, drop_last=True, num_workers=workers,
                         persistent_workers=workers > 0)
    sampler.set_epoch(0)
    ready = time.perf_counter()
    items = sum(len(batch["real"]) for batch in loader)
    return {"items": items, "seconds": time.perf_counter() - ready, "setup_s": ready - start}


def evaluate(clips_data: Path, n: int, ckpt: Path, tmp: Path, concurrency: int) -> dict:
    suite = suite_folder(clips_data, n, tmp / f"suite{n}")
    out = tmp / f"eval{n}"
    start = time.perf_counter()
    peak, _ = sampled([*FIAGEN, "evaluate", "--suite", f"folder:{suite}", "--ckpt", str(ckpt), "--out", str(out),
                       "--frames", "2", "--concurrency", str(concurrency), "--quiet"])
    report = json.loads(next(out.glob("*/report.json")).read_text())
    return {**peak, "items": report["conditions"]["raw"]["videos"], "seconds": report["timings"]["wall_s"],
            "wall_s": time.perf_counter() - start}


def line(stage: str, n: int, r: dict) -> str:
    extra = (f"  shards {r['shards']} ({r['shard_mb']:.1f} MB), manifest {r['manifest_kb']:.1f} kB, "
             f"{r['frames']} frames" if "shards" in r else "")
    return (f"{stage:10s} N={n:5d}: {r['items']:6d} items in {r['seconds']:7.1f} s = {r['items'] / r['seconds']:7.2f}"
            f" items/s ({1e3 * r['seconds'] / r['items']:6.1f} ms/item); peak RSS driver {r['driver_rss_mb']:6.0f} MB,"
            f" largest other {r['worker_rss_mb']:6.0f} MB ({r['worker'] or '-'}), tree {r['tree_rss_mb']:6.0f} MB;"
            f" open files {r['fds_process']} (one process), {r['fds_tree']} (tree){extra}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get("FIAGEN_TEST_DATA", "../shared/data"), type=Path)
    ap.add_argument("--sizes", default="10,100,1000", help="the numbers of videos N")
    ap.add_argument("--frames", type=int, default=8, help="precompute's --frames")
    ap.add_argument("--clip-frames", type=int, default=16, help="frames of each short clip")
    ap.add_argument("--size", type=int, default=128, help="the loader's pair size and the checkpoint's input")
    ap.add_argument("--concurrency", type=int, default=2)
    ap.add_argument("--stages", default="precompute,loader,evaluate", help="which stages to run (the loader needs "
                    "precompute's output)")
    ap.add_argument("--workdir", type=Path, help="keep sources and outputs here (default: a temporary folder)")
    ap.add_argument("--child-loader", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_loader:
        print(json.dumps(loader_epoch(args.child_loader[0], int(args.child_loader[1]), args.size)))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp_name:
        tmp = Path(tmp_name)
        clips = short_clips(args.data, args.clip_frames, tmp / "clips")
        import torch

        from fiagen.train.checkpoint import save_checkpoint
        from fiagen.train.model import build_detector

        torch.manual_seed(0)
        ckpt = save_checkpoint(tmp / "run" / "best.pt", build_detector("resnet10t", args.size), train_data="none")
        results: dict[str, dict[int, dict]] = {}
        for n in sizes:
            root, out = ffpp_root(clips, n, tmp / f"ffpp{n}"), tmp / f"out{n}"
            runs = [("precompute", partial(precompute, root, out, args.frames, args.concurrency))]
            runs += [(f"loader_w{w}", partial(_loader, out, w, args.size)) for w in (0, 1, 2)]
            runs += [("evaluate", partial(evaluate, tmp / "clips", n, ckpt, tmp, args.concurrency))]
            chosen = args.stages.split(",")
            for stage, run in [(stage, run) for stage, run in runs if stage.split("_")[0] in chosen]:
                results.setdefault(stage, {})[n] = r = run()
                print(line(stage, n, r), flush=True)
            if len(next(iter(results.values()))) > 1:  # so far: the largest N over the one before
                print(json.dumps(ratios(results, sizes[:sizes.index(n) + 1], args.frames)), flush=True)


def ratios(results: dict[str, dict[int, dict]], sizes: list[int], frames: int) -> dict:
    """Per stage: per-item time and peak RSS at the largest N over the N before; open files per N."""
    big, before = sizes[-1], sizes[-2]
    out = {}
    for stage, by_n in results.items():
        a, b = by_n[before], by_n[big]
        out[stage] = {"per_item_time_ratio": round((b["seconds"] / b["items"]) / (a["seconds"] / a["items"]), 3),
                      "driver_rss_ratio": round(b["driver_rss_mb"] / a["driver_rss_mb"], 3),
                      "worker_rss_ratio": round(b["worker_rss_mb"] / max(a["worker_rss_mb"], 1), 3),
                      "fds_process": [by_n[n]["fds_process"] for n in sizes]}
    return {"n": big, "vs": before, "frames": frames, "cpu_count": os.cpu_count(),
            "loadavg_1m": round(os.getloadavg()[0], 2), "ratios": out}


def _loader(out: Path, workers: int, size: int) -> dict:
    peak, stdout = sampled([sys.executable, __file__, "--size", str(size), "--child-loader", str(out), str(workers)])
    return {**peak, **json.loads(stdout.splitlines()[-1])}


if __name__ == "__main__":
    main()
