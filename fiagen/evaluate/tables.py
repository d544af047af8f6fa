"""Result tables recomputed from the score files: per method, per family, all; robustness (R_AUC).

Every table carries a stamp (level, frames per video, aggregation, checkpoint, training data, ...) that
is printed above the markdown, repeated as columns in the CSV and written into the LaTeX caption. A row
with fewer than SMALL_SAMPLE real or fake units is flagged (`small_sample` = "yes"), with a note under
the markdown table and in the LaTeX caption.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fiagen.evaluate.metrics import binary_metrics
from fiagen.evaluate.scoring import NO_FACE_SCORE

TABLE_COLUMNS = ("method", "family", "n_real", "n_fake", "frame_auc", "video_auc", "ap", "eer", "acc",
                 "small_sample")
# Rows with fewer real or fake units than this are flagged: their metrics swing with a single unit.
SMALL_SAMPLE = 10
SMALL_SAMPLE_NOTE = (f"small_sample = yes: fewer than {SMALL_SAMPLE} real or {SMALL_SAMPLE} fake units; "
                     f"not a reliable figure")


def frame_scores(faces: pd.DataFrame) -> pd.DataFrame:
    """One row per (video, frame): the max score over the frame's faces (columns video, frame, score)."""
    return faces.groupby(["video", "frame"], as_index=False, sort=False)["score"].max()


def video_scores(faces: pd.DataFrame, videos: pd.Series) -> pd.Series:
    """Video score = mean over frames of the frame score; videos without any face (or failed) get 0.5.

    `videos` lists every video id that must get a score (the index of the result, in that order).
    """
    per_video = frame_scores(faces).groupby("video")["score"].mean()
    return per_video.reindex(pd.Index(videos, name="video")).fillna(NO_FACE_SCORE)


