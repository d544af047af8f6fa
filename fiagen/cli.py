"""Command line: one thin command per stage; parsing only, the work lives in the stage packages."""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

import click

from fiagen import __version__, log, stop
from fiagen.cli_options import click_options, given, printed, resolve, stage_command
from fiagen.demo import DemoConfig
from fiagen.errors import FiagenError
from fiagen.evaluate.config import EvalConfig, ExplainConfig
from fiagen.files import disk_full, is_disk_full
from fiagen.generate.options import ExportConfig, PreviewConfig
from fiagen.manifests.suites import SUITE_HELP
from fiagen.pipeline.config import InspectConfig, PrecomputeConfig
from fiagen.settings import merged
from fiagen.train.config import TrainConfig


class _PipelineOrder(click.Group):
    """A group whose --help lists the commands in the order a user runs them (click sorts by name)."""

    ORDER = ("precompute", "inspect", "preview", "generate", "train", "evaluate", "bench", "explain", "run", "demo")

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self.commands, key=lambda n: (self.ORDER.index(n) if n in self.ORDER else len(self.ORDER), n))


@click.group(cls=_PipelineOrder, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="fiagen")
@click.option("-q", "--quiet", is_flag=True,
              help="Warnings and errors only (no info lines, no progress bars); as each command's -q/--quiet.")
@click.option("-v", "--verbose", is_flag=True, help="Debug lines too; as each command's -v/--verbose.")
def cli(quiet: bool, verbose: bool) -> None:
    """fiagen: train face-deepfake detectors on FIA-USA pseudo-fakes made from real videos only.

    Stages: precompute (faces, landmarks, reconstructions -> shards), train, evaluate/bench.
    Dataset roots come from --root or the FIAGEN_DATA environment variable. Messages go to stderr as
    `fiagen: warning: ...` / `fiagen: error: ...` lines; a command's result goes to stdout.
    """
    log.setup(1 if verbose else -1 if quiet else 0)


@stage_command(cli, PrecomputeConfig)
def precompute(cfg: PrecomputeConfig) -> None:
    """Sample frames of real videos, find the face and its landmarks, store face crops in HDF5 shards.

    Writes OUT/shards/<split>/*.h5, OUT/manifest.parquet (one row per frame) and OUT/run.json (config,
    versions, counts, every missing video and failure). Rerunning on the same OUT rebuilds only shards
    that are missing or do not match their checksum. Each frame's AE and SR reconstructions are stored
    beside it (same size, lossless); builtin models are fit first and saved in OUT/models.
    """
    from fiagen.outputs import preflight_output

    preflight_output(cfg.out, "--out")  # a file, read-only, held by another run: at once, before Ray loads
    from fiagen.pipeline.precompute import precompute as run

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


@cli.command()
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
    if printed(cfg, dry_run):
        return
    from fiagen.pipeline.inspect import draw_frames, summary

    shards = Path(cfg.shards)
    click.echo(summary(shards))
    if cfg.draw:
        written = draw_frames(shards, cfg.draw, Path(cfg.to) if cfg.to else shards / "inspect", cfg.seed)
        click.echo(f"wrote {len(written)} PNGs to {written[0].parent if written else cfg.to}")


@cli.command()
@click_options(TrainConfig)
@click.pass_context
def train(ctx: click.Context, config_file: str | None, dry_run: bool, **opts: object) -> None:
    """Train a detector on FIA-USA pseudo-fakes: AFFS channel selection, then SAM with BCE + PCR + ICR.

    Writes RUN/config.yaml (the resolved settings), RUN/affs.json (kept channels and every channel's
    score), RUN/last.pt (every epoch; resumable with --resume), RUN/best.pt (best val AUC; the test
    split is never used), RUN/metrics.csv (one row per epoch), RUN/steps.csv (one row per step),
    RUN/val_breakdown.csv (per validation, the val AUC of each pseudo-fake group: mask type, reconstruction,
    blend ratio, T side; its last row is printed at the end) and
    TensorBoard logs in RUN/tb. Checkpoints load with torch.load(weights_only=True).
    """
    from fiagen.train.config import check_run_folder, check_shards, config_yaml, resolve_config

    cfg = resolve_config(given(ctx, opts), config_file)
    if dry_run:
        click.echo(config_yaml(cfg), nl=False)
        return
    log.follow(cfg)
    check_run_folder(cfg, lock=True)  # argument errors before torch loads and before anything is written
    check_shards(cfg)
    from fiagen.train.breakdown import last_breakdown
    from fiagen.train.entry import train as run

    result = run(cfg)
    table = None if cfg.quiet else last_breakdown(result.run)  # the last validation's AUC per pseudo-fake group
    if table:
        click.echo(table)
    auc = "n/a" if result.best_auc is None else f"{result.best_auc:.4f}"
    click.echo(f"{result.run}: {result.steps} steps, {result.epochs} epochs, best val AUC {auc} "
               f"({result.nonfinite} non-finite steps skipped) -> {result.best or result.last}")


