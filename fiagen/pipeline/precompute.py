"""The precompute stage: real videos -> faces, landmarks, crops -> HDF5 shards + manifest, on Ray."""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable

import ray

from fiagen import __version__
from fiagen.errors import FiagenError
from fiagen.files import DiskFullError
from fiagen.manifests.manifest import MANIFEST_NAME, RUN_NAME, write_run_report
from fiagen.manifests.sources import SPLITS, SourceListing, resolve_source
from fiagen.outputs import claim_output, hold_folder
from fiagen.pipeline.cluster import ray_session
from fiagen.pipeline.extract import TIMED_STEPS, VideoResult, extract_video
from fiagen.pipeline.faces import PASSES, total_passes
from fiagen.pipeline.index import write_manifest
from fiagen.pipeline.plan import ShardPlan, is_done, plan_shards
from fiagen.pipeline.reconstruct import ReconstructorSpec, parse_spec, resolve_spec
from fiagen.pipeline.reconstruct.stage import ReconstructPool, pick_fit_videos, prepare_builtin
from fiagen.pipeline.shards import SCHEMA_VERSION, ShardContent, read_shard_meta, recorded_checksum, write_shard
from fiagen.progress import stage_progress

MODELS_DIR = "models"
VERSIONED = ("numpy", "opencv-contrib-python", "mediapipe", "h5py", "ray", "pandas", "pyarrow", "torch")


class ConfigMismatch(FiagenError):
    """An output folder made with other settings; the message says how to proceed."""


@dataclass(frozen=True)
class PrecomputeConfig:
    """Every setting of `fiagen precompute` (see `fiagen precompute --help`)."""

    src: str = "ff++_c23"
    root: str | None = None
    out: str = "out"
    splits: tuple[str, ...] = SPLITS
    frames: int = 32
    shard_size: int = 256
    workers: int | None = None
    address: str | None = None
    ae: str = "builtin"
    sr: str = "builtin"
    fit_steps: int = 1000
    fit_patch: int = 64
    fit_videos: int = 16
    limit: int | None = None
    compression: str = "none"
    overwrite: bool = False
    quiet: bool = False

    def reconstructor_specs(self) -> list[ReconstructorSpec]:
        """The enabled --ae/--sr specs, parsed and resolved (weights found, hashed; a named hub id fetched)."""
        specs = [parse_spec(self.ae, "ae"), parse_spec(self.sr, "sr")]
        return [resolve_spec(s) for s in specs if s.enabled]

    def fit_settings(self) -> Any:
        """How the builtin reconstructors are fit (fiagen.pipeline.reconstruct.fit.FitSettings)."""
        from fiagen.pipeline.reconstruct.fit import FitSettings

        return FitSettings(steps=self.fit_steps, patch=self.fit_patch)

    def fingerprint(self, listing: SourceListing, specs: list[ReconstructorSpec] = ()) -> dict[str, Any]:
        """The settings that decide what the output holds (not how fast it is made): with reconstructors,
        their weights' sha256 (pretrained) or fit settings (builtin)."""
        recon: dict[str, Any] = {}
        for spec in specs:
            recon.update({f"{spec.kind}_{k}": v for k, v in spec.fingerprint().items() if k != "spec"})
        if any(spec.family == "builtin" for spec in specs):
            recon["fit"] = {**asdict(self.fit_settings()), "videos": self.fit_videos}
        return {
            "schema_version": SCHEMA_VERSION,
            "src": self.src,
            "source_root": str(listing.root.resolve()),
            "splits": list(self.splits),
            "frames": self.frames,
            "shard_size": self.shard_size,
            "ae": self.ae,
            "sr": self.sr,
            "limit": self.limit,
            "compression": self.compression,
            "face_passes": list(PASSES),
            **recon,
        }


