"""The evaluation stage: suites -> Ray tasks (decode, detect, crop) -> a Ray actor (the detector) ->
chunked score files -> tables, ROC curves, robustness.

Outputs under OUT/<suite>/ (OUT defaults to <checkpoint folder>/eval):
    frames.parquet/, videos.parquet/   the scores (see fiagen.evaluate.store), appended in chunks
    config.json                        what the scores depend on; a rerun with the same settings resumes
    table.csv / .md / .tex, roc.png    per-method metrics, stamped; ROC curves
    report.json                        counts, missing files, videos without a face, failures, timings
    perturb/<name>-<level>/            the same score files under each perturbation
    robustness.csv / .md / .tex / .png R_AUC per perturbation and level
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import ray

from fiagen import __version__
from fiagen.errors import FiagenError, last_line, message_line
from fiagen.evaluate.inputs import EvalInputs, find_inputs
from fiagen.evaluate.perturb import LEVELS, condition_name
from fiagen.evaluate.plots import robustness_plot, roc_plot
from fiagen.evaluate.scoring import AGGREGATION, NO_FACE_SCORE, VideoCrops, crops_task, face_mode, predict
from fiagen.evaluate.store import FRAMES_NAME, VIDEOS_NAME, ScoreStore
from fiagen.evaluate.tables import robustness_table, scored, suite_table, summary_row, write_table
from fiagen.manifests.pseudo import is_pseudo
from fiagen.manifests.roots import SourceError
from fiagen.files import DiskFullError, sha256_file, write_text
from fiagen.manifests.suites import EvalItem, SuiteListing, suite_dirname
from fiagen.outputs import claim_output, hold_folder
from fiagen.pipeline.cluster import ray_session
from fiagen.pipeline.faces import PASSES, total_passes
from fiagen.pipeline.video import is_image
from fiagen.progress import stage_progress

REPORT_NAME = "report.json"
FLUSH_SECONDS = 60.0
# Unlisted files named in report.json (all are counted) and on the terminal.
UNLISTED_SHOWN = (20, 3)
# The stamp entries that differ per suite (face mode, whole-image units).
FACE_STAMP = ("face", "whole_image_units")


class EvalMismatch(FiagenError):
    """Scores on disk made with other settings; the message says how to proceed."""


@dataclass(frozen=True)
class EvalConfig:
    """Every setting of `fiagen evaluate` / `fiagen bench` (see their --help)."""

    suites: tuple[str, ...] = ("ff++",)
    root: str | None = None
    ckpt: str | None = None
    out: str | None = None
    frames: int = 32
    level: str = "auto"
    batch_size: int = 64
    workers: int | None = None
    address: str | None = None
    perturb: tuple[str, ...] = ()
    levels: tuple[int, ...] = LEVELS
    seed: int = 0
    limit: int | None = None
    chunk: int = 64
    min_face_score: float = 0.5
    face: str = "auto"
    skip_missing_suites: bool = False
    overwrite: bool = False
    quiet: bool = False


@dataclass
class SuiteResult:
    """One suite's outcome: its folder, per-method table, stamp, report, and robustness table if asked."""

    name: str
    folder: Path
    table: pd.DataFrame
    stamp: dict[str, Any]
    report: dict[str, Any]
    robustness: pd.DataFrame | None = None


@dataclass
class BenchResult:
    """Every suite evaluated, the suites skipped (with the reason), and the combined summary table."""

    out: Path
    suites: list[SuiteResult] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    summary: pd.DataFrame | None = None


# ---------------------------------------------------------------------------------------------- Ray parts

class _Scorer:
    """Holds the detector (on the GPU when Ray gave this actor one) and scores crops in batches."""

    def __init__(self, ckpt: str, batch_size: int) -> None:
        import torch

        from fiagen.train.checkpoint import load_detector

        self.device = "cuda" if torch.cuda.is_available() and ray.get_gpu_ids() else "cpu"
        if self.device == "cpu":  # shares the cores with the decode/detect tasks
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // 4))
        self.model, _ = load_detector(ckpt, device=self.device)
        self.batch_size = batch_size

    def score(self, crops: np.ndarray) -> np.ndarray:
        return predict(self.model, crops, self.batch_size, self.device)