@cli.command()
@click.option("--suite", default=None, help=SUITE_HELP + " Required unless the --config file names `suites`.")
@click_options(EvalConfig)
@click.pass_context
def evaluate(ctx: click.Context, suite: str | None, config_file: str | None, dry_run: bool, **opts: object) -> None:
    """Score one test suite with a checkpoint: 32 frames per video, every face, max over faces, mean
    over frames. Prints the per-method table; writes scores (parquet), tables (CSV, markdown, LaTeX),
    ROC curves and report.json under OUT/<suite>/. A rerun resumes where an interrupted run stopped.
    A --config file whose `suites` lists several scores each of them, as `fiagen bench` does (a missing
    one is an error), and prints each table and the summary.
    """
    from fiagen.evaluate.inputs import find_inputs

    values = merged(EvalConfig, given(ctx, opts), config_file, "evaluate")
    if suite is not None or "suites" not in values:
        if suite is None:
            raise click.UsageError("Missing option '--suite'.", ctx)
        values["suites"] = (suite,)
    cfg = EvalConfig(**{**values, "skip_missing_suites": False})
    if printed(cfg, dry_run):
        return
    inputs = find_inputs(cfg.suites, cfg.root, cfg.ckpt, allow_outside_root=cfg.allow_outside_root)  # before torch
    inputs.output(cfg.out)
    from fiagen.evaluate.runner import bench, render, render_bench
    from fiagen.evaluate.runner import evaluate as run

    click.echo(render(run(cfg, inputs)) if len(cfg.suites) == 1 else render_bench(bench(cfg, inputs)))


@cli.command()
@click.option("--suite", "suites", multiple=True, default=("all",),
              help="Suites to run (repeat the option or give a comma list), each a --suite value of `fiagen "
                   "evaluate` (values with a colon are not split on commas: --suite pseudo:out --suite "
                   "pseudo:out:sbi); `all` runs every built-in suite whose data is found and skips the others.")
@click_options(EvalConfig)
@click.pass_context
def bench(ctx: click.Context, suites: tuple[str, ...], config_file: str | None, dry_run: bool,
          **opts: object) -> None:
    """Evaluate a checkpoint on several suites; per suite a per-method table (e.g. DF40 as the paper's
    Table 9a), then one summary row per suite. Outputs as for `fiagen evaluate`, plus OUT/bench.*.
    """
    from click.core import ParameterSource

    from fiagen.evaluate.inputs import find_inputs
    from fiagen.manifests.suites import parse_suites

    values = merged(EvalConfig, given(ctx, opts), config_file, "bench")
    if ctx.get_parameter_source("suites") is not ParameterSource.DEFAULT or "suites" not in values:
        skip = any(s.strip() == "all" for v in suites for s in v.split(","))
        values.update(suites=tuple(parse_suites(suites)), skip_missing_suites=skip)
    cfg = EvalConfig(**values)
    if printed(cfg, dry_run):
        return
    inputs = find_inputs(cfg.suites, cfg.root, cfg.ckpt, cfg.skip_missing_suites,  # errors before torch and Ray
                         cfg.allow_outside_root)
    inputs.output(cfg.out)
    from fiagen.evaluate.runner import bench as run
    from fiagen.evaluate.runner import render_bench

    click.echo(render_bench(run(cfg, inputs)))


@stage_command(cli, ExplainConfig)
def explain(cfg: ExplainConfig) -> None:
    """GradCAM of the "fake" logit on every face crop: writes crop|overlay PNGs and explain.json."""
    from fiagen.evaluate.explain import explain as run

    record = run(cfg.ckpt, cfg.input, cfg.out, cfg.frames, cfg.layer, cfg.min_face_score)
    click.echo(f"{len(record['crops'])} crops from {record['frames_sampled']} frames, video score "
               f"{record['video_score']:.4f} (P(fake)), layer {record['crops'][0]['layer']} -> {cfg.out}")


@stage_command(cli, PreviewConfig)
def preview(cfg: PreviewConfig) -> None:
    """Write a labelled grid of FIA-USA pairs, real | fake | mask, with what was drawn for each."""
    from fiagen.generate.config import generate_config
    from fiagen.generate.preview import preview_grid

    path = preview_grid(Path(cfg.shards), Path(cfg.out), n=cfg.n, split=cfg.split, seed=cfg.seed, epoch=cfg.epoch,
                        size=cfg.size, tile=cfg.tile, columns=cfg.columns, train=not cfg.eval,
                        ablation=cfg.ablation, config=generate_config(cfg.generate, affine=cfg.affine))
    click.echo(f"wrote {path}")


