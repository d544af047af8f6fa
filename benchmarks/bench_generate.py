"""Online FIA-USA throughput: pairs/s on one core (one process, one thread) at 380 px.

Makes shards from the shared real videos (precompute with --ae none --sr none, then adds stand-in AE
and SR images to every row so that all MMR paths run: AE = area-down x2 then bilinear up, SR = bicubic
down x4 then up), builds the training Dataset and times `ds[i]` over several epochs, configured like
a DataLoader worker (`worker_init`). Prints the per-step split of a pair's time (wall and CPU ms) and
as its last line a JSON object with `pairs_per_s_per_core` (wall clock). The issue's reference: SBI's
generator at ~26.6 pairs/s/core here; target >= 53, aim 3x. On a shared machine the wall figure is
noisy: `cpu_pairs_per_s` (process CPU time) and `loadavg_1m` are printed beside it.

    python benchmarks/bench_generate.py [--data ../shared/data] [--pairs 600] [--size 380] [--shards OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

from fiagen.generate.dataset import FIAUSADataset, worker_init
from fiagen.generate.pair import STEPS, Stopwatch
from fiagen.manifests.manifest import read_manifest
from fiagen.precompute.index import write_manifest
from fiagen.precompute.shard_writer import write_shard
from fiagen.precompute.shards import FrameRecord, ShardContent, ShardReader, read_shard_meta

SBI_REFERENCE = 26.6
TARGET = 53.0
ALL_STEPS = ("read",) + STEPS + ("tensor",)


def make_shards(data: Path, frames: int, out: Path) -> Path:
    """Precompute the shared real videos (no reconstructors) into out."""
    import ray

    from fiagen.precompute.entry import PrecomputeConfig, precompute

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        precompute(PrecomputeConfig(src=f"folder:{data / 'real_videos'}", out=str(out), frames=frames,
                                    ae="none", sr="none", quiet=True))
    finally:
        ray.shutdown()
    return out


def stand_in(image: np.ndarray, factor: int, down: int, up: int) -> np.ndarray:
    h, w = image.shape[:2]
    small = cv2.resize(image, (max(1, w // factor), max(1, h // factor)), interpolation=down)
    return cv2.resize(small, (w, h), interpolation=up)


def add_reconstructions(out: Path) -> None:
    """Rewrite every shard with stand-in AE and SR images, and the manifest with the new checksums."""
    manifest = read_manifest(out)
    shards = []
    for rel in manifest["shard"].unique():
        path = out / rel
        meta = read_shard_meta(path)
        reader = ShardReader(path)
        records = []
        for row in range(reader.n_rows):
            r = reader.row(row)
            image = reader.image(row)
            records.append(FrameRecord(
                video_id=r["video_id"], frame_index=int(r["frame_index"]), n_faces=int(r["n_faces"]),
                det_score=float(r["det_score"]), crop_box=tuple(int(v) for v in r["crop_box"]),
                frame_size=tuple(int(v) for v in r["frame_size"]), face_box=r["face_box"],
                landmarks81=r["landmarks81"], mesh478=r["mesh478"], image=image,
                ae=stand_in(image, 2, cv2.INTER_AREA, cv2.INTER_LINEAR),
                sr=stand_in(image, 4, cv2.INTER_CUBIC, cv2.INTER_CUBIC)))
        reader.close()
        content = ShardContent(split=meta["split"], shard_id=meta["shard_id"], videos=meta["videos"], records=records,
                               failures=meta["failures"], video_stats=meta["video_stats"], ae_id="stand-in-ae",
                               sr_id="stand-in-sr", compression=meta["compression"])
        shards.append((rel, write_shard(path, content)))
    write_manifest(out, shards)


def measure(out: Path, pairs: int, size: int, ablation: str) -> dict:
    worker_init(0)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = FIAUSADataset(out, split="train", size=size, seed=0, train=True, ablation=ablation)
    build_s = time.perf_counter() - start
    for i in range(min(20, len(ds))):  # warm-up: file handles, noise bank, caches
        ds[i]
    watch = Stopwatch()
    masks: Counter = Counter()
    recons: Counter = Counter()
    load = os.getloadavg()[0]
    wall, cpu = time.perf_counter(), time.process_time()
    for k in range(pairs):
        ds.set_epoch(1 + k // len(ds))
        meta = ds.item(k % len(ds), watch)["meta"]
        masks[meta["mask_type"]] += 1
        recons[meta["recon"]] += 1
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    manifest = read_manifest(out)
    train = manifest[manifest["split"] == "train"]
    boxes = np.stack(train["face_box"].to_numpy())
    return {
        "rows": len(ds), "build_s": build_s, "wall_s": wall, "cpu_s": cpu, "pairs": pairs, "watch": watch,
        "masks": dict(masks), "recons": dict(recons), "loadavg": (load + os.getloadavg()[0]) / 2,
        "crop_px": float(np.mean([train["crop_w"].mean(), train["crop_h"].mean()])),
        "face_px": float(np.mean([(boxes[:, 2] - boxes[:, 0]).mean(), (boxes[:, 3] - boxes[:, 1]).mean()])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("FIAGEN_TEST_DATA", "../shared/data"))
    parser.add_argument("--shards", default=None, help="use this precompute output instead of making one")
    parser.add_argument("--frames", type=int, default=8, help="frames per video when making shards")
    parser.add_argument("--pairs", type=int, default=600)
    parser.add_argument("--size", type=int, default=380)
    parser.add_argument("--ablation", default="full")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.shards:
            out = Path(args.shards)
        else:
            out = make_shards(Path(args.data), args.frames, Path(tmp) / "out")
            add_reconstructions(out)
        r = measure(out, args.pairs, args.size, args.ablation)
    rate, cpu_rate = r["pairs"] / r["wall_s"], r["pairs"] / r["cpu_s"]
    watch = r["watch"]
    print(f"{r['rows']} train frames: stored crops ~{r['crop_px']:.0f} px, face boxes ~{r['face_px']:.0f} px; "
          f"dataset built (checksums included) in {r['build_s']:.2f}s")
    print(f"{r['pairs']} pairs at {args.size} px ({args.ablation}): {rate:.1f} pairs/s wall, {cpu_rate:.1f} pairs/s "
          f"by CPU time, load average {r['loadavg']:.2f} (2 cores shared: wall time includes waiting)")
    print(f"{'step':<12}{'wall ms':>9}{'cpu ms':>9}{'share':>8}")
    for step in ALL_STEPS:
        ms, cms = 1000 * watch.seconds[step] / r["pairs"], 1000 * watch.cpu_seconds[step] / r["pairs"]
        print(f"{step:<12}{ms:>9.3f}{cms:>9.3f}{ms / (1000 * r['wall_s'] / r['pairs']):>8.1%}")
    other = r["wall_s"] - sum(watch.seconds.values())
    print(f"{'other':<12}{1000 * other / r['pairs']:>9.3f}")
    print(f"mask types: {r['masks']}; reconstructions: {r['recons']}")
    summary = {
        "pairs_per_s_per_core": round(rate, 1),
        "cpu_pairs_per_s": round(cpu_rate, 1),
        "ms_per_pair": round(1000 * r["wall_s"] / r["pairs"], 3),
        "steps_ms": {s: round(1000 * watch.seconds[s] / r["pairs"], 3) for s in ALL_STEPS},
        "size": args.size,
        "pairs": r["pairs"],
        "crop_px": round(r["crop_px"], 1),
        "speedup_vs_sbi": round(rate / SBI_REFERENCE, 2),
        "target": TARGET,
        "loadavg_1m": round(r["loadavg"], 2),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