def _units(items: list[EvalItem], frames: int) -> list[list[EvalItem]]:
    """Work units: one video each; still images grouped `frames` at a time (one detector start each)."""
    units: list[list[EvalItem]] = []
    images: list[EvalItem] = []
    for it in items:
        if is_image(it.path) and not it.frames:
            images.append(it)
            if len(images) >= max(1, frames):
                units.append(images)
                images = []
        else:
            units.append([it])
    return units + ([images] if images else [])


# ---------------------------------------------------------------------------------------------- rows

def _rows(res: VideoCrops, scores: np.ndarray) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    it = res.item
    base = {"video": it.video_id, "label": it.label, "method": it.method, "pool": it.pool, "family": it.family}
    frame_rows = [
        {**base, "frame": int(f), "face": int(k), "score": float(s), "x0": float(b[0]), "y0": float(b[1]),
         "x1": float(b[2]), "y1": float(b[3]), "det_score": float(d), "finder": finder}
        for f, k, s, b, d, finder in zip(res.frame, res.face, scores, res.boxes, res.det_score, res.finder)
    ]
    if len(scores):
        per_frame = pd.Series(scores).groupby(res.frame).max()
        score, status = float(per_frame.mean()), "ok"
    else:
        score, status = NO_FACE_SCORE, "failed" if res.failure else "no_face"
    video_row = {**base, "path": str(it.path), "frames_sampled": res.frames_sampled,
                 "frames_with_face": res.frames_with_face, "faces": len(scores), "score": score, "status": status,
                 "reason": res.failure or "", "frames_undecodable": res.frames_undecodable,
                 "face_policy": res.face_mode, "frames_whole": res.frames_whole,
                 "face_passes": json.dumps(res.face_passes)}
    return frame_rows, video_row


