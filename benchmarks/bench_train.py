"""Training step cost: the full model (AFFS + FPN + RCR) against a plain classifier, and data starvation.

Both models share the backbone, SAM over SGD, and the batch of FIA-USA pairs; their steps are timed
alternately on the same prefetched batches (median of --steps), so the ratio is compute only. Then the
full model trains for --steps more steps fed by the DataLoader (--loader-workers processes), and the
time spent waiting for the next batch over the step time is reported. Both models are in channels_last
memory format, as `fiagen train` runs them (`--contiguous` times the NCHW layout instead).

Shards: --shards OUT, or a small precompute of the shared real videos (FIAGEN_TEST_DATA or --data).
Last line: a JSON object with step_ratio and data_wait_fraction (and pairs/s of both models).

    python benchmarks/bench_train.py [--backbone efficientnet_b0] [--size 128] [--batch 8] [--steps 8] [--contiguous]
    python benchmarks/bench_train.py --backbone efficientnet_b4 --size 380 --batch 12 --device cuda  # a GPU
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch
from pytorch_optimizer import SAM

from fiagen.train.affs import affs_widths, select_channels
from fiagen.train.config import TrainConfig
from fiagen.train.context import Context, resolve_device
from fiagen.train.data import make_train_loader
from fiagen.train.model import TrainNet, build_detector, default_fpn_channels
from fiagen.train.step import sam_step


def small_shards(data: Path, into: Path) -> Path:
    """Precompute 8 frames of each shared real clip (all in the train split)."""
    from fiagen.precompute.entry import PrecomputeConfig, precompute

    clips = into / "clips"
    clips.mkdir(parents=True)
    for clip in sorted((data / "real_videos").glob("*.mp4")):
        (clips / clip.name).symlink_to(clip.resolve())
    out = into / "shards"
    precompute(PrecomputeConfig(src=f"folder:{clips}", out=str(out), frames=8, shard_size=16, concurrency=2, ae="none",
                                sr="none", quiet=True))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=Path, default=None, help="Precompute output (default: build a small one).")
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("FIAGEN_TEST_DATA", "../shared/data")))
    parser.add_argument("--backbone", default="efficientnet_b0")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8, help="Pairs per step.")
    parser.add_argument("--steps", type=int, default=8, help="Timed steps per measurement.")
    parser.add_argument("--loader-workers", type=int, default=1)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1, help="torch threads on CPU.")
    parser.add_argument("--contiguous", action="store_true", help="Time the models in the contiguous (NCHW) memory "
                                                                  "format instead of channels_last (train's default).")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    device = resolve_device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    from fiagen.generate.dataset import FIAUSADataset

    with tempfile.TemporaryDirectory() as tmp:
        shards = args.shards or small_shards(args.data, Path(tmp))
        ds = FIAUSADataset(shards, split="train", size=args.size, seed=0, train=True)
        ctx = Context(device=device)
        full_cfg = TrainConfig(shards=str(shards), backbone=args.backbone, size=args.size, batch_size=args.batch,
                               loader_workers=args.loader_workers, channels_last=not args.contiguous)
        loader, sampler = make_train_loader(ds, full_cfg, ctx)
        batches = [b for _, b in zip(range(2), loader, strict=False)]

        torch.manual_seed(0)
        detector = build_detector(args.backbone, args.size).to(device)
        selection = select_channels(detector, batches, affs_widths(detector.stage_channels), device)
        plain_cfg = TrainConfig(shards=str(shards), backbone=args.backbone, size=args.size, batch_size=args.batch,
                                lambdas=(1.0, 0.0, 0.0), channels_last=not args.contiguous)
        full = TrainNet(detector, selection.indices, default_fpn_channels(args.backbone)).to(device)
        plain = TrainNet(build_detector(args.backbone, args.size)).to(device)
        if full_cfg.channels_last:
            full.to(memory_format=torch.channels_last)
            plain.to(memory_format=torch.channels_last)
        runs = {"full": (full, full_cfg), "plain": (plain, plain_cfg)}
        opts = {k: SAM(net.parameters(), torch.optim.SGD, rho=0.05, lr=1e-3, momentum=0.9)
                for k, (net, _) in runs.items()}
        times: dict[str, list[float]] = {"full": [], "plain": []}
        for i in range(args.steps + 1):  # the first round warms up
            for key, (net, cfg) in runs.items():
                if device.type == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                sam_step(net, opts[key], batches[i % 2], cfg, ctx)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                if i:
                    times[key].append(time.perf_counter() - t0)
        step = {k: statistics.median(v) for k, v in times.items()}

        wait = total = 0.0
        it = iter(loader)
        tick = time.perf_counter()
        for i in range(args.steps + 1):
            batch = next(it, None)
            if batch is None:
                sampler.set_epoch(i)
                it = iter(loader)
                batch = next(it)
            got = time.perf_counter()
            sam_step(full, opts["full"], batch, full_cfg, ctx)
            if device.type == "cuda":
                torch.cuda.synchronize()
            done = time.perf_counter()
            if i:  # the first batch includes worker start-up
                wait += got - tick
                total += done - tick
            tick = done

    result = {
        "backbone": args.backbone, "size": args.size, "batch_pairs": args.batch, "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(), "loader_workers": args.loader_workers,
        "memory_format": "contiguous" if args.contiguous else "channels_last",
        "affs_kept": [len(i) for i in selection.indices], "fpn_channels": default_fpn_channels(args.backbone),
        "full_step_s": step["full"], "plain_step_s": step["plain"],
        "pairs_per_s_full": args.batch / step["full"], "pairs_per_s_plain": args.batch / step["plain"],
        "step_ratio": step["full"] / step["plain"], "data_wait_fraction": wait / total,
    }
    print(f"{args.backbone} @ {args.size}px, {args.batch} pairs, {result['device_name']}, {result['memory_format']}: "
          f"full {step['full']:.3f} s/step "
          f"({result['pairs_per_s_full']:.1f} pairs/s), plain {step['plain']:.3f} s/step; "
          f"ratio {result['step_ratio']:.3f}; "
          f"waiting for data {100 * result['data_wait_fraction']:.1f}% of step time")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
