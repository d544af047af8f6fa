"""`fiagen export`: a checkpoint's detector as an ONNX or TorchScript file for deployment."""

from __future__ import annotations

from pathlib import Path

import click

from fiagen.cli.options import stage_command
from fiagen.predict.export import ModelExportConfig


def _checkpoint(cfg: ModelExportConfig) -> Path:
    """--ckpt, else the newest runs/*/best.pt; one error line when it is missing or a folder (evaluate's check)."""
    from fiagen.evaluate.inputs import checkpoint_file, default_checkpoint

    return checkpoint_file(Path(cfg.ckpt)) if cfg.ckpt else default_checkpoint()


@stage_command(ModelExportConfig, _checkpoint)
def export(cfg: ModelExportConfig) -> None:
    """Export a checkpoint's inference path (normalisation + network; no training parts) as ONNX or
    TorchScript: input float32 (N, 3, S, S) RGB crops in [0, 1], outputs p_fake = sigmoid(logit) and logit.
    The input spec (size, mean/std, channel order, crop policy) and the model card travel in the file's
    metadata. The file is checked against torch before it is kept (max |difference| <= 1e-4)."""
    from fiagen.predict.export import export_model
    from fiagen.train.card import card_line

    done = export_model(_checkpoint(cfg), cfg.format, cfg.out, cfg.opset)
    click.echo(f"detector: {card_line(done.card)}")
    click.echo(f"{done.path}: {done.format}, max |{done.format} - torch| {done.max_diff:.2g} on seeded random crops")


COMMANDS = (export,)