def _failed(item: EvalItem, reason: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    empty = VideoCrops(item, np.zeros((0, 1, 1, 3), np.uint8), np.zeros(0, np.int64), np.zeros(0, np.int64),
                       np.zeros((0, 4), np.float32), np.zeros(0, np.float32), failure=reason)
    return _rows(empty, np.zeros(0, np.float32))


# ---------------------------------------------------------------------------------------------- checkpoint

def checkpoint_info(path: Path) -> dict[str, Any]:
    """The checkpoint's info (size, backbone, train_data, epoch, val_auc) and its sha256."""
    from fiagen.train.checkpoint import read_checkpoint

    info = dict(read_checkpoint(path)["info"])
    return {**info, "path": str(path), "sha256": sha256_file(path)}


def _stamp(cfg: EvalConfig, info: dict[str, Any], level: str, condition: str) -> dict[str, Any]:
    return {"level": level, "frames_per_video": cfg.frames, "aggregation": AGGREGATION,
            "condition": condition, "checkpoint": info["path"], "training_data": info.get("train_data"),
            "epoch": info.get("epoch"), "val_auc": info.get("val_auc"), "backbone": info.get("backbone"),
            "weights": info.get("weights"),
            "input_size": info.get("size")}


# ---------------------------------------------------------------------------------------------- scoring

@dataclass
class _Condition:
    """One scoring run: a suite under no perturbation or under one perturbation at one level."""

    folder: Path
    perturb: str | None
    level: int
    todo: list[EvalItem]
    store: ScoreStore
    reused: int


def _collect(ref: ray.ObjectRef, meta_ref: ray.ObjectRef, unit: list[EvalItem], store: ScoreStore) -> None:
    """Buffer a finished unit's rows; a task that failed as a whole fails its items, with the reason."""
    try:
        scores, results = ray.get(ref), ray.get(meta_ref)
    except ray.exceptions.RayActorError as err:
        raise FiagenError(f"the scoring actor died ({message_line(err)}); rerun to resume") from None
    except ray.exceptions.RayError as err:
        reason = f"worker failed: {last_line(err)}"
        for it in unit:
            store.add(*_failed(it, reason))
        return
    offset = 0
    for res in results:
        n = len(res.frame)
        store.add(*_rows(res, scores[offset:offset + n]))
        offset += n


def _run_conditions(conditions: list[_Condition], cfg: EvalConfig, info: dict[str, Any], scorer: Any,
                    concurrency: int, label: str, modes: dict[str, str]) -> dict[str, float]:
    """Score every pending item of every condition (at most `concurrency` + 2 units in flight; each item
    with its face mode from `modes`), appending the rows chunk by chunk; returns the wall time and the
    number of videos scored."""
    queue = deque((ci, unit) for ci, c in enumerate(conditions) for unit in _units(c.todo, cfg.frames))
    total = sum(len(c.todo) for c in conditions)
    in_flight: dict[ray.ObjectRef, tuple[int, ray.ObjectRef, list[EvalItem]]] = {}
    last_flush = time.perf_counter()
    done, start = 0, time.perf_counter()
    try:
        with stage_progress(cfg.quiet) as bar:
            task = bar.add_task(label, total=total, rate="")
            while queue or in_flight:
                while queue and len(in_flight) < concurrency + 2:
                    ci, unit = queue.popleft()
                    c = conditions[ci]
                    crops_ref, meta_ref = crops_task.remote(unit, [modes[it.video_id] for it in unit], cfg.frames,
                                                             int(info["size"]), c.perturb, c.level, cfg.seed,
                                                             cfg.min_face_score)
                    in_flight[scorer.score.remote(crops_ref)] = (ci, meta_ref, unit)
                ready, _ = ray.wait(list(in_flight), num_returns=1)
                for ref in ready:
                    ci, meta_ref, unit = in_flight.pop(ref)
                    store = conditions[ci].store
                    _collect(ref, meta_ref, unit, store)
                    done += len(unit)
                    if store.pending >= cfg.chunk or time.perf_counter() - last_flush > FLUSH_SECONDS:
                        for c in conditions:
                            c.store.flush()
                        last_flush = time.perf_counter()
                bar.update(task, completed=done, rate=f"{done / max(1e-9, time.perf_counter() - start):.2f} videos/s")
    finally:  # also when interrupted: every video already scored is kept
        for c in conditions:
            c.store.flush()
    return {"wall_s": time.perf_counter() - start, "videos_scored": done}


def _condition_report(cond: _Condition, videos: pd.DataFrame) -> dict[str, Any]:
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
        "faces": int(videos["faces"].sum()),
        "no_face": no_face["video"].tolist(),
        "failures": [{"video": v, "reason": r} for v, r in zip(failed["video"], failed["reason"])],
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


def _evaluate_suite(spec: str, listing: SuiteListing, cfg: EvalConfig, info: dict[str, Any], scorer: Any,
                    concurrency: int, out: Path) -> SuiteResult:
    items, dup_notes = _selected(listing, cfg.limit)
    ids = {it.video_id for it in items}
    modes = {it.video_id: face_mode(it, listing.face_crops, cfg.face) for it in items}
    level = listing.level if cfg.level == "auto" else cfg.level
    short = suite_dirname(spec)
    folder = out / short
    wanted = [(None, 0)] + [(p, lv) for p in cfg.perturb for lv in cfg.levels]
    conditions = []
    for perturb, lv in wanted:
        cond_folder = folder if perturb is None else folder / "perturb" / condition_name(perturb, lv)
        fingerprint = {"suite": short, "root": str(listing.root.resolve()), "checkpoint_sha256": info["sha256"],
                       "frames": cfg.frames, "size": int(info["size"]), "perturb": perturb, "level": lv,
                       "seed": cfg.seed if perturb else None, "min_face_score": cfg.min_face_score,
                       "face": cfg.face, "face_passes": list(PASSES)}
        claim_output(cond_folder, fingerprint, cfg.overwrite, (FRAMES_NAME, VIDEOS_NAME),
                     lambda changed: EvalMismatch(f"{cond_folder} holds scores made with other settings "
                                                  f"({', '.join(changed)} differ); use another --out or pass "
                                                  f"--overwrite to score again"))
        store = ScoreStore(cond_folder)
        finished = store.done()
        todo = [it for it in items if it.video_id not in finished]
        conditions.append(_Condition(cond_folder, perturb, lv, todo, store, len(items) - len(todo)))
    try:
        timing = _run_conditions(conditions, cfg, info, scorer, concurrency, spec if len(spec) <= 24 else short,
                                 modes)
    except DiskFullError as err:
        raise err.noted(_stopped_record(folder, spec, conditions, str(err))) from None

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
            roc_plot({m: pd.concat([curves[(curves["label"] == 0) & curves["pool"].isin(set(g["pool"]))], g])
                      for m, g in curves[curves["label"] == 1].groupby("method", sort=False)},
                     folder / "roc.png", f"{short}: {level}-level ROC")
        else:
            write_table(tables[name], {**_stamp(cfg, info, level, name), **face_stamps[name]}, cond.folder / "table",
                        f"{spec} under {name}")
    stamp = {**_stamp(cfg, info, level, "raw"), **face_stamps["raw"]}
    write_table(tables["raw"], stamp, folder / "table", f"{spec}: {level}-level metrics per method")
    robustness = None
    if cfg.perturb:
        key = f"{level}_auc"
        raw_auc = float(tables["raw"].set_index("method").loc["all", key])
        aucs = {p: {lv: float(tables[condition_name(p, lv)].set_index("method").loc["all", key])
                    for lv in cfg.levels} for p in cfg.perturb}
        robustness = robustness_table(aucs, raw_auc)
        write_table(robustness, {**stamp, "condition": f"{', '.join(cfg.perturb)} at levels {list(cfg.levels)}"},
                    folder / "robustness", f"{spec}: R_AUC = (AUC - AUC_raw) / AUC_raw, {level} level")
        robustness_plot(robustness, folder / "robustness.png", f"{short}: robustness ({level}-level AUC)")
    report = {
        "fiagen_version": __version__,
        "status": "complete",
        "suite": spec,
        "root": str(listing.root),
        "config": {**asdict(cfg), "suites": list(cfg.suites), "levels": list(cfg.levels),
                   "perturb": list(cfg.perturb)},
        "stamp": stamp,
        "items_found": len(listing.items),
        "items_selected": len(items),
        "items_missing": len(listing.missing),
        "counts_by_method": listing.counts(),
        "missing": [{"video": m.video_id, "path": str(m.path)} for m in listing.missing],
        "items_unlisted": len(listing.unlisted),  # media under the suite's folders that it does not list
        "unlisted": _relative(listing.unlisted[:UNLISTED_SHOWN[0]], listing.root),
        "paths_refused": len(listing.refused),  # index paths outside the dataset root: never opened
        "refused": listing.refused,
        "notes": listing.notes + dup_notes,
        "conditions": results,
        "timings": timing,
        "summary": summary_row(tables["raw"]),
    }
    write_text(folder / REPORT_NAME, json.dumps(report, indent=2, default=str) + "\n")
    return SuiteResult(spec, folder, tables["raw"], stamp, report, robustness)


def _stopped_record(folder: Path, spec: str, conditions: list[_Condition], reason: str) -> str:
    """Write report.json for a suite stopped by a full disk (the videos whose scores are committed, per
    condition); return what to tell the user."""
    committed = {condition_name(c.perturb, c.level): len(c.store.done()) for c in conditions}
    report = {"fiagen_version": __version__, "suite": spec, "status": f"stopped: {reason}",
              "videos_committed": committed, "videos_pending": {condition_name(c.perturb, c.level): len(c.todo)
                                                                for c in conditions}}
    try:
        write_text(folder / REPORT_NAME, json.dumps(report, indent=2) + "\n")
        where = f"listed in {folder / REPORT_NAME}"
    except DiskFullError:
        where = f"{REPORT_NAME} could not be written either"
    return (f"scores of {sum(committed.values())} videos are committed ({where}); free some space and run the "
            f"same command again to score the rest")


def _scorer_actor(ckpt: Path, batch_size: int) -> Any:
    """The detector actor: on a GPU when the cluster has one. It reserves no CPU slot, so the decode/detect
    tasks (the bulk of the work for the usual models) keep every core."""
    gpus = ray.cluster_resources().get("GPU", 0) >= 1
    return ray.remote(num_gpus=1 if gpus else 0, num_cpus=0)(_Scorer).remote(str(ckpt), batch_size)


def bench(cfg: EvalConfig, inputs: EvalInputs | None = None) -> BenchResult:
    """Evaluate every suite of `cfg.suites` with one checkpoint; writes OUT/<suite>/ and OUT/bench.*,
    holding OUT (fiagen.outputs.hold_folder) for the whole run.

    A suite whose dataset cannot be found is an error, or, with `skip_missing_suites` (--suite all),
    a skipped suite with its reason. `inputs`: what `find_inputs` already found for `cfg`.
    """
    inputs = inputs or find_inputs(cfg.suites, cfg.root, cfg.ckpt, cfg.skip_missing_suites)
    ckpt, listings = inputs.ckpt, inputs.listings
    out = Path(cfg.out) if cfg.out else ckpt.parent / "eval"
    result = BenchResult(out, skipped=dict(inputs.skipped))
    if cfg.perturb and any(is_pseudo(spec) for spec in listings):
        raise SourceError("--perturb applies to suites of videos and images; a pseudo: suite is scored raw only")
    info = checkpoint_info(ckpt)
    with hold_folder(out):
        with ray_session(cfg.address, cfg.workers) as concurrency:
            scorer = _scorer_actor(ckpt, cfg.batch_size)
            try:
                from fiagen.evaluate.pseudo import evaluate_pseudo  # it builds on this module

                for spec, listing in listings.items():
                    run = evaluate_pseudo if is_pseudo(spec) else _evaluate_suite
                    result.suites.append(run(spec, listing, cfg, info, scorer, concurrency, out))
            finally:
                ray.kill(scorer)
        rows = [{"suite": r.name, "level": r.stamp["level"], **{k: r.stamp[k] for k in FACE_STAMP if k in r.stamp},
                 **{k: v for k, v in summary_row(r.table).items() if k not in ("method", "family")}}
                for r in result.suites]
        result.summary = pd.DataFrame(rows)
        if len(result.suites) > 1:
            stamp = {k: v for k, v in result.suites[0].stamp.items() if k not in ("level", *FACE_STAMP)}
            write_table(result.summary, stamp, out / "bench", "all suites, `all` rows (level per suite)")
    return result


def evaluate(cfg: EvalConfig, inputs: EvalInputs | None = None) -> SuiteResult:
    """Evaluate one suite (the first of `cfg.suites`); `inputs` as for `bench`."""
    one = EvalConfig(**{**asdict(cfg), "suites": cfg.suites[:1], "skip_missing_suites": False})
    return bench(one, inputs).suites[0]


def render(result: SuiteResult) -> str:
    """What the CLI prints for one suite: stamp, per-method table, counts, notes, output paths."""
    from fiagen.evaluate.tables import markdown, small_sample_note, stamp_line

    rep = result.report
    raw = rep["conditions"]["raw"]
    note = small_sample_note(result.table)
    lines = [f"## {result.name}", stamp_line(result.stamp), "", markdown(result.table), *([note] if note else []), ""]
    if result.robustness is not None:
        lines += ["R_AUC (AUC under perturbation vs raw):", "", markdown(result.robustness), ""]
    if "pseudo" in rep:
        pseudo = rep["pseudo"]
        lines.append(f"{result.name}: {pseudo['frames']} {pseudo['split']} frames and their {pseudo['recipe']} "
                     f"pseudo-fakes, {raw['videos']} crops scored ({raw['videos_scored_now']} now, "
                     f"{raw['videos_reused']} reused) -> {result.folder}")
    else:
        lines.append(f"{result.name}: {raw['videos']} videos scored ({raw['videos_scored_now']} now, "
                     f"{raw['videos_reused']} reused), {rep['items_missing']} missing, {raw['videos_no_face']} "
                     f"without a face (scored {NO_FACE_SCORE}), {raw['videos_failed']} failed -> {result.folder}")
    if rep.get("items_unlisted"):
        lines.append(f"{result.name}: {rep['items_unlisted']} media files under its folders are not in its list and "
                     f"were not scored (first: {', '.join(rep['unlisted'][:UNLISTED_SHOWN[1]])}; see report.json "
                     f"'unlisted')")
    lines += [f"note: {n}" for n in rep["notes"][:20]]
    return "\n".join(lines)


def render_bench(result: BenchResult) -> str:
    """Every suite's block, the skipped suites, and the summary table when there are several suites."""
    from fiagen.evaluate.tables import markdown

    blocks = [render(r) for r in result.suites]
    blocks += [f"skipped {name}: {reason}" for name, reason in result.skipped.items()]
    if result.summary is not None and len(result.suites) > 1:
        blocks.append("## summary (`all` row of each suite)\n\n" + markdown(result.summary) +
                      f"\n\n-> {result.out / 'bench.csv'}")
    return "\n\n".join(blocks)
