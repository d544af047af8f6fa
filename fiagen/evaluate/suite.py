"""One suite of videos or images scored with one checkpoint: its conditions (raw, and each perturbation
at each level), resumed from the scores on disk, then tables, ROC curves, robustness and report.json."""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from fiagen.core import stop
from fiagen.core.files import DiskFullError, write_text
from fiagen.core.outputs import claim_output
from fiagen.core.version import __version__
from fiagen.evaluate.config import REPORT_NAME, UNLISTED_SHOWN, EvalConfig, EvalMismatch, SuiteResult, table_stamp
from fiagen.evaluate.dispatch import Condition, run_conditions
from fiagen.evaluate.perturb import condition_name
from fiagen.evaluate.plots import robustness_plot, roc_plot
from fiagen.evaluate.scoring import face_mode
from fiagen.evaluate.store import FRAMES_NAME, VIDEOS_NAME, ScoreStore
from fiagen.evaluate.tables import robustness_table, scored, suite_table, summary_json, write_table
from fiagen.manifests.roots import SourceError
from fiagen.manifests.suites import suite_dirname
from fiagen.manifests.suites.listing import EvalItem, SuiteListing
from fiagen.precompute.faces import PASSES, total_passes

log = logging.getLogger(__name__)


def _condition_report(cond: Condition, videos: pd.DataFrame) -> dict[str, Any]:
    no_face = videos[videos["status"] == "no_face"]
    failed = videos[videos["status"] == "failed"]
    return {
        "condition": condition_name(cond.perturb, cond.level),
        "videos": len(videos),
        "videos_scored_now": len(cond.todo),
        "videos_reused": cond.reused,
        "videos_no_face": len(no_face),
        "videos_failed": len(failed),
        "frames_sampled": int(videos["frames_sampled"].sum()),
        "frames_with_face": int(videos["frames_with_face"].sum()),
        "frames_undecodable": int(videos["frames_undecodable"].fillna(0).sum()),  # skipped frame images
        # videos whose stream ended before the frame count of their container: scored from what decoded
        "videos_short": int((videos["frames_shortfall"].fillna(0) > 0).sum()),
        "short": [{"video": v, "frames_decoded": int(d), "frames_shortfall": int(s)}
                  for v, d, s in zip(videos["video"], videos["frames_decoded"].fillna(0),
                                     videos["frames_shortfall"].fillna(0), strict=True) if s > 0],
        "faces": int(videos["faces"].sum()),
        "no_face": no_face["video"].tolist(),
        "failures": [{"video": v, "reason": r} for v, r in zip(failed["video"], failed["reason"], strict=False)],
        "units_whole_image": int((videos["frames_whole"] > 0).sum()),
        "whole_image": videos.loc[videos["frames_whole"] > 0, "video"].tolist(),
        "face_passes": total_passes(json.loads(p) for p in videos["face_passes"]),
    }


def _face_stamp(modes: dict[str, str], videos: pd.DataFrame) -> dict[str, str]:
    """The stamp's face entries: the face mode(s) that ran, with their units, and how many units had a
    frame scored as the whole image."""
    return {"face": ", ".join(f"{mode} ({n} units)" for mode, n in Counter(modes.values()).items()),
            "whole_image_units": f"{int((videos['frames_whole'] > 0).sum())} of {len(videos)}"}


def _relative(paths: list[Path], root: Path) -> list[str]:
    """Paths as text, relative to `root` where they lie under it."""
    return [str(p.relative_to(root)) if p.is_relative_to(root) else str(p) for p in paths]


def _selected(listing: SuiteListing, limit: int | None) -> tuple[list[EvalItem], list[str]]:
    """The listing's items (first `limit`), with duplicate ids dropped and noted."""
    seen: set[str] = set()
    items, notes = [], []
    for it in listing.items:
        if it.video_id in seen:
            notes.append(f"duplicate id {it.video_id} ({it.path}) skipped")
            continue
        seen.add(it.video_id)
        items.append(it)
    return (items[:limit] if limit is not None else items), notes


