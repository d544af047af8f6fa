"""The precompute stage: real videos -> faces, landmarks, crops -> HDF5 shards + manifest, on Ray."""

from __future__ import annotations

import json
import platform
import shutil
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import ray

from fiagen import __version__
from fiagen.errors import FiagenError
from fiagen.manifests.manifest import MANIFEST_NAME, RUN_NAME, write_manifest, write_run_report
from fiagen.manifests.sources import SPLITS, SourceListing, resolve_source
from fiagen.pipeline.cluster import ray_session
from fiagen.pipeline.extract import TIMED_STEPS, VideoResult, extract_video
from fiagen.pipeline.plan import ShardPlan, is_done, plan_shards
from fiagen.pipeline.shards import SCHEMA_VERSION, ShardContent, read_shard_meta, recorded_checksum, write_shard
from fiagen.progress import stage_progress

CONFIG_NAME = "config.json"
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
    ae: str = "none"
    sr: str = "none"
    limit: int | None = None
    compression: str = "none"
    overwrite: bool = False
    quiet: bool = False

    def fingerprint(self, listing: SourceListing) -> dict[str, Any]:
        """The settings that decide what the output holds (not how fast it is made)."""
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
    return result, {"video_id": video_id, "failure": result.failure, "stats": result.stats(),
                    "seconds": result.seconds}


@ray.remote(num_cpus=1)
def _write_remote(out: str, plan: ShardPlan, cfg: PrecomputeConfig, *results: VideoResult) -> dict[str, Any]:
    content = ShardContent(plan.split, plan.shard_id, [v.video_id for v in plan.videos], ae_id=cfg.ae,
                           sr_id=cfg.sr, compression=cfg.compression)
    for res in results:
        content.records.extend(res.records)
        content.video_stats[res.video_id] = res.stats()
        if res.failure is not None:
            content.failures.append({"video_id": res.video_id, "path": res.path, "reason": res.failure})
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


