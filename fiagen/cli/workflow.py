"""Commands that run the whole chain: `fiagen run PIPELINE.yaml` and `fiagen demo`."""

from __future__ import annotations

from pathlib import Path

import click

from fiagen.cli.options import stage_command
from fiagen.core import log
from fiagen.workflow.demo import DemoConfig


def _check_demo(cfg: DemoConfig) -> None:
    from fiagen.core.outputs import preflight_output

    preflight_output(cfg.out, "--out")


@stage_command(DemoConfig, _check_demo)
def demo(cfg: DemoConfig) -> None:
    """The whole chain on an embedded sample, offline, in minutes on a CPU: sample FF++-layout videos ->
    precompute (builtin AE/SR) -> preview grid -> AFFS + training -> evaluation on a held-out folder suite.
    Smoke scale: it shows every stage working, it is not a benchmark.
    """
    from fiagen.workflow.demo import SMOKE_NOTE, run_demo

    report = run_demo(cfg, echo=log.get_logger("fiagen.workflow.demo").info)  # stage timings as they end: info lines
    click.echo("\n" + report.table + "\n")
    click.echo("\n".join(report.predictions) + "\n")
    click.echo(f"preview grid: {report.preview}\ncheckpoint:   {report.checkpoint}")
    click.echo("ROC curves:   " + ", ".join(str(p) for p in report.roc))
    click.echo(f"stage seconds: {report.seconds}\n\n{SMOKE_NOTE}")


@click.command("run")
@click.argument("pipeline", type=click.Path(dir_okay=False, exists=True))
@click.option("--address", default=None,
              help="Ray cluster address for every stage ('auto' on a cluster node). Default: the file's "
                   "`address`, else a local Ray.")
@click.option("--dry-run", is_flag=True, help="Check every stage as the run does before its first stage (names, "
              "dataset folders and index files, checkpoints, output folders), print every stage's resolved config "
              "(YAML) and exit.")
@click.option("--step-seconds", type=click.FloatRange(min=0, min_open=True), default=None,
              help="With --dry-run: seconds of one training step on your GPU, for the GPU-hours estimate. Default: "
                   "the median of the train run's own steps.csv where it exists.")
def run_pipeline(pipeline: str, address: str | None, dry_run: bool, step_seconds: float | None) -> None:
    """Run the stages of PIPELINE.yaml (precompute, train, bench) in order on one Ray cluster, skipping
    what is complete (shards that match their checksums, a run with all its epochs, scores on disk).

    With `variants:` (and `seeds:`), every variant x seed is trained and scored, and OUT/variants.{md,csv,json}
    puts them side by side (docs/variants.md)."""
    from fiagen.workflow.run import dry_run as resolved
    from fiagen.workflow.run import run_pipeline as run

    if dry_run:
        click.echo(resolved(Path(pipeline), address, step_seconds), nl=False)
        return
    run(Path(pipeline), address, echo=click.echo)


COMMANDS = (run_pipeline, demo)
