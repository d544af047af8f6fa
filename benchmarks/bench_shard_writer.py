"""Peak memory of one shard writer at precompute's defaults (256 rows a shard, no compression, builtin AE
and SR: three same-size images a row), at the native face-crop size of 720p and 1080p FF++ frames.

Each case runs in its own process, which makes a shard's rows as precompute's writer gets them and
writes them; the figure is the process's peak RSS (VmHWM) above its RSS before the rows were made.
- `streamed` (today's writer, fiagen.precompute.shard_writer): the rows come one video at a time (as
  the Ray writer fetches them) and go straight into the temporary file.
- `in_memory` (the writer before): every row of the shard at once (as the Ray task got them as its
  arguments), and the HDF5 file built in a BytesIO, then written.
Crop sizes: the stored crop is the face box widened by half its width on each side, its height above and
0.4 of it below. On FF++ 519 (640x480) it is about 0.46 of the frame's height and 0.84 as wide as tall
(measured: 207-237 x 172-198 px); `typical` scales that to the frame, `close-up` is a crop of 0.9 of
the frame's height (a face filling half the frame). The last line is JSON.

    python benchmarks/bench_shard_writer.py [--rows 256] [--frames 32] [--out DIR]
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np

from fiagen.core.files import write_bytes
from fiagen.precompute import shard_writer
from fiagen.precompute.shards import FrameRecord, ShardContent

CROPS = {  # (height, width) of a stored crop
    "720p typical": (331, 278), "720p close-up": (648, 544),
    "1080p typical": (497, 418), "1080p close-up": (972, 816),
}


def rows_of(video: int, frames: int, crop: tuple[int, int]) -> list[FrameRecord]:
    """One video's rows: image, AE and SR of the crop's size (distinct arrays, as the extraction makes them)."""
    out = []
    for k in range(frames):
        image, ae, sr = (np.full((*crop, 3), (video * frames + k + j) % 251, np.uint8) for j in range(3))
        out.append(FrameRecord(f"v{video:03d}", k, 1, 0.9, (0, 0, crop[1], crop[0]), (1080, 1920),
                               np.zeros(4, np.float32), np.zeros((81, 2), np.float32),
                               np.zeros((478, 3), np.float32), image, ae, sr))
    return out


def rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize()


def child(writer: str, crop: tuple[int, int], rows: int, frames: int, out: Path) -> dict[str, float]:
    """Write one shard the `writer` way; its size, seconds and peak RSS growth."""
    videos = max(1, rows // frames)
    content = ShardContent("train", "00000", [f"v{v:03d}" for v in range(videos)], ae_id="ae", sr_id="sr")
    path = out / "00000.h5"
    before, start = rss(), time.perf_counter()
    if writer == "streamed":
        shard_writer.write_shard(path, content, (r for v in range(videos) for r in rows_of(v, frames, crop)))
    else:
        content.records = [r for v in range(videos) for r in rows_of(v, frames, crop)]
        image = io.BytesIO()
        with h5py.File(image, "w", libver="latest") as f:
            shard_writer._write_hdf5(f, content, iter(content.records), SimpleNamespace(error=None))
        write_bytes(path, image.getbuffer())
    seconds = time.perf_counter() - start
    with open("/proc/self/status") as fh:  # VmHWM: this process's peak (ru_maxrss keeps its parent's from the fork)
        peak = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:")) * 1024 - before
    return {"shard_mb": path.stat().st_size / 1e6, "peak_rss_growth_mb": peak / 1e6, "seconds": seconds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=256, help="rows a shard (precompute's --shard-size)")
    ap.add_argument("--frames", type=int, default=32, help="frames a video (precompute's --frames)")
    ap.add_argument("--out", type=Path, help="where the shards go (default: a temporary folder)")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], CROPS[args.child[1]], args.rows, args.frames, args.out)))
        return
    results = {}
    with tempfile.TemporaryDirectory(dir=args.out) as tmp:
        for name in CROPS:
            for writer in ("in_memory", "streamed"):
                folder = Path(tmp) / f"{writer}-{name.replace(' ', '_')}"
                folder.mkdir()
                proc = subprocess.run([sys.executable, __file__, "--rows", str(args.rows), "--frames",
                                       str(args.frames), "--out", str(folder), "--child", writer, name],
                                      capture_output=True, text=True, check=True)
                got = json.loads(proc.stdout.splitlines()[-1])
                results[f"{name} {writer}"] = got
                print(f"{name:14s} {writer:9s}: shard {got['shard_mb']:7.1f} MB  peak RSS growth "
                      f"{got['peak_rss_growth_mb']:7.1f} MB ({got['peak_rss_growth_mb'] / got['shard_mb']:.2f} "
                      f"shards)  {got['seconds']:.2f} s", flush=True)
                for stale in folder.iterdir():
                    stale.unlink()
    worst = max(v["peak_rss_growth_mb"] for k, v in results.items() if k.endswith("streamed"))
    print(json.dumps({"rows": args.rows, "frames": args.frames, "streamed_worst_peak_mb": round(worst, 1),
                      "cases": results}))


if __name__ == "__main__":
    main()
