"""The side-by-side table of a variants run (fiagen.workflow.plan): per variant, each suite's frame and video AUC,
their mean over the suites, the best val AUC and the training time, as the mean and the spread over the
seeds, written as OUT/variants.{md,csv,json}; each run's val_breakdown beside it (OUT/variants_breakdown.csv,
OUT/breakdown/<variant>-seed<N>.csv)."""

from __future__ import annotations

import csv
import json
import math
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fiagen.core.files import write_text
from fiagen.workflow.plan import BREAKDOWN_DIR, BREAKDOWN_TABLE, TABLE_NAME, VariantRun, VariantsPlan

SPREAD = "half the range over the seeds, (max - min) / 2 (0 with one seed)"


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def num(value: Any) -> float | None:
    """A finite float, or None (blank, text or NaN)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def _epochs(run: Path) -> list[dict[str, str]]:
    path = run / "metrics.csv"
    if not path.is_file():
        return []
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def run_figures(run: VariantRun, suites: Mapping[str, Any] | None, labels: list[str]) -> dict[str, Any]:
    """One run's figures: best val AUC, training seconds and steps (RUN/metrics.csv), its suites' AUCs and
    their mean over `labels` (the suites in the mean)."""
    rows = _epochs(Path(run.train.run))
    vals = [v for v in (num(r.get("val_auc")) for r in rows) if v is not None]
    figures: dict[str, Any] = {
        "variant": run.variant, "seed": run.seed, "run": run.train.run, "best_val_auc": max(vals) if vals else None,
        "train_seconds": sum(num(r.get("seconds")) or 0.0 for r in rows) if rows else None,
        "steps": int(rows[-1]["step"]) if rows else None, "suites": dict(suites or {})}
    for metric in ("frame_auc", "video_auc"):
        values = [(suites or {}).get(label, {}).get(metric) for label in labels]
        figures[f"mean_{metric}"] = sum(values) / len(values) if values and None not in values else None
    return figures


def _stat(values: list[float | None]) -> tuple[float | None, float | None]:
    """(mean, half range) of the values that are not None; (None, None) without any."""
    present = [v for v in values if v is not None]
    if not present:
        return None, None
    return sum(present) / len(present), (max(present) - min(present)) / 2


def _columns(labels: list[str]) -> list[str]:
    metrics = [f"{label}_{m}" for label in labels for m in ("frame_auc", "video_auc")]
    metrics += ["mean_frame_auc", "mean_video_auc", "best_val_auc", "train_seconds"]
    return ["variant", "seeds", "runs"] + [c for m in metrics for c in (m, f"{m}_spread")] + ["steps"]


def table_rows(plan: VariantsPlan, figures: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per variant: each figure's mean and spread over its seeds (4 decimals; seconds 1)."""
    labels = list(plan.suites)
    rows = []
    for variant in plan.variants:
        runs = [f for f in figures if f["variant"] == variant]
        row: dict[str, Any] = {"variant": variant, "seeds": " ".join(str(f["seed"]) for f in runs), "runs": len(runs)}
        per_run = [{**{f"{label}_{m}": f["suites"].get(label, {}).get(m) for label in labels
                       for m in ("frame_auc", "video_auc")},
                    **{k: f[k] for k in ("mean_frame_auc", "mean_video_auc", "best_val_auc", "train_seconds")}}
                   for f in runs]
        for column in _columns(labels)[3:-1:2]:
            mean, spread = _stat([r[column] for r in per_run])
            digits = 1 if column == "train_seconds" else 4
            row[column] = None if mean is None else round(mean, digits)
            row[f"{column}_spread"] = None if spread is None else round(spread, digits)
        steps = [f["steps"] for f in runs if f["steps"] is not None]
        row["steps"] = max(steps) if steps else None
        rows.append(row)
    return rows


def _cell(row: Mapping[str, Any], column: str, digits: int = 3) -> str:
    mean, spread = row.get(column), row.get(f"{column}_spread")
    if mean is None:
        return "-"
    return f"{mean:.{digits}f}" if not spread else f"{mean:.{digits}f} ± {spread:.{digits}f}"