@dataclass
class PrecomputeReport:
    """What a precompute run wrote: the folder, its run report, and how many shards were (re)built."""

    out: Path
    report: dict[str, Any] = field(default_factory=dict)
    shards_written: int = 0
    shards_reused: int = 0


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
                  *results: VideoResult) -> dict[str, Any]:
    content = ShardContent(plan.split, plan.shard_id, [v.video_id for v in plan.videos],
                           ae_id=ids.get("ae", "none"), sr_id=ids.get("sr", "none"), compression=cfg.compression)
    for res in results:
        content.records.extend(res.records)
        content.video_stats[res.video_id] = res.stats()
        if res.failure is not None:
            content.failures.append({"video_id": res.video_id, "path": res.path, "reason": res.failure})
        content.failures.extend(res.frame_failures)
    start = time.perf_counter()
    digest = write_shard(Path(out) / plan.relpath, content)
    return {"relpath": plan.relpath, "sha256": digest, "write_s": time.perf_counter() - start}


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "fiagen": __version__}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


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
    with stage_progress(cfg.quiet) as bar:
        task = bar.add_task("precompute", total=len(queue), rate="")
        while (queue or in_flight) and full is None:
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
                                                        *[results.pop(v.video_id) for v in plan.videos]))
            if writers:  # a full disk stops the run at the first shard that does not fit
                finished, writers = ray.wait(writers, num_returns=len(writers), timeout=0)
                full = _collect_writes(finished, written)
            rate = frames_done / max(1e-9, time.perf_counter() - start)
            bar.update(task, completed=len(done), rate=f"{rate:.1f} frames/s")
        rest = _collect_writes(writers, written)  # waited for even after a full disk: they write into `out`
    if full or rest:
        raise full or rest
    return {"videos": summaries, "reconstruct": recon, "written": written, "process_s": time.perf_counter() - start}


def _stale(out: Path, plans: list[ShardPlan], todo: list[ShardPlan], ids: dict[str, str]) -> list[ShardPlan]:
    """Complete shards whose reconstructions were made by other weights than the models of this run."""
    rebuilt = {p.relpath for p in todo}
    return [p for p in plans if p.relpath not in rebuilt and
            any(read_shard_meta(out / p.relpath)[f"{k}_id"] != ids.get(k, "none") for k in ("ae", "sr"))]


def precompute(cfg: PrecomputeConfig) -> PrecomputeReport:
    """Run precompute; returns the report. Raises SourceError / ConfigMismatch / ReconstructorError with
    one-line messages, all before any video is read.

    With builtin reconstructors, their models are fit first (or reused from OUT/models; see
    fiagen.pipeline.reconstruct.stage for the fit pass), then reconstruction actors fill every frame's
    AE/SR before its shard is written."""
    source = resolve_source(cfg.src, cfg.root)
    listing = source.select(cfg.splits, cfg.limit)
    fit_pool = source.select(SPLITS, cfg.limit)  # builtin models fit on train videos whatever --splits says
    specs = cfg.reconstructor_specs()
    builtin = [s.kind for s in specs if s.family == "builtin"]
    if builtin:
        from fiagen.pipeline.reconstruct.fit import check_settings

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
        wall_start = time.perf_counter()
        run: dict[str, Any] = {"videos": {}, "reconstruct": {}, "written": [], "process_s": 0.0, "models_s": 0.0}
        concurrency, written = 0, []
        try:
            if todo:
                with ray_session(cfg.address, cfg.workers) as concurrency:
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
            shard_entries = [(p.relpath, recorded_checksum(out / p.relpath) or "") for p in plans]
            write_manifest(out, shard_entries)
            report = _report(cfg, listing, fingerprint, plans, todo, run, wall, concurrency)
            write_run_report(out, report)
        except DiskFullError as err:
            raise err.noted(_stopped(cfg, out, fingerprint, plans, todo, written, str(err))) from None
    return PrecomputeReport(out, report, len(todo), len(plans) - len(todo))


def _stopped(cfg: PrecomputeConfig, out: Path, fingerprint: dict[str, Any], plans: list[ShardPlan],
             todo: list[ShardPlan], written: list[dict[str, Any]], reason: str) -> str:
    """Write run.json for a run stopped by a full disk (which shards are complete, which are not; the
    manifest is left as it was); return what to tell the user."""
    complete = ({p.relpath for p in plans} - {p.relpath for p in todo}) | {w["relpath"] for w in written}
    report = {"fiagen_version": __version__, "status": f"stopped: {reason}",
              "config": {**asdict(cfg), "splits": list(cfg.splits)}, "fingerprint": fingerprint,
              "counts": {"shards": len(plans), "shards_complete": len(complete)},
              "shards_complete": sorted(complete),
              "shards_unfinished": [p.relpath for p in plans if p.relpath not in complete]}
    try:
        write_run_report(out, report)
        where = f"listed in {out / RUN_NAME}"
    except DiskFullError:
        where = f"{RUN_NAME} could not be written either"
    return (f"{len(complete)} of {len(plans)} shards are complete ({where}); free some space and run the same "
            f"command again to build the rest")