def _claim_conditions(listing: SuiteListing, cfg: EvalConfig, info: dict[str, Any], items: list[EvalItem],
                      folder: Path) -> list[Condition]:
    """The scoring runs of a suite (raw, then each perturbation at each level), each folder claimed for
    these settings, each with the items its scores on disk still lack."""
    conditions = []
    for perturb, lv in [(None, 0)] + [(p, lv) for p in cfg.perturb for lv in cfg.levels]:
        cond_folder = folder if perturb is None else folder / "perturb" / condition_name(perturb, lv)
        fingerprint = {"suite": folder.name, "root": str(listing.root.resolve()), "checkpoint_sha256": info["sha256"],
                       "frames": cfg.frames, "size": int(info["size"]), "perturb": perturb, "level": lv,
                       "seed": cfg.seed if perturb else None, "min_face_score": cfg.min_face_score,
                       "face": cfg.face, "face_passes": list(PASSES)}
        claim_output(cond_folder, fingerprint, cfg.overwrite, (FRAMES_NAME, VIDEOS_NAME),
                     lambda changed, cond_folder=cond_folder: EvalMismatch(
                         f"{cond_folder} holds scores made with other settings ({', '.join(changed)} differ); use "
                         f"another --out or pass --overwrite to score again"))
        store = ScoreStore(cond_folder)
        finished = store.done()
        todo = [it for it in items if it.video_id not in finished]
        conditions.append(Condition(cond_folder, perturb, lv, todo, store, len(items) - len(todo)))
    return conditions


def _condition_tables(conditions: list[Condition], cfg: EvalConfig, info: dict[str, Any], spec: str, level: str,
                      ids: set[str], modes: dict[str, str]) -> tuple[dict[str, Any], dict[str, pd.DataFrame],
                                                                     dict[str, dict[str, str]]]:
    """Per condition: its report entry, its table (written, for a perturbed one) and its face stamp; the
    raw condition's ROC curves are drawn."""
    results: dict[str, Any] = {}
    tables: dict[str, pd.DataFrame] = {}
    face_stamps: dict[str, dict[str, str]] = {}
    for cond in conditions:
        frames, videos = cond.store.frames(), cond.store.videos()
        videos = videos[videos["video"].isin(ids)].reset_index(drop=True)
        frames = frames[frames["video"].isin(ids)].reset_index(drop=True)
        name = condition_name(cond.perturb, cond.level)
        results[name] = _condition_report(cond, videos)
        tables[name] = suite_table(frames, videos, level)
        face_stamps[name] = _face_stamp(modes, videos)
        if cond.perturb is None:
            per_frame, per_video = scored(frames, videos)
            curves = per_frame if level == "frame" else per_video
            drawn = roc_plot({m: pd.concat([curves[(curves["label"] == 0) & curves["pool"].isin(set(g["pool"]))], g])
                              for m, g in curves[curves["label"] == 1].groupby("method", sort=False)},
                             cond.folder / "roc.png", f"{cond.folder.name}: {level}-level ROC")
            if drawn is None:
                log.warning("%s: no ROC curve drawn: no method has both real and fake units scored", spec)
        else:
            write_table(tables[name], {**table_stamp(cfg, info, level, name), **face_stamps[name]},
                        cond.folder / "table", f"{spec} under {name}")
    return results, tables, face_stamps


def _robustness(tables: dict[str, pd.DataFrame], cfg: EvalConfig, spec: str, level: str, stamp: dict[str, Any],
                folder: Path) -> pd.DataFrame:
    """R_AUC per perturbation and level against the raw AUC; written as a table and a plot."""
    key = f"{level}_auc"
    raw_auc = float(tables["raw"].set_index("method").loc["all", key])
    aucs = {p: {lv: float(tables[condition_name(p, lv)].set_index("method").loc["all", key])
                for lv in cfg.levels} for p in cfg.perturb}
    robustness = robustness_table(aucs, raw_auc)
    write_table(robustness, {**stamp, "condition": f"{', '.join(cfg.perturb)} at levels {list(cfg.levels)}"},
                folder / "robustness", f"{spec}: R_AUC = (AUC - AUC_raw) / AUC_raw, {level} level")
    robustness_plot(robustness, folder / "robustness.png", f"{folder.name}: robustness ({level}-level AUC)")
    return robustness


