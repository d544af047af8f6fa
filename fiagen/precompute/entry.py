"""The precompute stage: real videos -> faces, landmarks, crops -> HDF5 shards + manifest, on Ray."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ray

from fiagen.cluster.session import ray_session
from fiagen.core import stop
from fiagen.core.files import DiskFullError, remove_stale_temps
from fiagen.core.outputs import claim_output, hold_folder
from fiagen.core.progress import stage_progress
from fiagen.manifests.manifest import MANIFEST_NAME, RUN_NAME, write_run_report
from fiagen.manifests.sources import SPLITS, resolve_source
from fiagen.precompute.config import MODELS_DIR, ConfigMismatch, PrecomputeConfig, PrecomputeReport
from fiagen.precompute.extract import VideoResult, extract_video
from fiagen.precompute.index import write_manifest
from fiagen.precompute.plan import ShardPlan, is_done, plan_shards
from fiagen.precompute.reconstruct.stage import ReconstructPool, pick_fit_videos, prepare_builtin
from fiagen.precompute.run_report import run_report, stopped_report, write_stopped
from fiagen.precompute.shard_writer import write_shard
from fiagen.precompute.shards import FrameRecord, ShardContent, read_shard_meta, recorded_checksum

log = logging.getLogger(__name__)
__all__ = ["ConfigMismatch", "PrecomputeConfig", "PrecomputeReport", "precompute"]


@ray.remote(num_cpus=1, num_returns=2)
def _extract_remote(video_id: str, path: str, split: str, frames: int) -> tuple[VideoResult, dict[str, Any]]:
    import cv2

    cv2.setNumThreads(1)
    result = extract_video(video_id, Path(path), split, frames)
    return result, {"video_id": video_id, "split": split, "failure": result.failure, "stats": result.stats(),
                    "seconds": result.seconds, "face_passes": result.face_passes,
                    "node_id": ray.get_runtime_context().get_node_id(),
                    "node_ip": ray.util.get_node_ip_address()}


@ray.remote(num_cpus=1)
def _write_remote(out: str, plan: ShardPlan, cfg: PrecomputeConfig, ids: dict[str, str],
                  videos: list[ray.ObjectRef]) -> dict[str, Any]:
    """Write one shard, fetching its videos' results one at a time (a list of refs, so Ray does not fetch
    them all before the task starts): the writer holds one video's frames at once, not the shard's."""
    content = ShardContent(plan.split, plan.shard_id, [v.video_id for v in plan.videos],
                           ae_id=ids.get("ae", "none"), sr_id=ids.get("sr", "none"), compression=cfg.compression)

    def rows() -> Iterator[FrameRecord]:
        for ref in videos:
            res: VideoResult = ray.get(ref)
            content.video_stats[res.video_id] = res.stats()
            if res.failure is not None:
                content.failures.append({"video_id": res.video_id, "path": res.path, "reason": res.failure})
            content.failures.extend(res.frame_failures)
            yield from res.records
            del res

    start = time.perf_counter()
    digest = write_shard(Path(out) / plan.relpath, content, rows())  # "" and an empty record when no row came
    return {"relpath": plan.relpath, "sha256": digest, "write_s": time.perf_counter() - start}


def _collect_writes(refs: list[ray.ObjectRef], written: list[dict[str, Any]]) -> DiskFullError | None:
    """Wait for shard writers and append their results to `written`; return the DiskFullError of the
    first that found the disk full."""
    full = None
    for ref in refs:
        try:
            written.append(ray.get(ref))
        except ray.exceptions.RayTaskError as err:
            if not isinstance(err.cause, DiskFullError):
                raise
            full = full or err.cause
    return full


@contextmanager
def _stopped_if_ray_died() -> Iterator[None]:
    """A signal to the whole process group (SLURM, Kubernetes) also reaches a local Ray's raylet, which may die
    before this process reaches its safe point: after a stop request, a Ray failure is that stop."""
    try:
        yield
    except ray.exceptions.RayError:
        if stop.requested() is None:
            raise
        raise stop.Stopped(stop.requested()) from None


def _run_shards(cfg: PrecomputeConfig, out: Path, todo: list[ShardPlan], concurrency: int,
                pool: ReconstructPool | None, written: list[dict[str, Any]]) -> dict[str, Any]:
    """Extract every video of the pending shards as Ray tasks (at most `concurrency` at once), pass each
    extracted video to the reconstruction actors when there are any, and write each shard as soon as
    its videos are done. Appends each written shard's result to `written` as it finishes; a full disk
    stops the extraction, lets the writers already started end (so nothing writes into `out` after this
    returns, and `written` is what is complete) and raises. Returns the per-video summaries and results."""
    summaries: dict[str, dict[str, Any]] = {}
    recon: dict[str, dict[str, Any]] = {}
    results: dict[str, ray.ObjectRef] = {}
    done: set[str] = set()
    queue = [(plan, item) for plan in todo for item in plan.videos]
    plan_of = {item.video_id: plan for plan, item in queue}
    in_flight: dict[ray.ObjectRef, tuple[str, str]] = {}
    writers: list[ray.ObjectRef] = []  # not finished yet
    ids = pool.ids if pool is not None else {}
    frames_done, extracting, start, full = 0, 0, time.perf_counter(), None
    with stop.safe_points(), stage_progress(cfg.quiet) as bar, _stopped_if_ray_died():
        task = bar.add_task("precompute", total=len(queue), rate="")
        # a signal stops the extraction: the shards whose writers started are finished, the others dropped
        while (queue or in_flight) and full is None and stop.requested() is None:
            # at most `concurrency` extractions, and no more while the actors have a full queue
            while queue and extracting < concurrency and (pool is None or pool.pending < pool.capacity):
                plan, item = queue.pop(0)
                path = str(Path(item.path).absolute())  # a cluster's workers run in another directory
                result_ref, summary_ref = _extract_remote.remote(item.video_id, path, item.split, cfg.frames)
                results[item.video_id] = result_ref
                in_flight[summary_ref] = ("extract", item.video_id)
                extracting += 1
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            for ref in ready:
                step, video_id = in_flight.pop(ref)
                summary = ray.get(ref)
                if step == "extract":
                    extracting -= 1
                    summaries[video_id] = summary
                    frames_done += summary["stats"]["frames_sampled"]
                    if pool is not None and summary["stats"]["frames_stored"]:
                        results[video_id], recon_ref = pool.submit(results[video_id])
                        in_flight[recon_ref] = ("reconstruct", video_id)
                        continue
                else:
                    pool.finished(ref)
                    recon[video_id] = summary
                done.add(video_id)
                plan = plan_of[video_id]
                if all(v.video_id in done for v in plan.videos):
                    writers.append(_write_remote.remote(str(out), plan, cfg, ids,
                                                        [results.pop(v.video_id) for v in plan.videos]))
            if writers:  # a full disk stops the run at the first shard that does not fit
                finished, writers = ray.wait(writers, num_returns=len(writers), timeout=0)
                full = _collect_writes(finished, written)
            rate = frames_done / max(1e-9, time.perf_counter() - start)
            bar.update(task, completed=len(done), rate=f"{rate:.1f} frames/s")
        rest = _collect_writes(writers, written)  # waited for even after a full disk: they write into `out`
    if full or rest:
        raise full or rest
    if queue or in_flight:  # left by a signal
        raise stop.Stopped(stop.requested())
    return {"videos": summaries, "reconstruct": recon, "written": written, "process_s": time.perf_counter() - start}


def _stale(out: Path, plans: list[ShardPlan], todo: list[ShardPlan], ids: dict[str, str]) -> list[ShardPlan]:
    """Complete shards whose reconstructions were made by other weights than the models of this run."""
    rebuilt = {p.relpath for p in todo}
    return [p for p in plans if p.relpath not in rebuilt and
            any(read_shard_meta(out / p.relpath)[f"{k}_id"] != ids.get(k, "none") for k in ("ae", "sr"))]


def precompute(cfg: PrecomputeConfig, partial_source: bool = False) -> PrecomputeReport:
    """Run precompute; returns the report. Raises SourceError / ConfigMismatch / ReconstructorError with
    one-line messages, all before any video is read. Listed videos missing under the root are a warning,
    or an info line with `partial_source` (a caller that holds only some of the source's videos on purpose,
    as the demo's sample does); run.json lists them either way.

    With builtin reconstructors, their models are fit first (or reused from OUT/models; see
    fiagen.precompute.reconstruct.stage for the fit pass), then reconstruction actors fill every frame's
    AE/SR before its shard is written."""
    source = resolve_source(cfg.src, cfg.root)
    listing = source.select(cfg.splits, cfg.limit)
    if listing.missing:
        expected = len(listing.missing) + len([it for it in source.items if it.split in cfg.splits])
        log.log(logging.INFO if partial_source else logging.WARNING,
                "%s: %d of the %d videos of splits %s are missing under %s; precompute goes on without them "
                "(OUT/run.json lists them)", cfg.src, len(listing.missing), expected, ",".join(cfg.splits),
                listing.root)
    fit_pool = source.select(SPLITS, cfg.limit)  # builtin models fit on train videos whatever --splits says
    specs = cfg.reconstructor_specs()
    builtin = [s.kind for s in specs if s.family == "builtin"]
    if builtin:
        from fiagen.precompute.reconstruct.fit import check_settings

        check_settings(cfg.fit_settings())
        pick_fit_videos(fit_pool, cfg.fit_videos)
    out = Path(cfg.out).absolute()  # Ray tasks write under it, and a cluster's workers run in another directory
    fingerprint = cfg.fingerprint(listing, specs)
    with hold_folder(out):
        claim_output(out, fingerprint, cfg.overwrite, ("shards", MODELS_DIR, MANIFEST_NAME, RUN_NAME),
                     lambda changed: ConfigMismatch(f"{out} was made with other settings ({', '.join(changed)} "
                                                    f"differ); use another --out or pass --overwrite to rebuild it"))
        plans = plan_shards(listing, cfg.splits, cfg.frames, cfg.shard_size)
        todo = [p for p in plans if not is_done(out, p)]
        log.info("%s: %d videos in %d shards, %d to write (%d already done)", cfg.src, len(listing.items),
                 len(plans), len(todo), len(plans) - len(todo))
        wall_start = time.perf_counter()
        run: dict[str, Any] = {"videos": {}, "reconstruct": {}, "written": [], "process_s": 0.0, "models_s": 0.0}
        concurrency, written = 0, []
        try:
            if todo:
                with ray_session(cfg.address, cfg.concurrency) as concurrency:
                    pool, models_start = None, time.perf_counter()
                    if builtin:
                        prepare_builtin(builtin, fit_pool, out / MODELS_DIR, cfg.fit_settings(), cfg.fit_videos,
                                        concurrency, cfg.quiet)
                    if specs:
                        pool = ReconstructPool(specs, out / MODELS_DIR, concurrency)
                        todo += _stale(out, plans, todo, pool.ids)
                    models_s = time.perf_counter() - models_start
                    run = {**_run_shards(cfg, out, todo, concurrency, pool, written), "models_s": models_s}
            wall = time.perf_counter() - wall_start
            shard_entries = [(p.relpath, recorded_checksum(out / p.relpath) or "") for p in plans
                             if (out / p.relpath).exists()]  # a shard without rows has only its record
            write_manifest(out, shard_entries)
            report = run_report(cfg, listing, fingerprint, plans, todo, run, wall, concurrency)
            write_run_report(out, report)
        except DiskFullError as err:
            remove_stale_temps(out)  # what writers that Ray ended left; the folder is still held
            raise err.noted(stopped_report(cfg, out, fingerprint, plans, todo, written, str(err))) from None
        except stop.Stopped as err:
            remove_stale_temps(out)
            complete, _ = write_stopped(cfg, out, fingerprint, plans, todo, written, stop.STATUS, signal=err.name)
            detail = " ".join(filter(None, (err.detail, f"with {complete} of {len(plans)} shards complete")))
            raise stop.Stopped(err.signum, detail) from None
    return PrecomputeReport(out, report, len(todo), len(plans) - len(todo))
