"""Scoring a `pseudo:OUT[:ABLATION][:SPLIT]` suite (fiagen.manifests.pseudo): the split's frames and
their pseudo-fakes, drawn as the trainer's validation draws them (FIA-USA dataset with train=False: the
12.5% evaluation crop, epoch 0, no augmentations, seed = --seed), at the checkpoint's input size, and
scored directly by the scoring actor: one aligned crop per unit, no face detection.

Outputs are those of every suite (see fiagen.evaluate.runner), one unit per crop: `real/<video>/<frame>`
and `fake/<video>/<frame>` rows in frames.parquet/videos.parquet, a fake's method being how it was
drawn, `<mask type>/<reconstruction>/<blend ratio>/<T side>` (e.g. `hull81/ae/0.5/target`). The table
has one row per group of the breakdown (fiagen.train.breakdown: `mask:hull81`, `recon:ae`, `ratio:0.5`,
`t_side:target`, ...; each group's fakes against all the reals) and `all`. A rerun resumes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import ray
import torch
from torch.utils.data import Subset

from fiagen.cluster.session import as_finished
from fiagen.core.errors import FiagenError, last_line
from fiagen.core.files import sha256_file, write_text
from fiagen.core.outputs import claim_output
from fiagen.core.progress import stage_progress
from fiagen.core.version import __version__
from fiagen.evaluate.config import FLUSH_SECONDS, REPORT_NAME, EvalConfig, EvalMismatch, SuiteResult, table_stamp
from fiagen.evaluate.plots import roc_plot
from fiagen.evaluate.store import FRAMES_NAME, VIDEOS_NAME, ScoreStore
from fiagen.evaluate.tables import suite_table, summary_json, write_table
from fiagen.manifests.manifest import MANIFEST_NAME, read_manifest
from fiagen.manifests.pseudo import POOL, PseudoSpec, parse_pseudo
from fiagen.manifests.suites.listing import SuiteListing
from fiagen.train.breakdown import KINDS, batch_meta, fake_groups, ordered_groups

AGGREGATION = "one aligned crop per unit (the stored face box + 12.5% per side), no face detection"
MAX_LOADER_WORKERS = 8


def fake_method(meta: Mapping[str, Any]) -> str:
    """How a pseudo-fake was drawn, as its method: `<mask type>/<recon>/<ratio>/<T side>`."""
    return "/".join(group.split(":", 1)[1] for group in fake_groups(meta))


def method_meta(method: str) -> dict[str, str]:
    """The meta fields (mask_type, recon, blend_ratio, t_side) of a pseudo-fake's method."""
    return dict(zip((key for key, _ in KINDS), method.split("/"), strict=False))


def memberships(methods: pd.Series) -> pd.Series:
    """Each pseudo-fake's breakdown groups (one per kind) from its method."""
    return methods.map(lambda m: fake_groups(method_meta(m)))


def pseudo_table(frames: pd.DataFrame, videos: pd.DataFrame, level: str) -> pd.DataFrame:
    """One row per breakdown group present (its fakes against all the reals), in breakdown order, then
    `all`; the columns of every suite table."""
    fakes = videos["label"] == 1
    groups = memberships(videos.loc[fakes, "method"])
    parts = []
    for k in range(len(KINDS)):
        relabelled = videos.copy()
        relabelled.loc[fakes, "method"] = groups.str[k]
        table = suite_table(frames, relabelled, level)
        parts.append(table[table["method"] != "all"])
    rows = pd.concat(parts).set_index("method")
    return pd.concat([rows.loc[ordered_groups(rows.index)].reset_index(), table[table["method"] == "all"]],
                     ignore_index=True)


