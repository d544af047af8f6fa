"""Commands of the data side: precompute, inspect, preview and generate."""

from __future__ import annotations

from pathlib import Path

import click

from fiagen.cli.options import click_options, printed, resolve, stage_command
from fiagen.core import log
from fiagen.core.outputs import preflight_output
from fiagen.generate.options import ExportConfig, PreviewConfig
from fiagen.precompute.config import InspectConfig, PrecomputeConfig, check_precompute


@stage_command(PrecomputeConfig, check_precompute)
def precompute(cfg: PrecomputeConfig) -> None:
    """Sample frames of real videos, find the face and its landmarks, store face crops in HDF5 shards.

    Writes OUT/shards/<split>/*.h5, OUT/manifest.parquet (one row per frame) and OUT/run.json (config,
    versions, counts, every missing video and failure). Rerunning on the same OUT rebuilds only shards
    that are missing or do not match their checksum. Each frame's AE and SR reconstructions are stored
    beside it (same size, lossless); builtin models are fit first and saved in OUT/models.
    """
    from fiagen.precompute.entry import precompute as run

    result = run(cfg)
    c = result.report["counts"]
    recon = (f", {c['frames_ae_failed']} AE / {c['frames_sr_failed']} SR reconstructions failed"
             if c["frames_ae_failed"] or c["frames_sr_failed"] else "")
    click.echo(
        f"{result.out}: {c['frames_stored']} frames from {c['videos_found'] - c['videos_failed']} videos "
        f"in {c['shards']} shards ({result.shards_written} written, {result.shards_reused} reused); "
        f"{c['videos_missing']} missing, {c['videos_failed']} failed, {c['frames_no_face']} frames without a face"
        f"{recon} -> {result.out / 'run.json'}"
    )


@click.command()
@click.argument("out", required=False)
@click_options(InspectConfig)
@click.pass_context
def inspect(ctx: click.Context, out: str | None, config_file: str | None, dry_run: bool, **opts: object) -> None:
    """Print per-split counts and failures of a precompute output (--shards); optionally draw frames.
    (The folder as a positional OUT still works, with a deprecation line.)"""
    if out is not None:
        log.get_logger().warning("`fiagen inspect OUT` is deprecated and goes in the next release; use "
                                 "`fiagen inspect --shards OUT`")
    cfg = resolve(InspectConfig, ctx, opts, config_file, **({"shards": out} if out is not None else {}))
    if printed(cfg, dry_run, _check_inspect):
        return
    from fiagen.precompute.inspect import draw_frames, summary

    shards = Path(cfg.shards)
    click.echo(summary(shards))
    if cfg.draw:
        written = draw_frames(shards, cfg.draw, Path(cfg.to or "inspect"), cfg.seed)
        click.echo(f"wrote {len(written)} PNGs to {written[0].parent if written else cfg.to or 'inspect'}")


def _shards(cfg: InspectConfig | PreviewConfig | ExportConfig) -> None:
    from fiagen.manifests.manifest import check_precompute_output  # pandas: only when a command runs

    check_precompute_output(cfg.shards)


def _check_inspect(cfg: InspectConfig) -> None:
    _shards(cfg)
    if cfg.draw:
        preflight_output(cfg.to or "inspect", "--to")


def _check_generate(cfg: ExportConfig) -> None:
    _shards(cfg)
    preflight_output(cfg.export, "--export")


@stage_command(PreviewConfig, _shards)
def preview(cfg: PreviewConfig) -> None:
    """Write a labelled grid of FIA-USA pairs, real | fake | mask, with what was drawn for each."""
    from fiagen.generate.config import generate_config
    from fiagen.generate.preview import preview_grid

    path = preview_grid(Path(cfg.shards), Path(cfg.out), n=cfg.n, split=cfg.split, seed=cfg.seed, epoch=cfg.epoch,
                        size=cfg.size, tile=cfg.tile, columns=cfg.columns, train=not cfg.eval,
                        ablation=cfg.ablation, config=generate_config(cfg.generate, affine=cfg.affine),
                        epochs=cfg.epochs)
    click.echo(f"wrote {path}")


@stage_command(ExportConfig, _check_generate)
def generate(cfg: ExportConfig) -> None:
    """Materialise FIA-USA pseudo-fakes with their masks as PNGs (and a DeepfakeBench dataset JSON)."""
    from fiagen.generate.config import generate_config
    from fiagen.generate.export import export_pairs

    report = export_pairs(Path(cfg.shards), Path(cfg.export), n=cfg.n, fmt=cfg.format, split=cfg.split,
                          seed=cfg.seed, size=cfg.size, ablation=cfg.ablation, augment=cfg.augment,
                          loader_workers=cfg.loader_workers, quiet=cfg.quiet,
                          config=generate_config(cfg.generate, affine=cfg.affine), epochs=cfg.epochs)
    extra = f", {report.dataset_json}" if report.dataset_json else ""
    counts = report.pairs["recon"].value_counts().to_dict()
    click.echo(f"wrote {len(report.pairs)} pairs to {report.dest} (pairs.csv{extra}); reconstructions used: {counts}")


COMMANDS = (precompute, inspect, preview, generate)
