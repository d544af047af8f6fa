"""The Ray side of reconstruction in precompute: the fit pass of the builtin models, and actors that
hold the reconstructors and fill `FrameRecord.ae` / `.sr` for each extracted video.

Fit pass (only when a builtin model is asked for and out/models has none fit with these settings):
up to `fit_videos` train videos spread over the source's train split, and a quarter as many val
videos (or, with no val split, the last picked train video held out), each sampled at FIT_FRAMES
frames by the same face extraction as precompute; their face crops are the fit and held-out sets.
This decodes a few videos twice, but keeps shards written once, with their reconstructions.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import ray

from fiagen.core.errors import first_line, last_line
from fiagen.core.media import sample_indices
from fiagen.core.progress import stage_progress
from fiagen.manifests.sources import SourceListing, VideoItem
from fiagen.precompute.extract import VideoResult, extract_video
from fiagen.precompute.reconstruct.spec import ReconstructorError, ReconstructorSpec

FIT_FRAMES = 8


def _spread(items: Sequence[VideoItem], n: int) -> list[VideoItem]:
    return [items[i] for i in sample_indices(len(items), n)]


def pick_fit_videos(listing: SourceListing, n: int) -> tuple[list[VideoItem], list[VideoItem]]:
    """The train videos the builtin models are fit on and the videos held out for their PSNR."""
    train = [it for it in listing.items if it.split == "train"]
    if not train:
        raise ReconstructorError(f"builtin reconstructors are fit on the source's train videos, and "
                                 f"{listing.name} has none; pass --ae/--sr none or pretrained weights")
    picks = _spread(train, n)
    held = _spread([it for it in listing.items if it.split == "val"], max(1, n // 4))
    if not held and len(picks) > 1:
        picks, held = picks[:-1], picks[-1:]
    return picks, held


@ray.remote(num_cpus=1)
def _crops_remote(video_id: str, path: str, split: str, frames: int) -> list[np.ndarray]:
    import cv2

    cv2.setNumThreads(1)
    return [r.image for r in extract_video(video_id, Path(path), split, frames).records]


@ray.remote
def _fit_remote(kind: str, train: list[np.ndarray], val: list[np.ndarray], settings: Any,
                threads: int) -> tuple[dict[str, Any], dict[str, Any]]:
    import torch

    from fiagen.precompute.reconstruct.fit import fit_builtin

    torch.set_num_threads(threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    rec, record = fit_builtin(kind, train, val, settings, device)
    return {k: v.detach().cpu() for k, v in rec.net.state_dict().items()}, record


def _reusable(models_dir: Path, kind: str, expected: dict[str, Any]) -> dict[str, Any] | None:
    """The saved record when out/models holds a model of `kind` fit exactly as `expected` says."""
    from fiagen.precompute.reconstruct.builtin import load_builtin, read_record

    record = read_record(models_dir, kind)
    if record is None or any(record.get(k) != v for k, v in expected.items()):
        return None
    try:
        load_builtin(models_dir, kind)
    except ReconstructorError:
        return None
    return record


def _fit_crops(items: Sequence[VideoItem], quiet: bool) -> dict[str, list[np.ndarray]]:
    """The face crops of FIT_FRAMES frames of each video, extracted as Ray tasks."""
    # absolute paths: a cluster's workers run in another directory
    refs = {_crops_remote.remote(it.video_id, str(Path(it.path).absolute()), it.split, FIT_FRAMES): it.video_id
            for it in items}
    crops: dict[str, list[np.ndarray]] = {}
    with stage_progress(quiet) as bar:
        task = bar.add_task("fit crops", total=len(refs), rate="")
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            crops[refs[ready[0]]] = ray.get(ready[0])
            bar.update(task, advance=1)
    return crops


def prepare_builtin(kinds: Sequence[str], listing: SourceListing, models_dir: Path, settings: Any,
                    fit_videos: int, concurrency: int, quiet: bool = False) -> dict[str, dict[str, Any]]:
    """Fit (or reuse from `models_dir`) the builtin models of `kinds`; return each one's record, with
    `reused` saying which. Fits run as Ray tasks (one GPU each when the cluster has GPUs)."""
    from fiagen.precompute.reconstruct.builtin import ARCHS, build_net, save_builtin

    train_items, held_items = pick_fit_videos(listing, fit_videos)
    records: dict[str, dict[str, Any]] = {}
    todo = []
    for kind in kinds:
        expected = {"arch": ARCHS[kind], "fit_videos": [it.video_id for it in train_items],
                    "held_out_videos": [it.video_id for it in held_items],
                    "settings": {**asdict(settings), "lr": settings.lr_for(kind)}}
        record = _reusable(models_dir, kind, expected)
        if record is not None:
            records[kind] = {**record, "reused": True}
        else:
            todo.append((kind, expected))
    if not todo:
        return records
    crops = _fit_crops(train_items + held_items, quiet)
    train = [c for it in train_items for c in crops[it.video_id]]
    held = [c for it in held_items for c in crops[it.video_id]]
    if not train:
        raise ReconstructorError(f"builtin reconstructors: no face with landmarks in the train videos picked "
                                 f"for fitting ({', '.join(it.video_id for it in train_items)})")
    threads = max(1, concurrency // len(todo))
    options = {"num_gpus": 1, "num_cpus": 1} if ray.cluster_resources().get("GPU", 0) else {"num_cpus": threads}
    train_ref, held_ref = ray.put(train), ray.put(held)
    start = time.perf_counter()
    jobs = {kind: _fit_remote.options(**options).remote(kind, train_ref, held_ref, settings, threads)
            for kind, _ in todo}
    with stage_progress(quiet, unit="models") as bar:
        task = bar.add_task(f"fit builtin {'+'.join(jobs)}", total=len(jobs), rate="")
        for kind, expected in todo:
            try:
                state, record = ray.get(jobs[kind])
            except ray.exceptions.RayTaskError as err:
                if isinstance(err.cause, ReconstructorError):
                    raise err.cause from None
                raise
            net = build_net(kind)
            net.load_state_dict(state)
            record = {**record, **expected, "wall_seconds": time.perf_counter() - start}
            save_builtin(models_dir, kind, net, record)
            records[kind] = {**record, "reused": False}
            bar.update(task, advance=1)
    return records


def reconstruct_video(result: VideoResult, reconstructors: dict[str, Any]) -> tuple[VideoResult, dict[str, Any]]:
    """Fill each stored frame's ae/sr (the video's crops go to each reconstructor together, which batches
    them on a GPU); a frame a reconstructor fails on keeps None there and gets a failure entry (video_id,
    path, frame_index, stage, reason) in result.frame_failures."""
    summary: dict[str, Any] = {"video_id": result.video_id, "frames": len(result.records), "seconds": {}}
    for kind, rec in reconstructors.items():
        start, failed = time.perf_counter(), 0
        outputs = rec.reconstruct_each([record.image for record in result.records])
        for record, output in zip(result.records, outputs, strict=True):
            if isinstance(output, np.ndarray):
                setattr(record, kind, output)
            else:  # one frame's failure is recorded, the video goes on
                failed += 1
                setattr(record, kind, None)
                result.frame_failures.append({
                    "video_id": result.video_id, "path": result.path, "frame_index": int(record.frame_index),
                    "stage": kind,
                    "reason": f"{kind} reconstruction failed on frame {record.frame_index}: {first_line(output)}"})
        summary["seconds"][kind] = time.perf_counter() - start
        summary[f"{kind}_failed"] = failed
    return result, summary


@ray.remote
class ReconstructActor:
    """Holds the reconstructors (on the GPU when it was given one) and reconstructs whole videos."""

    def __init__(self, specs: list[ReconstructorSpec], models_dir: str, threads: int) -> None:
        import torch

        from fiagen.precompute.reconstruct import load_reconstructor

        torch.set_num_threads(threads)
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        if self.device == "cuda":
            torch.backends.cudnn.benchmark = True  # a few padded crop sizes per run (base.BUCKET), each tuned once
        self.reconstructors = {s.kind: load_reconstructor(s, Path(models_dir), self.device) for s in specs}

    def ids(self) -> dict[str, str]:
        return {kind: rec.id for kind, rec in self.reconstructors.items()}

    @ray.method(num_returns=2)
    def reconstruct(self, result: VideoResult) -> tuple[VideoResult, dict[str, Any]]:
        return reconstruct_video(result, self.reconstructors)


class ReconstructPool:
    """The reconstruction actors of a precompute run: one per GPU when the cluster has GPUs, else one
    single-threaded CPU actor per four workers. On one core the builtin AE+SR of an FF++ crop take
    ~25 ms (benchmarks/bench_reconstruct.py), a few times less than decoding the frame and finding the
    face and mesh, so a quarter of the cores keeps up; below four workers the one actor reserves no
    CPU and shares the cores with the extraction tasks rather than idle on one of them."""

    def __init__(self, specs: list[ReconstructorSpec], models_dir: Path, concurrency: int) -> None:
        gpus = int(ray.cluster_resources().get("GPU", 0))
        cpus = 1 if concurrency >= 4 else 0
        if gpus:
            options, n = {"num_gpus": 1, "num_cpus": cpus}, gpus
        else:
            options, n = {"num_cpus": cpus}, max(1, concurrency // 4)
        self.actors = [ReconstructActor.options(**options).remote(specs, str(models_dir), 1) for _ in range(n)]
        self.load = [0] * n
        self._owner: dict[ray.ObjectRef, int] = {}
        try:
            ids = ray.get([a.ids.remote() for a in self.actors])
        except ray.exceptions.RayError as err:
            raise ReconstructorError(f"a reconstructor failed to load: {last_line(err)}") from err
        self.ids: dict[str, str] = ids[0]

    @property
    def capacity(self) -> int:
        """Videos worth keeping queued at the actors (two each, so none idles between calls)."""
        return 2 * len(self.actors)

    @property
    def pending(self) -> int:
        return sum(self.load)

    def submit(self, result: ray.ObjectRef) -> tuple[ray.ObjectRef, ray.ObjectRef]:
        """Reconstruct a video's frames on the least-loaded actor: (VideoResult ref, summary ref)."""
        i = int(np.argmin(self.load))
        out, summary = self.actors[i].reconstruct.remote(result)
        self.load[i] += 1
        self._owner[summary] = i
        return out, summary

    def finished(self, summary: ray.ObjectRef) -> None:
        self.load[self._owner.pop(summary)] -= 1