def _crops(images: torch.Tensor) -> np.ndarray:
    """(B, 3, S, S) float in [0, 1] (k/255 values: no noise at evaluation) -> (B, S, S, 3) uint8."""
    return images.mul(255).round_().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def _unit_rows(uid: str, frame: int, score: float, label: int, method: str, box: np.ndarray, det: float,
               path: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The frames.parquet row and videos.parquet row of one crop (box: the stored face box)."""
    base = {"video": uid, "label": label, "method": method, "pool": POOL, "family": ""}
    frame_row = {**base, "frame": frame, "face": 0, "score": score, "x0": float(box[0]), "y0": float(box[1]),
                 "x1": float(box[2]), "y1": float(box[3]), "det_score": det}
    video_row = {**base, "path": path, "frames_sampled": 1, "frames_with_face": 1, "faces": 1, "score": score,
                 "status": "ok", "reason": ""}
    return [frame_row], video_row


def _score(ds: torch.utils.data.Dataset, todo: list[int], rows: pd.DataFrame, ids: list[str], cfg: EvalConfig,
           scorer: Any, concurrency: int, store: ScoreStore, label: str) -> dict[str, float]:
    """Draw the pairs of `todo` in batches (DataLoader workers), score real and fake crops in the actor
    (up to three batches in flight), append one real and one fake unit per frame; the wall time and count."""
    from fiagen.generate.loader import pair_loader

    workers = 0 if concurrency <= 1 or len(todo) <= cfg.batch_size else min(concurrency, MAX_LOADER_WORKERS)
    loader = pair_loader(Subset(ds, todo), max(1, cfg.batch_size // 2), num_workers=workers)
    done, start, last_flush = 0, time.perf_counter(), time.perf_counter()

    def collect(ref: ray.ObjectRef, indices: list[int], methods: list[str]) -> None:
        nonlocal done, last_flush
        try:
            scores = ray.get(ref)
        except ray.exceptions.RayError as err:
            raise FiagenError(f"the scoring actor failed ({last_line(err)}); rerun to resume") from None
        n = len(indices)
        for k, (i, method) in enumerate(zip(indices, methods, strict=False)):
            row = rows.iloc[i]
            where = f"{row['shard']}#{row['row']}"
            for uid, score, truth, kind in ((f"real/{ids[i]}", scores[k], 0, "real"),
                                            (f"fake/{ids[i]}", scores[n + k], 1, method)):
                store.add(*_unit_rows(uid, int(row["frame_index"]), float(score), truth, kind, row["face_box"],
                                      float(row["det_score"]), where))
        done += n
        if store.pending >= cfg.chunk or time.perf_counter() - last_flush > FLUSH_SECONDS:
            store.flush()
            last_flush = time.perf_counter()

    try:
        with stage_progress(cfg.quiet) as bar:
            task = bar.add_task(label, total=len(todo), rate="")
            jobs = ((scorer.score.remote(_crops(torch.cat([batch["real"], batch["fake"]]))),
                     (batch["meta"]["index"].tolist(), [fake_method(m) for m in batch_meta(batch["meta"])]))
                    for batch in loader)
            for ref, (indices, methods) in as_finished(jobs, 3, ordered=True):  # up to three batches in flight
                collect(ref, indices, methods)
                bar.update(task, completed=done, rate=f"{done / (time.perf_counter() - start):.1f} frames/s")
    finally:  # also when interrupted: every unit already scored is kept
        store.flush()
    return {"wall_s": time.perf_counter() - start, "frames_scored": done}


def _fingerprint(parsed: PseudoSpec, recipe: Any, cfg: EvalConfig, info: dict[str, Any], size: int) -> dict[str, Any]:
    """What the scores depend on: the shards (their manifest's hash), recipe, split, seed, size, checkpoint."""
    return {"suite": parsed.dirname, "shards": str(parsed.shards.resolve()),
            "manifest_sha256": sha256_file(parsed.shards / MANIFEST_NAME), "split": parsed.split,
            "ablation": parsed.ablation, "recipe": json.loads(json.dumps(asdict(recipe))), "seed": cfg.seed,
            "size": size, "checkpoint_sha256": info["sha256"]}


def _claimed_store(folder: Path, fingerprint: dict[str, Any], overwrite: bool) -> ScoreStore:
    """The score store of `folder`, claimed for these settings (the scores on disk are resumed)."""
    claim_output(folder, fingerprint, overwrite, (FRAMES_NAME, VIDEOS_NAME),
                 lambda changed: EvalMismatch(f"{folder} holds scores made with other settings ({', '.join(changed)} "
                                              f"differ); use another --out or pass --overwrite to score again"))
    return ScoreStore(folder)


def _roc(videos: pd.DataFrame, table: pd.DataFrame, path: Path, title: str) -> None:
    """ROC curves of each mask type's and reconstruction's pseudo-fakes against every real, and of all."""
    reals = videos[videos["label"] == 0]
    fakes = videos[videos["label"] == 1]
    groups = memberships(fakes["method"])
    curves = {name: pd.concat([reals, fakes[groups.map(lambda gs, name=name: name in gs)]])
              for name in table["method"] if name.split(":", 1)[0] in ("mask", "recon")}
    roc_plot({**curves, "all": videos}, path, title)


def evaluate_pseudo(spec: str, listing: SuiteListing, cfg: EvalConfig, info: dict[str, Any], scorer: Any,
                    concurrency: int, out: Path) -> SuiteResult:
    """Score a pseudo suite with the scoring actor; write its score files, table, ROC and report under
    OUT/pseudo-<name>-<ablation>-<split>/ (see the module docstring)."""
    from fiagen.generate.dataset import FIAUSADataset

    parsed = parse_pseudo(spec)
    size = int(info["size"])
    ds = FIAUSADataset(parsed.shards, split=parsed.split, size=size, seed=cfg.seed, train=False,
                       ablation=parsed.ablation)
    manifest = read_manifest(parsed.shards)
    rows = manifest[manifest["split"] == parsed.split].reset_index(drop=True)
    ids = [it.video_id for it in listing.items]
    n = len(ids) if cfg.limit is None else min(len(ids), cfg.limit)
    level = listing.level if cfg.level == "auto" else cfg.level
    folder = out / parsed.dirname
    store = _claimed_store(folder, _fingerprint(parsed, ds.recipe, cfg, info, size), cfg.overwrite)
    finished = store.done()
    todo = [i for i in range(n) if f"fake/{ids[i]}" not in finished]
    timing = _score(ds, todo, rows, ids, cfg, scorer, concurrency, store, parsed.dirname)

    wanted = {f"{kind}/{uid}" for uid in ids[:n] for kind in ("real", "fake")}
    frames, videos = store.frames(), store.videos()
    frames = frames[frames["video"].isin(wanted)].reset_index(drop=True)
    videos = videos[videos["video"].isin(wanted)].reset_index(drop=True)
    table = pseudo_table(frames, videos, level)
    stamp = {"level": level, "split": parsed.split, "recipe": parsed.ablation, "frames": n, "seed": cfg.seed,
             "shards": str(parsed.shards), "aggregation": AGGREGATION,
             **{k: v for k, v in table_stamp(cfg, info, level, "raw").items()
                if k not in ("level", "frames_per_video", "aggregation")}}
    write_table(table, stamp, folder / "table",
                f"{spec}: {level}-level AUC of each group's pseudo-fakes against all {n} {parsed.split} reals")
    _roc(videos, table, folder / "roc.png", f"{parsed.dirname}: ROC per mask type / reconstruction")
    counts = {"real": int((videos["label"] == 0).sum()),
              **dict(zip(table["method"][:-1], table["n_fake"][:-1].astype(int).tolist(), strict=False))}
    report = {
        "fiagen_version": __version__,
        "suite": spec,
        "root": str(parsed.shards),
        "pseudo": {"shards": str(parsed.shards), "split": parsed.split, "recipe": parsed.ablation, "frames": n,
                   "seed": cfg.seed, "size": size},
        "config": asdict(cfg),
        "stamp": stamp,
        "items_found": len(ids),
        "items_selected": n,
        "items_missing": 0,
        "counts_by_method": counts,
        "missing": [],
        "notes": listing.notes,
        "conditions": {"raw": {"condition": "raw", "videos": len(videos), "videos_scored_now": 2 * len(todo),
                               "videos_reused": 2 * (n - len(todo)), "videos_no_face": 0, "videos_failed": 0,
                               "frames_sampled": len(videos), "frames_with_face": len(videos), "faces": len(frames),
                               "no_face": [], "failures": []}},
        "timings": timing,
        "summary": summary_json(table),
    }
    write_text(folder / REPORT_NAME, json.dumps(report, indent=2, default=str) + "\n")
    return SuiteResult(spec, folder, table, stamp, report)