def _prepare_out(out: Path, fingerprint: dict[str, Any], overwrite: bool) -> None:
    """Refuse an output folder made with other settings unless overwriting, which clears fiagen's files."""
    config_path = out / CONFIG_NAME
    if config_path.exists():
        previous = json.loads(config_path.read_text())
        if previous != fingerprint and not overwrite:
            changed = sorted(k for k in fingerprint.keys() | previous.keys() if previous.get(k) != fingerprint.get(k))
            raise ConfigMismatch(f"{out} was made with other settings ({', '.join(changed)} differ); "
                                 f"use another --out or pass --overwrite to rebuild it")
        if previous != fingerprint:
            for name in ("shards", "models"):
                shutil.rmtree(out / name, ignore_errors=True)
            for name in (MANIFEST_NAME, RUN_NAME, CONFIG_NAME):
                (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    config_path.write_text(json.dumps(fingerprint, indent=2) + "\n")


def _run_shards(cfg: PrecomputeConfig, out: Path, todo: list[ShardPlan], concurrency: int) -> dict[str, Any]:
    """Extract every video of the pending shards as Ray tasks (at most `concurrency` at once) and write
    each shard as soon as its videos are done. Returns the per-video summaries and per-shard results."""
    summaries: dict[str, dict[str, Any]] = {}
    written: list[dict[str, Any]] = []
    queue = [(plan, item) for plan in todo for item in plan.videos]
    pending_results: dict[str, list[Any]] = {plan.relpath: [] for plan in todo}
    by_path = {plan.relpath: plan for plan in todo}
    in_flight: dict[ray.ObjectRef, str] = {}
    writers: list[ray.ObjectRef] = []
    frames_done, start = 0, time.perf_counter()
    with stage_progress(cfg.quiet) as bar:
        task = bar.add_task("precompute", total=len(queue), rate="")
        while queue or in_flight:
            while queue and len(in_flight) < concurrency:
                plan, item = queue.pop(0)
                result_ref, summary_ref = _extract_remote.remote(item.video_id, str(item.path), item.split, cfg.frames)
                pending_results[plan.relpath].append(result_ref)
                in_flight[summary_ref] = plan.relpath
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            for ref in ready:
                relpath = in_flight.pop(ref)
                summary = ray.get(ref)
                summaries[summary["video_id"]] = summary
                frames_done += summary["stats"]["frames_sampled"]
                plan = by_path[relpath]
                if all(v.video_id in summaries for v in plan.videos):
                    writers.append(_write_remote.remote(str(out), plan, cfg, *pending_results.pop(relpath)))
            rate = frames_done / max(1e-9, time.perf_counter() - start)
            bar.update(task, completed=len(summaries), rate=f"{rate:.1f} frames/s")
        written = ray.get(writers)
    return {"videos": summaries, "written": written, "process_s": time.perf_counter() - start}


def precompute(cfg: PrecomputeConfig) -> PrecomputeReport:
    """Run precompute; returns the report. Raises SourceError / ConfigMismatch with one-line messages."""
    listing = resolve_source(cfg.src, cfg.root).select(cfg.splits, cfg.limit)
    out = Path(cfg.out)
    fingerprint = cfg.fingerprint(listing)
    _prepare_out(out, fingerprint, cfg.overwrite)
    plans = plan_shards(listing, cfg.splits, cfg.frames, cfg.shard_size)
    todo = [p for p in plans if not is_done(out, p)]
    wall_start = time.perf_counter()
    run: dict[str, Any] = {"videos": {}, "written": [], "process_s": 0.0}
    concurrency = 0
    if todo:
        with ray_session(cfg.address, cfg.workers) as concurrency:
            run = _run_shards(cfg, out, todo, concurrency)
    wall = time.perf_counter() - wall_start
    shard_entries = [(p.relpath, recorded_checksum(out / p.relpath) or "") for p in plans]
    write_manifest(out, shard_entries)
    report = _report(cfg, listing, fingerprint, plans, todo, run, wall, concurrency)
    write_run_report(out, report)
    return PrecomputeReport(out, report, len(todo), len(plans) - len(todo))


def _report(cfg: PrecomputeConfig, listing: SourceListing, fingerprint: dict[str, Any], plans: list[ShardPlan],
            todo: list[ShardPlan], run: dict[str, Any], wall: float, concurrency: int) -> dict[str, Any]:
    """The run report: config, versions, counts, every missing video and failure, shard checksums, timings."""
    rebuilt = {p.relpath for p in todo}
    counts = dict.fromkeys(("frames_sampled", "frames_stored", "frames_no_face", "frames_no_landmarks"), 0)
    per_split: dict[str, dict[str, int]] = {s: {"videos": 0, "videos_failed": 0, "frames_stored": 0}
                                            for s in cfg.splits}
    failures, shards = [], []
    for plan in plans:
        meta = read_shard_meta(Path(cfg.out) / plan.relpath)
        for stats in meta["video_stats"].values():
            for key in counts:
                counts[key] += stats[key]
        per_split[plan.split]["videos"] += len(plan.videos)
        per_split[plan.split]["videos_failed"] += len(meta["failures"])
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
    return {
        "fiagen_version": __version__,
        "config": {**asdict(cfg), "splits": list(cfg.splits), "resolved_workers": concurrency},
        "fingerprint": fingerprint,
        "versions": _versions(),
        "counts": {
            "videos_found": len(listing.items),
            "videos_missing": len(listing.missing),
            "videos_failed": len(failures),
            **counts,
            "shards": len(plans),
            "shards_rebuilt": len(todo),
            "shards_reused": len(plans) - len(todo),
        },
        "per_split": per_split,
        "missing": [{"video_id": m.video_id, "split": m.split, "path": str(m.path)} for m in listing.missing],
        "unassigned": listing.unassigned,
        "failures": failures,
        "shards": shards,
        "timings": {
            "wall_s": wall,
            "process_s": run["process_s"],
            "frames_processed": frames_processed,
            "frames_per_s": frames_processed / run["process_s"] if frames_processed else 0.0,
            **{f"{k}_s": v for k, v in seconds.items()},
            "write_s": sum(w["write_s"] for w in run["written"]),
        },
    }