def _suite_report(spec: str, listing: SuiteListing, cfg: EvalConfig, stamp: dict[str, Any], selected: int,
                  notes: list[str], results: dict[str, Any], timing: dict[str, float],
                  raw: pd.DataFrame) -> dict[str, Any]:
    """report.json of a complete suite."""
    return {
        "fiagen_version": __version__,
        "status": "complete",
        "suite": spec,
        "root": str(listing.root),
        "config": {**asdict(cfg), "suites": list(cfg.suites), "levels": list(cfg.levels),
                   "perturb": list(cfg.perturb)},
        "stamp": stamp,
        "items_found": len(listing.items),
        "items_selected": selected,
        "items_missing": len(listing.missing),
        "counts_by_method": listing.counts(),
        "missing": [{"video": m.video_id, "path": str(m.path)} for m in listing.missing],
        "items_unlisted": len(listing.unlisted),  # media under the suite's folders that it does not list
        "unlisted": _relative(listing.unlisted[:UNLISTED_SHOWN[0]], listing.root),
        "paths_refused": len(listing.refused),  # index paths outside the dataset root: never opened
        "refused": listing.refused,
        "notes": listing.notes + notes,
        "conditions": results,
        "timings": timing,
        "summary": summary_json(raw),
    }


def evaluate_suite(spec: str, listing: SuiteListing, cfg: EvalConfig, info: dict[str, Any], scorer: Any,
                   concurrency: int, out: Path) -> SuiteResult:
    """Score one suite under every condition (resuming), then write its tables, plots and report.json."""
    items, dup_notes = _selected(listing, cfg.limit)
    modes = {it.video_id: face_mode(it, listing.face_crops, cfg.face) for it in items}
    level = listing.level if cfg.level == "auto" else cfg.level
    short = suite_dirname(spec)
    folder = out / short
    conditions = _claim_conditions(listing, cfg, info, items, folder)
    try:
        timing = run_conditions(conditions, cfg, info, scorer, concurrency, spec if len(spec) <= 24 else short,
                                modes)
    except DiskFullError as err:
        raise err.noted(_stopped_record(folder, spec, conditions, str(err))) from None
    except stop.Stopped as err:  # the scores of the videos done are committed; a rerun scores the rest
        _stopped_record(folder, spec, conditions, "", status=stop.STATUS, signal=err.name)
        committed = sum(len(c.store.done()) for c in conditions)
        detail = " ".join(filter(None, (err.detail, f"with the scores of {committed} videos committed")))
        raise stop.Stopped(err.signum, detail) from None
    _refuse_all_failed(spec, conditions[0], {it.video_id for it in items})
    results, tables, face_stamps = _condition_tables(conditions, cfg, info, spec, level,
                                                     {it.video_id for it in items}, modes)
    stamp = {**table_stamp(cfg, info, level, "raw"), **face_stamps["raw"]}
    write_table(tables["raw"], stamp, folder / "table", f"{spec}: {level}-level metrics per method")
    robustness = _robustness(tables, cfg, spec, level, stamp, folder) if cfg.perturb else None
    report = _suite_report(spec, listing, cfg, stamp, len(items), dup_notes, results, timing, tables["raw"])
    write_text(folder / REPORT_NAME, json.dumps(report, indent=2, default=str) + "\n")
    return SuiteResult(spec, folder, tables["raw"], stamp, report, robustness)


class NothingScored(SourceError):
    """Every video of a suite failed: no table, plot or report.json is written for it."""


def _refuse_all_failed(spec: str, raw: Condition, ids: set[str]) -> None:
    """NothingScored when every video of the suite failed to decode."""
    videos = raw.store.videos()
    videos = videos[videos["video"].isin(ids)]
    failed = videos[videos["status"] == "failed"]
    if len(videos) and len(failed) == len(videos):
        first = failed.iloc[0]
        raise NothingScored(f"{spec}: nothing scored: all {len(videos)} videos failed (first: {first['video']}: "
                          f"{first['reason']})")


def _stopped_record(folder: Path, spec: str, conditions: list[Condition], reason: str, status: str = "",
                    **extra: Any) -> str:
    """Write report.json for a suite stopped by a full disk (or with `status`, by a signal: the videos
    whose scores are committed, per condition); return what to tell the user."""
    committed = {condition_name(c.perturb, c.level): len(c.store.done()) for c in conditions}
    report = {"fiagen_version": __version__, "suite": spec, "status": status or f"stopped: {reason}", **extra,
              "videos_committed": committed, "videos_pending": {condition_name(c.perturb, c.level): len(c.todo)
                                                                for c in conditions}}
    try:
        write_text(folder / REPORT_NAME, json.dumps(report, indent=2) + "\n")
        where = f"listed in {folder / REPORT_NAME}"
    except DiskFullError:
        where = f"{REPORT_NAME} could not be written either"
    return (f"scores of {sum(committed.values())} videos are committed ({where}); free some space and run the "
            f"same command again to score the rest")