@stage_command(cli, ExportConfig)
def generate(cfg: ExportConfig) -> None:
    """Materialise FIA-USA pseudo-fakes with their masks as PNGs (and a DeepfakeBench dataset JSON)."""
    from fiagen.generate.config import generate_config
    from fiagen.generate.export import export_pairs

    report = export_pairs(Path(cfg.shards), Path(cfg.export), n=cfg.n, fmt=cfg.format, split=cfg.split,
                          seed=cfg.seed, size=cfg.size, ablation=cfg.ablation, augment=cfg.augment,
                          loader_workers=cfg.loader_workers, quiet=cfg.quiet,
                          config=generate_config(cfg.generate, affine=cfg.affine))
    extra = f", {report.dataset_json}" if report.dataset_json else ""
    counts = report.pairs["recon"].value_counts().to_dict()
    click.echo(f"wrote {len(report.pairs)} pairs to {report.dest} (pairs.csv{extra}); reconstructions used: {counts}")


@stage_command(cli, DemoConfig)
def demo(cfg: DemoConfig) -> None:
    """The whole chain on an embedded sample, offline, in minutes on a CPU: sample FF++-layout videos ->
    precompute (builtin AE/SR) -> preview grid -> AFFS + training -> evaluation on a held-out folder suite.
    Smoke scale: it shows every stage working, it is not a benchmark.
    """
    from fiagen.demo import SMOKE_NOTE, run_demo

    report = run_demo(cfg, echo=log.get_logger("fiagen.demo").info)  # stage timings as they end: info lines
    click.echo("\n" + report.table + "\n")
    click.echo(f"preview grid: {report.preview}\ncheckpoint:   {report.checkpoint}")
    click.echo("ROC curves:   " + ", ".join(str(p) for p in report.roc))
    click.echo(f"stage seconds: {report.seconds}\n\n{SMOKE_NOTE}")


@cli.command("run")
@click.argument("pipeline", type=click.Path(dir_okay=False, exists=True))
@click.option("--address", default=None,
              help="Ray cluster address for every stage ('auto' on a cluster node). Default: the file's "
                   "`address`, else a local Ray.")
@click.option("--dry-run", is_flag=True, help="Print every stage's resolved config (YAML) and exit.")
def run_pipeline(pipeline: str, address: str | None, dry_run: bool) -> None:
    """Run the stages of PIPELINE.yaml (precompute, train, bench) in order on one Ray cluster, skipping
    what is complete (shards that match their checksums, a run with all its epochs, scores on disk).

    With `variants:` (and `seeds:`), every variant x seed is trained and scored, and OUT/variants.{md,csv,json}
    puts them side by side (docs/variants.md)."""
    from fiagen.workflow import dry_run as resolved
    from fiagen.workflow import run_pipeline as run

    if dry_run:
        click.echo(resolved(Path(pipeline), address), nl=False)
        return
    run(Path(pipeline), address, echo=click.echo)


UNWRITABLE = (errno.EROFS, errno.EACCES, errno.EPERM)


def _write_error(err: OSError) -> str:
    """The line for a write the user can fix: a full disk, a read-only or forbidden folder."""
    if err.filename is None:
        return f"cannot write the output: {err.strerror}"
    return str(disk_full(err.filename)) if is_disk_full(err) else f"cannot write {err.filename}: {err.strerror}"


def main() -> None:
    """Console entry point: user errors are one line; anything else is one line plus how to see more."""
    log.setup()  # the one handler of every message; `fiagen -q/-v` sets its level
    try:
        with stop.handle_signals():  # SIGTERM/SIGINT: stop at a safe point (fiagen.stop)
            code = cli.main(standalone_mode=False)
    except stop.Stopped as err:  # one line naming the command that resumes; 143 (SIGTERM) or 130 (SIGINT)
        click.echo(f"fiagen: {err.resume_line(sys.argv[1:])}", err=True)
        sys.exit(err.code)
    except click.exceptions.Abort:
        log.get_logger().error("aborted")
        sys.exit(130)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except FiagenError as err:
        log.get_logger().error("%s", err)
        sys.exit(2)
    except Exception as err:  # noqa: BLE001 - last line of defence against a traceback wall
        if os.environ.get("FIAGEN_DEBUG"):
            raise
        if isinstance(err, OSError) and (is_disk_full(err) or err.errno in UNWRITABLE):
            log.get_logger().error("%s", _write_error(err))
            sys.exit(2)
        log.get_logger().error("unexpected %s: %s (set FIAGEN_DEBUG=1 for the traceback)", type(err).__name__, err)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