def _nodes(summaries: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per Ray node (by node id) of this run: its IP and how many videos it processed."""
    nodes: dict[str, dict[str, Any]] = {}
    for s in summaries:
        nodes.setdefault(s["node_id"], {"ip": s["node_ip"], "videos": 0})["videos"] += 1
    return dict(sorted(nodes.items()))


def _report(cfg: PrecomputeConfig, listing: SourceListing, fingerprint: dict[str, Any], plans: list[ShardPlan],
            todo: list[ShardPlan], run: dict[str, Any], wall: float, concurrency: int) -> dict[str, Any]:
    """The run report: config, versions, counts, the face finder's passes (runs and faces found per pass,
    over the videos processed in this run), every missing video and failure (videos, and frames a
    reconstructor failed on), the reconstructor ids and builtin fit records, shard checksums, the Ray
    node (id, IP) that processed each video of this run and videos per node, timings."""
    rebuilt = {p.relpath for p in todo}
    counts = dict.fromkeys(("frames_sampled", "frames_stored", "frames_no_face", "frames_no_landmarks"), 0)
    per_split: dict[str, dict[str, int]] = {s: {"videos": 0, "videos_failed": 0, "frames_stored": 0}
                                            for s in cfg.splits}
    failures, shards, ids = [], [], {"ae": set(), "sr": set()}
    for plan in plans:
        meta = read_shard_meta(Path(cfg.out) / plan.relpath)
        for kind in ids:
            ids[kind].add(meta[f"{kind}_id"])
        for stats in meta["video_stats"].values():
            for key in counts:
                counts[key] += stats[key]
        per_split[plan.split]["videos"] += len(plan.videos)
        per_split[plan.split]["videos_failed"] += sum("frame_index" not in f for f in meta["failures"])
        per_split[plan.split]["frames_stored"] += meta["n_rows"]
        failures += [dict(f, split=plan.split) for f in meta["failures"]]
        shards.append({"path": plan.relpath, "split": plan.split, "rows": meta["n_rows"],
                       "sha256": recorded_checksum(Path(cfg.out) / plan.relpath),
                       "videos": meta["videos"], "rebuilt": plan.relpath in rebuilt})
    seconds = dict.fromkeys(TIMED_STEPS, 0.0)
    for summary in run["videos"].values():
        for key, value in summary["seconds"].items():
            seconds[key] += value
    frames_processed = sum(s["stats"]["frames_sampled"] for s in run["videos"].values())
    from fiagen.pipeline.reconstruct.builtin import read_record

    frame_failures = [f for f in failures if "frame_index" in f]
    recon_s = {k: sum(r["seconds"].get(k, 0.0) for r in run["reconstruct"].values()) for k in ("ae", "sr")}
    return {
        "fiagen_version": __version__,
        "status": "complete",
        "config": {**asdict(cfg), "splits": list(cfg.splits), "resolved_workers": concurrency},
        "fingerprint": fingerprint,
        "versions": _versions(),
        "counts": {
            "videos_found": len(listing.items),
            "videos_missing": len(listing.missing),
            "videos_failed": len(failures) - len(frame_failures),
            **counts,
            "frames_ae_failed": sum(f["stage"] == "ae" for f in frame_failures),
            "frames_sr_failed": sum(f["stage"] == "sr" for f in frame_failures),
            "shards": len(plans),
            "shards_rebuilt": len(todo),
            "shards_reused": len(plans) - len(todo),
        },
        "per_split": per_split,
        "face_passes": total_passes(s["face_passes"] for s in run["videos"].values()),
        "missing": [{"video_id": m.video_id, "split": m.split, "path": str(m.path)} for m in listing.missing],
        "unassigned": listing.unassigned,
        "failures": failures,
        "reconstructors": {kind: {"spec": getattr(cfg, kind), "ids": sorted(values),
                                  "fit": read_record(Path(cfg.out) / MODELS_DIR, kind)
                                  if getattr(cfg, kind) == "builtin" else None}
                           for kind, values in ids.items()},
        "shards": shards,
        "videos": {vid: {k: s[k] for k in ("split", "node_id", "node_ip")} for vid, s in sorted(run["videos"].items())},
        "nodes": _nodes(run["videos"].values()),
        "timings": {
            "wall_s": wall,
            "process_s": run["process_s"],
            "frames_processed": frames_processed,
            "frames_per_s": frames_processed / run["process_s"] if frames_processed else 0.0,
            **{f"{k}_s": v for k, v in seconds.items()},
            "write_s": sum(w["write_s"] for w in run["written"]),
            "models_s": run["models_s"],
            **{f"reconstruct_{k}_s": v for k, v in recon_s.items()},
        },
    }
