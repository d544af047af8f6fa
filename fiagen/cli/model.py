"""Commands of the detector side: train, evaluate, bench and explain."""

from __future__ import annotations

from typing import Any

import click

from fiagen.cli.options import click_options, given, printed, stage_command
from fiagen.core import log
from fiagen.core.settings import merged
from fiagen.evaluate.config import EvalConfig, ExplainConfig
from fiagen.evaluate.inputs import check_explain
from fiagen.manifests.suites import SUITE_HELP
from fiagen.train.config import TrainConfig


@click.command()
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
    from fiagen.train.config import check_train, config_yaml, resolve_config

    cfg = resolve_config(given(ctx, opts), config_file)
    log.follow(cfg)
    check_train(cfg, lock=True)  # argument errors before torch loads and before anything is written
    if dry_run:
        click.echo(config_yaml(cfg), nl=False)
        return
    from fiagen.train.breakdown import last_breakdown
    from fiagen.train.entry import train as run

    result = run(cfg)
    table = None if cfg.quiet else last_breakdown(result.run)  # the last validation's AUC per pseudo-fake group
    if table:
        click.echo(table)
    auc = "n/a" if result.best_auc is None else f"{result.best_auc:.4f}"
    click.echo(f"{result.run}: {result.steps} steps, {result.epochs} epochs, best val AUC {auc} "
               f"({result.nonfinite} non-finite steps skipped) -> {result.best or result.last}")


@click.command()
@click.option("--suite", "suites", multiple=True, help=SUITE_HELP + " Repeat it (or give a comma list) for several, "
              "as `fiagen bench`. Required unless the --config file names `suites`.")
@click_options(EvalConfig)
@click.pass_context
def evaluate(ctx: click.Context, suites: tuple[str, ...], config_file: str | None, dry_run: bool,
             **opts: object) -> None:
    """Score one test suite with a checkpoint: 32 frames per video, every face, max over faces, mean
    over frames. Prints the per-method table; writes scores (parquet), tables (CSV, markdown, LaTeX),
    ROC curves and report.json under OUT/<suite>/. A rerun resumes where an interrupted run stopped.
    Several suites (--suite repeated, or a --config file whose `suites` lists several) are each scored,
    as `fiagen bench` does (a missing one is an error), and each table and the summary are printed.
    """
    from fiagen.evaluate.inputs import check_eval
    from fiagen.manifests.suites import parse_suites

    values = merged(EvalConfig, given(ctx, opts), config_file, "evaluate")
    if suites or "suites" not in values:
        if not suites:
            raise click.UsageError("Missing option '--suite'.", ctx)
        values["suites"] = tuple(parse_suites(suites))
    cfg = EvalConfig(**{**values, "skip_missing_suites": False})
    if printed(cfg, dry_run, check_eval if dry_run else None):
        return
    inputs = check_eval(cfg)  # before torch
    from fiagen.evaluate.runner import bench, render
    from fiagen.evaluate.runner import evaluate as run

    if len(cfg.suites) == 1:
        click.echo(render(run(cfg, inputs)))
    else:
        _report_bench(ctx, bench(cfg, inputs))


@click.command()
@click.option("--suite", "suites", multiple=True, default=("all",),
              help="Suites to run (repeat the option or give a comma list), each a --suite value of `fiagen "
                   "evaluate` (values with a colon are not split on commas: --suite pseudo:out --suite "
                   "pseudo:out:sbi); `all` runs every built-in suite whose data is found and skips the others.")
@click_options(EvalConfig)
@click.pass_context
def bench(ctx: click.Context, suites: tuple[str, ...], config_file: str | None, dry_run: bool,
          **opts: object) -> None:
    """Evaluate a checkpoint on several suites; per suite a per-method table (e.g. DF40 as the paper's
    Table 9a), then one summary row per suite. Outputs as for `fiagen evaluate`, plus OUT/bench.* and
    OUT/bench.json (each suite scored, skipped or failed, with the reason). A suite where every video fails
    is reported and the others are scored; the exit status is then 1.
    """
    from click.core import ParameterSource

    from fiagen.evaluate.inputs import check_eval
    from fiagen.manifests.suites import parse_suites

    values = merged(EvalConfig, given(ctx, opts), config_file, "bench")
    if ctx.get_parameter_source("suites") is not ParameterSource.DEFAULT or "suites" not in values:
        skip = any(s.strip() == "all" for v in suites for s in v.split(","))
        values.update(suites=tuple(parse_suites(suites)), skip_missing_suites=skip)
    cfg = EvalConfig(**values)
    if printed(cfg, dry_run, check_eval if dry_run else None):
        return
    inputs = check_eval(cfg)  # errors before torch and Ray
    from fiagen.evaluate.runner import bench as run

    _report_bench(ctx, run(cfg, inputs))


def _report_bench(ctx: click.Context, result: Any) -> None:
    """Print a bench's tables; exit status 1, after one error line, when a suite scored nothing."""
    from fiagen.evaluate.render import render_bench

    click.echo(render_bench(result))
    if result.failed:
        log.get_logger().error("%d of %d suites scored nothing: %s (see %s)", len(result.failed),
                               len(result.failed) + len(result.suites), ", ".join(result.failed),
                               result.out / "bench.json")
        ctx.exit(1)


@stage_command(ExplainConfig, check_explain)
def explain(cfg: ExplainConfig) -> None:
    """GradCAM of the "fake" logit on every face crop: writes crop|overlay PNGs and explain.json."""
    from fiagen.evaluate.explain import explain as run

    record = run(cfg.ckpt, cfg.input, cfg.out, cfg.frames, cfg.layer, cfg.min_face_score)
    click.echo(f"{len(record['crops'])} crops from {record['frames_sampled']} frames, video score "
               f"{record['video_score']:.4f} (P(fake)), layer {record['crops'][0]['layer']} -> {cfg.out}")


COMMANDS = (train, evaluate, bench, explain)
