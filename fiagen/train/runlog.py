"""Run metrics: one CSV row per step (`steps.csv`), one per epoch (`metrics.csv`), one per validation with
its per-group AUCs (`val_breakdown.csv`, see fiagen.train.breakdown), and TensorBoard (`tb/`).

On resume, rows after the checkpoint's step (written by the interrupted run) are dropped first, so each
step appears once; a new run (no last.pt: e.g. one that died before its first checkpoint, started again) drops
every row an earlier start left.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from fiagen.core.files import disk_full, is_disk_full
from fiagen.train.breakdown import BREAKDOWN_NAME

STEP_FIELDS = ("step", "epoch", "loss", "bce", "pcr", "icr", "lr", "pairs_per_s", "data_wait_s", "skipped")
EPOCH_FIELDS = ("epoch", "step", "train_loss", "train_bce", "train_pcr", "train_icr", "val_auc", "val_loss", "lr",
                "pairs_per_s", "data_wait_fraction", "nonfinite_skipped", "seconds")


def _keep_until(path: Path, fields: tuple[str, ...] | None, step: int) -> None:
    """Rewrite a CSV keeping the header (`fields`, or the file's own when None) and the rows whose
    step <= `step`."""
    if not path.exists():
        return
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        rows = [r for r in reader if int(r["step"]) <= step]
        fields = fields or tuple(reader.fieldnames or ())
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


class _Csv:
    def __init__(self, path: Path, fields: tuple[str, ...]):
        new = not path.exists() or path.stat().st_size == 0
        self.fh = path.open("a", newline="", buffering=1)
        self.writer = csv.DictWriter(self.fh, fieldnames=fields, extrasaction="ignore")
        if new:
            self.writer.writeheader()

    def write(self, row: dict[str, Any]) -> None:
        try:
            self.writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
        except OSError as err:
            if is_disk_full(err):
                raise disk_full(self.fh.name) from None
            raise


class RunLog:
    """Writes the step and epoch rows of a run (rank 0 only)."""

    def __init__(self, run: Path, resume_step: int | None = None):
        from torch.utils.tensorboard import SummaryWriter

        for name, fields in (("steps.csv", STEP_FIELDS), ("metrics.csv", EPOCH_FIELDS), (BREAKDOWN_NAME, None)):
            if resume_step is None:  # a new run: nothing of an earlier start stays (its columns may differ)
                (run / name).unlink(missing_ok=True)
            else:
                _keep_until(run / name, fields, resume_step)
        self.run = run
        self.groups: _Csv | None = None  # val_breakdown.csv, opened with the first breakdown row
        self.steps = _Csv(run / "steps.csv", STEP_FIELDS)
        self.epochs = _Csv(run / "metrics.csv", EPOCH_FIELDS)
        self.tb = SummaryWriter(str(run / "tb"), purge_step=(resume_step or 0) + 1)

    def step(self, row: dict[str, Any]) -> None:
        self.steps.write(row)
        for key in ("loss", "bce", "pcr", "icr", "lr", "pairs_per_s"):
            value = row.get(key)
            if value is not None and math.isfinite(value):
                self.tb.add_scalar(f"train/{key}", value, row["step"])

    def epoch(self, row: dict[str, Any]) -> None:
        self.epochs.write(row)
        for key in ("val_auc", "val_loss", "train_loss", "data_wait_fraction"):
            if row.get(key) is not None:
                self.tb.add_scalar(f"epoch/{key}", row[key], row["step"])
        self.tb.flush()

    def breakdown(self, row: dict[str, Any]) -> None:
        """One validation's AUC per pseudo-fake group: epoch, step, then one `kind:value` column each
        (the same columns for the whole run; NaN where a group has no fakes)."""
        if self.groups is None:
            self.groups = _Csv(self.run / BREAKDOWN_NAME, tuple(row))
        self.groups.write(row)
        for name, value in row.items():
            if ":" in name and math.isfinite(value):
                self.tb.add_scalar(f"val_breakdown/{name.replace(':', '/')}", value, row["step"])

    def close(self) -> None:
        self.steps.fh.close()
        self.epochs.fh.close()
        if self.groups is not None:
            self.groups.fh.close()
        self.tb.close()
