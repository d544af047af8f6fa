"""`fiagen predict`: a trained detector on any video, image or folder."""

from __future__ import annotations

import json
from pathlib import Path

import click

from fiagen.cli.options import click_options, printed, resolve
from fiagen.core import log
from fiagen.predict.config import PredictConfig


def _check(cfg: PredictConfig) -> tuple[list[Path], Path]:
    """The input files and the model file, and that --out can be written (one error line each)."""
    from fiagen.core.outputs import preflight_output
    from fiagen.evaluate.inputs import default_checkpoint
    from fiagen.predict.config import expand_inputs
    from fiagen.predict.engine import model_file

    paths = expand_inputs(cfg.inputs)
    model = model_file(cfg.model or cfg.ckpt or default_checkpoint())
    if cfg.out:
        preflight_output(cfg.out, "--out")
    return paths, model


@click.command()
@click.argument("inputs", nargs=-1)
@click_options(PredictConfig)
@click.pass_context
def predict(ctx: click.Context, inputs: tuple[str, ...], config_file: str | None, dry_run: bool,
            **opts: object) -> None:
    """P(fake) of each INPUT (videos, images, folders searched recursively, globs), with the face policy,
    crops and aggregation of `fiagen evaluate`; per input also its faces, face tracks (the score of each
    person) and a verdict against the threshold. Prints a table, most suspicious first (--json: JSON
    lines); --out DIR writes predictions.csv/.jsonl (schema fiagen.predictions/1), faces.csv (time, box,
    score per face), a timeline PNG per video and, with --render, annotated copies. Exit status 1 when
    any input could not be scored (each such row says why).
    """
    cfg = resolve(PredictConfig, ctx, opts, config_file, **({"inputs": inputs} if inputs else {}))
    checked: list[tuple[list[Path], Path]] = []
    if printed(cfg, dry_run, lambda c: checked.append(_check(c))):  # argument errors before torch loads
        return
    paths, model = checked[0]
    from fiagen.predict.outputs import table
    from fiagen.predict.run import run_predict

    result = run_predict(cfg, paths, model)
    if cfg.json:
        click.echo("".join(json.dumps(r) + "\n" for r in result.rows), nl=False)
    else:
        click.echo(f"detector: {result.detector}")
        click.echo(f"threshold: {result.threshold:g} ({result.threshold_source})")
        click.echo(table(result.rows))
        if cfg.out:
            click.echo(f"-> {cfg.out} (predictions.csv, predictions.jsonl, faces.csv, {len(result.written) - 3} "
                       f"timelines/renders)")
    if result.failed:
        names = "; ".join(f"{r['input']} ({r['status']}: {r['reason'] or 'no face found'})" for r in result.failed)
        log.get_logger().error("%d of %d inputs not scored: %s", len(result.failed), len(result.rows), names)
        ctx.exit(1)


COMMANDS = (predict,)