def markdown(plan: VariantsPlan, rows: list[dict[str, Any]], mean_over: list[str]) -> str:
    """The side-by-side table as GitHub markdown, with how to read it above."""
    labels = list(plan.suites)
    head = ["variant", "seeds"] + [f"{label} {m}" for label in labels for m in ("frame", "video")]
    head += ["mean frame", "mean video", "best val", "train s", "steps"]
    lines = [f"Variants side by side: AUC per suite (frame, video), mean ± spread over seeds (spread: {SPREAD}). "
             f"`mean`: over {', '.join(mean_over) or 'no suite'}. `best val`: best val AUC on the run's own "
             f"pseudo-fakes. `train s`: training seconds (metrics.csv).", "",
             "| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for row in rows:
        cells = [row["variant"], row["seeds"] or "-"]
        cells += [_cell(row, f"{label}_{m}") for label in labels for m in ("frame_auc", "video_auc")]
        cells += [_cell(row, "mean_frame_auc"), _cell(row, "mean_video_auc"), _cell(row, "best_val_auc"),
                  _cell(row, "train_seconds", 0), "-" if row["steps"] is None else str(row["steps"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _breakdowns(plan: VariantsPlan) -> list[dict[str, Any]]:
    """Per variant: each seed's last val_breakdown row (copied whole into OUT/breakdown/) and their mean."""
    from fiagen.train.breakdown import BREAKDOWN_NAME

    rows: list[dict[str, Any]] = []
    for variant in plan.variants:
        lasts = []
        for run in (r for r in plan.runs if r.variant == variant):
            path = Path(run.train.run) / BREAKDOWN_NAME
            if not path.is_file():
                continue
            shutil.copyfile(path, plan.out / BREAKDOWN_DIR / f"{variant}-seed{run.seed}.csv")
            with path.open(newline="") as fh:
                found = list(csv.DictReader(fh))
            if found:
                last = found[-1]
                lasts.append({"variant": variant, "seed": run.seed, "epoch": last.get("epoch"),
                              "step": last.get("step"), **{k: _round(num(v)) for k, v in last.items() if ":" in k}})
        rows += lasts
        if len(lasts) > 1:
            groups = dict.fromkeys(k for r in lasts for k in r if ":" in k)
            mean = {g: _stat([r.get(g) for r in lasts])[0] for g in groups}
            rows.append({"variant": variant, "seed": "mean", "epoch": "", "step": "",
                         **{g: _round(v) for g, v in mean.items()}})
    return rows


def write_tables(plan: VariantsPlan, scores: Mapping[str, Mapping[str, Any]]) -> list[Path]:
    """OUT/variants.{md,csv,json}, OUT/variants_breakdown.csv and OUT/breakdown/; the paths written."""
    from fiagen.train.breakdown import ordered_groups

    labels = list(plan.suites)
    real = [label for label, spec in plan.suites.items() if not spec.startswith("pseudo:")]
    mean_over = real or labels
    figures = [run_figures(r, scores.get(r.label), mean_over) for r in plan.runs]
    rows = table_rows(plan, figures)
    columns = _columns(labels)
    out = plan.out
    (out / BREAKDOWN_DIR).mkdir(parents=True, exist_ok=True)
    md, csv_path, js = out / f"{TABLE_NAME}.md", out / f"{TABLE_NAME}.csv", out / f"{TABLE_NAME}.json"
    write_text(md, markdown(plan, rows, mean_over))
    write_text(csv_path, _csv_text(columns, rows))
    record = {"spread": SPREAD, "suites": plan.suites, "mean_over": mean_over, "seeds": plan.seeds,
              "columns": columns, "rows": rows, "runs": figures}
    write_text(js, json.dumps(record, indent=2) + "\n")
    breakdown = _breakdowns(plan)
    paths = [md, csv_path, js]
    if breakdown:
        groups = ordered_groups(k for r in breakdown for k in r if ":" in k)
        path = out / BREAKDOWN_TABLE
        write_text(path, _csv_text(["variant", "seed", "epoch", "step", *groups], breakdown))
        paths.append(path)
    return paths


def _csv_text(columns: list[str], rows: list[dict[str, Any]]) -> str:
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in columns})
    return buf.getvalue()
