"""The Ray side of the evaluation: the detector actor, work units of videos and images, and the loop
that keeps units in flight (decode/detect/crop tasks feeding the actor) and buffers their rows."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import ray

from fiagen.cluster.session import as_finished
from fiagen.core import stop
from fiagen.core.errors import FiagenError, last_line, message_line
from fiagen.core.media import is_image
from fiagen.core.progress import stage_progress
from fiagen.evaluate.config import FLUSH_SECONDS, EvalConfig
from fiagen.evaluate.scoring import NO_FACE_SCORE, VideoCrops, crops_task, predict
from fiagen.evaluate.store import ScoreStore
from fiagen.manifests.suites.listing import EvalItem


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


def scorer_actor(ckpt: Path, batch_size: int) -> Any:
    """The detector actor: on a GPU when the cluster has one. It reserves no CPU slot, so the decode/detect
    tasks (the bulk of the work for the usual models) keep every core."""
    gpus = ray.cluster_resources().get("GPU", 0) >= 1
    return ray.remote(num_gpus=1 if gpus else 0, num_cpus=0)(_Scorer).remote(str(ckpt), batch_size)


def _rows(res: VideoCrops, scores: np.ndarray) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A unit's frame rows (one per face) and video row from its crops and their scores."""
    it = res.item
    base = {"video": it.video_id, "label": it.label, "method": it.method, "pool": it.pool, "family": it.family}
    frame_rows = [
        {**base, "frame": int(f), "face": int(k), "score": float(s), "x0": float(b[0]), "y0": float(b[1]),
         "x1": float(b[2]), "y1": float(b[3]), "det_score": float(d), "finder": finder}
        for f, k, s, b, d, finder in zip(res.frame, res.face, scores, res.boxes, res.det_score, res.finder,
                                         strict=False)
    ]
    if len(scores):
        per_frame = pd.Series(scores).groupby(res.frame).max()
        score, status = float(per_frame.mean()), "ok"
    else:
        score, status = NO_FACE_SCORE, "failed" if res.failure else "no_face"
    video_row = {**base, "path": str(it.path), "frames_sampled": res.frames_sampled,
                 "frames_with_face": res.frames_with_face, "faces": len(scores), "score": score, "status": status,
                 "reason": res.failure or "", "frames_undecodable": res.frames_undecodable,
                 "frames_decoded": res.frames_decoded, "frames_shortfall": res.frames_shortfall,
                 "face_policy": res.face_mode, "frames_whole": res.frames_whole,
                 "face_passes": json.dumps(res.face_passes)}
    return frame_rows, video_row


def _failed(item: EvalItem, reason: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The rows of an item whose task failed as a whole: no frames, status failed, the reason."""
    empty = VideoCrops(item, np.zeros((0, 1, 1, 3), np.uint8), np.zeros(0, np.int64), np.zeros(0, np.int64),
                       np.zeros((0, 4), np.float32), np.zeros(0, np.float32), failure=reason)
    return _rows(empty, np.zeros(0, np.float32))


@dataclass
class Condition:
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


def run_conditions(conditions: list[Condition], cfg: EvalConfig, info: dict[str, Any], scorer: Any,
                    concurrency: int, label: str, modes: dict[str, str]) -> dict[str, float]:
    """Score every pending item of every condition (at most `concurrency` + 2 units in flight; each item
    with its face mode from `modes`), appending the rows chunk by chunk; returns the wall time and the
    number of videos scored."""
    def jobs() -> Iterator[tuple[ray.ObjectRef, tuple[ray.ObjectRef, list[EvalItem], ScoreStore]]]:
        for c in conditions:
            for unit in _units(c.todo, cfg.frames):
                crops_ref, meta_ref = crops_task.remote(unit, [modes[it.video_id] for it in unit], cfg.frames,
                                                         int(info["size"]), c.perturb, c.level, cfg.seed,
                                                         cfg.min_face_score)
                yield scorer.score.remote(crops_ref), (meta_ref, unit, c.store)

    last_flush = time.perf_counter()
    done, start, stopped = 0, time.perf_counter(), False
    try:
        with stop.safe_points(), stage_progress(cfg.quiet) as bar:
            task = bar.add_task(label, total=sum(len(c.todo) for c in conditions), rate="")
            for ref, (meta_ref, unit, store) in as_finished(jobs(), concurrency + 2):
                _collect(ref, meta_ref, unit, store)
                done += len(unit)
                if store.pending >= cfg.chunk or time.perf_counter() - last_flush > FLUSH_SECONDS:
                    for c in conditions:
                        c.store.flush()
                    last_flush = time.perf_counter()
                bar.update(task, completed=done, rate=f"{done / max(1e-9, time.perf_counter() - start):.2f} videos/s")
                if stop.requested() is not None:  # a signal: the units in flight are dropped, the rest kept
                    stopped = True
                    break
    finally:  # also when interrupted: every video already scored is kept
        for c in conditions:
            c.store.flush()
    if stopped:
        raise stop.Stopped(stop.requested())
    return {"wall_s": time.perf_counter() - start, "videos_scored": done}