def scored(frames: pd.DataFrame, videos: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-frame table, per-video table), each with score, label, method, pool, family.

    Frame score = max over faces; video score = mean over frames (0.5 without any face); frames of
    videos without a face do not appear at frame level.
    """
    meta = videos.set_index("video")[["label", "method", "pool", "family"]]
    per_frame = frame_scores(frames).join(meta, on="video")
    per_video = meta.copy()
    per_video["score"] = video_scores(frames, videos["video"]).to_numpy()
    return per_frame, per_video.reset_index()


def _row(name: str, family: str, fr: pd.DataFrame, vid: pd.DataFrame, level: str) -> dict[str, Any]:
    f = binary_metrics(fr["label"].to_numpy(), fr["score"].to_numpy())
    v = binary_metrics(vid["label"].to_numpy(), vid["score"].to_numpy())
    at_level = f if level == "frame" else v
    n_real, n_fake = int((vid["label"] == 0).sum()), int((vid["label"] == 1).sum())
    return {"method": name, "family": family, "n_real": n_real, "n_fake": n_fake, "frame_auc": f["auc"],
            "video_auc": v["auc"], "ap": at_level["ap"], "eer": at_level["eer"], "acc": at_level["acc"],
            "small_sample": "yes" if min(n_real, n_fake) < SMALL_SAMPLE else ""}


def suite_table(frames: pd.DataFrame, videos: pd.DataFrame, level: str) -> pd.DataFrame:
    """One row per fake method (its fakes against the reals of its pool), per family, and `all`.

    AP, EER and ACC@0.5 are computed at `level` ("frame" or "video"); both AUCs are always given.
    """
    per_frame, per_video = scored(frames, videos)
    rows = []
    reals_v = per_video[per_video["label"] == 0]
    reals_f = per_frame[per_frame["label"] == 0]
    fakes = per_video[per_video["label"] == 1]
    for method in dict.fromkeys(fakes["method"]):
        fv = fakes[fakes["method"] == method]
        pools = set(fv["pool"])
        rv = reals_v[reals_v["pool"].isin(pools)]
        rf = reals_f[reals_f["pool"].isin(pools)]
        ff = per_frame[(per_frame["label"] == 1) & (per_frame["method"] == method)]
        rows.append(_row(method, fv["family"].iloc[0], pd.concat([rf, ff]), pd.concat([rv, fv]), level))
    families = [f for f in dict.fromkeys(fakes["family"]) if f]
    for family in families if len(rows) > 1 else []:
        fv = fakes[fakes["family"] == family]
        pools = set(fv["pool"])
        sel_v = pd.concat([reals_v[reals_v["pool"].isin(pools)], fv])
        sel_f = per_frame[per_frame["video"].isin(sel_v["video"])]
        rows.append(_row(f"[{family}]", family, sel_f, sel_v, level))
    rows.append(_row("all", "", per_frame, per_video, level))
    table = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
    return table if families else table.drop(columns="family")


def robustness_table(aucs: dict[str, dict[int, float]], raw_auc: float) -> pd.DataFrame:
    """R_AUC = (AUC - AUC_raw) / AUC_raw per perturbation (rows) and level (columns), plus the AUCs."""
    rows = []
    for name, per_level in aucs.items():
        for level, auc in sorted(per_level.items()):
            rows.append({"perturbation": name, "level": level, "auc": auc, "auc_raw": raw_auc,
                         "r_auc": (auc - raw_auc) / raw_auc if raw_auc else float("nan")})
    return pd.DataFrame(rows, columns=["perturbation", "level", "auc", "auc_raw", "r_auc"])


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.4f}"
    return str(value)


def markdown(table: pd.DataFrame) -> str:
    """A GitHub markdown table (no extra dependency)."""
    cols = list(table.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def small_sample_note(table: pd.DataFrame) -> str:
    """SMALL_SAMPLE_NOTE when a row of `table` is flagged small_sample, else ""."""
    flagged = "small_sample" in table.columns and (table["small_sample"] == "yes").any()
    return SMALL_SAMPLE_NOTE if flagged else ""


def stamp_line(stamp: dict[str, Any]) -> str:
    """The stamp as one line: `key: value; ...`."""
    return "; ".join(f"{k}: {v}" for k, v in stamp.items())


def write_table(table: pd.DataFrame, stamp: dict[str, Any], base: Path, caption: str) -> dict[str, Path]:
    """Write base.csv (stamp as columns, prefixed stamp_ where a name is taken), base.md (stamp line,
    then the table) and base.tex (stamp in the caption)."""
    base.parent.mkdir(parents=True, exist_ok=True)
    paths = {ext: base.with_suffix(f".{ext}") for ext in ("csv", "md", "tex")}
    stamp_columns = {(f"stamp_{k}" if k in table.columns else k): str(v) for k, v in stamp.items()}
    table.assign(**stamp_columns).to_csv(paths["csv"], index=False)
    note = small_sample_note(table)
    paths["md"].write_text(f"{caption}\n\n{stamp_line(stamp)}\n\n{markdown(table)}\n" + (f"\n{note}\n" if note else ""))
    tex_caption = f"{caption}. {stamp_line(stamp)}" + (f". {note}" if note else "")
    tex_caption = tex_caption.replace("_", r"\_").replace("%", r"\%").replace("&", r"\&")
    tex = table.copy()
    tex.columns = [c.replace("_", r"\_") for c in tex.columns]
    for col in tex.columns:
        if tex[col].dtype == object:
            tex[col] = tex[col].astype(str).str.replace("_", r"\_", regex=False)
    paths["tex"].write_text(tex.to_latex(index=False, float_format="%.4f", na_rep="-", caption=tex_caption) + "\n")
    return paths


def summary_row(table: pd.DataFrame) -> dict[str, Any]:
    """The `all` row of a suite table, as a dict."""
    row = table[table["method"] == "all"].iloc[0].to_dict()
    return {k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in row.items()}


def summary_json(table: pd.DataFrame) -> dict[str, Any]:
    """The `all` row as report.json holds it: a metric that cannot be computed is null, never NaN."""
    return {k: None if isinstance(v, float) and np.isnan(v) else v for k, v in summary_row(table).items()}
