"""The run report of precompute (`out/run.json`): config, versions, counts, failures, reconstructors,
shards, Ray nodes and timings; or, for a run a full disk stopped, which shards are complete."""

from __future__ import annotations

import platform
from collections.abc import Iterable
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any

from fiagen.core.files import DiskFullError
from fiagen.core.version import __version__
from fiagen.manifests.manifest import RUN_NAME, write_run_report
from fiagen.manifests.sources import SourceListing
from fiagen.precompute.config import MODELS_DIR, PrecomputeConfig
from fiagen.precompute.extract import TIMED_STEPS
from fiagen.precompute.faces import total_passes
from fiagen.precompute.plan import ShardPlan
from fiagen.precompute.shards import read_shard_meta, recorded_checksum

VERSIONED = ("numpy", "opencv-contrib-python", "mediapipe", "h5py", "ray", "pandas", "pyarrow", "torch")


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "fiagen": __version__}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def stopped_report(cfg: PrecomputeConfig, out: Path, fingerprint: dict[str, Any], plans: list[ShardPlan],
             todo: list[ShardPlan], written: list[dict[str, Any]], reason: str) -> str:
    """Write run.json for a run stopped by a full disk (which shards are complete, which are not; the
    manifest is left as it was); return what to tell the user."""
    complete, where = write_stopped(cfg, out, fingerprint, plans, todo, written, f"stopped: {reason}")
    return (f"{complete} of {len(plans)} shards are complete ({where}); free some space and run the same "
            f"command again to build the rest")


def write_stopped(cfg: PrecomputeConfig, out: Path, fingerprint: dict[str, Any], plans: list[ShardPlan],
                  todo: list[ShardPlan], written: list[dict[str, Any]], status: str, **extra: Any) -> tuple[int, str]:
    """Write run.json for a stopped run with `status` (which shards are complete, which are not; the
    manifest is left as it was); return how many shards are complete and where they are listed."""
    complete = ({p.relpath for p in plans} - {p.relpath for p in todo}) | {w["relpath"] for w in written}
    report = {"fiagen_version": __version__, "status": status, **extra,
              "config": {**asdict(cfg), "splits": list(cfg.splits)}, "fingerprint": fingerprint,
              "counts": {"shards": len(plans), "shards_complete": len(complete)},
              "shards_complete": sorted(complete),
              "shards_unfinished": [p.relpath for p in plans if p.relpath not in complete]}
    try:
        write_run_report(out, report)
        where = f"listed in {out / RUN_NAME}"
    except DiskFullError:
        where = f"{RUN_NAME} could not be written either"
    return len(complete), where


def _nodes(summaries: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per Ray node (by node id) of this run: its IP and how many videos it processed."""
    nodes: dict[str, dict[str, Any]] = {}
    for s in summaries:
        nodes.setdefault(s["node_id"], {"ip": s["node_ip"], "videos": 0})["videos"] += 1
    return dict(sorted(nodes.items()))


def _shard_totals(cfg: PrecomputeConfig, plans: list[ShardPlan], todo: list[ShardPlan]) -> dict[str, Any]:
    """What the shards of the output hold, read from their attributes: frame counts, per-split counts,
    failures, reconstructor ids and one entry per shard."""
    rebuilt = {p.relpath for p in todo}
    counts = dict.fromkeys(("frames_sampled", "frames_stored", "frames_no_face", "frames_no_landmarks"), 0)
    per_split: dict[str, dict[str, int]] = {s: {"videos": 0, "videos_failed": 0, "frames_stored": 0}
                                            for s in cfg.splits}
    failures, shards, ids, short = [], [], {"ae": set(), "sr": set()}, []
    for plan in plans:
        meta = read_shard_meta(Path(cfg.out) / plan.relpath)
        for kind in ids:
            ids[kind].add(meta[f"{kind}_id"])
        for video_id, stats in meta["video_stats"].items():
            for key in counts:
                counts[key] += stats[key]
            if stats.get("frames_shortfall"):  # its stream ended early: sampled from the frames that decoded
                short.append({"video_id": video_id, "split": plan.split, "frames_decoded": stats["frames_decoded"],
                              "frames_shortfall": stats["frames_shortfall"]})
        per_split[plan.split]["videos"] += len(plan.videos)
        per_split[plan.split]["videos_failed"] += sum("frame_index" not in f for f in meta["failures"])
        per_split[plan.split]["frames_stored"] += meta["n_rows"]
        failures += [dict(f, split=plan.split) for f in meta["failures"]]
        shards.append({"path": plan.relpath, "split": plan.split, "rows": meta["n_rows"],
                       "sha256": recorded_checksum(Path(cfg.out) / plan.relpath),
                       "videos": meta["videos"], "rebuilt": plan.relpath in rebuilt})
    return {"counts": counts, "per_split": per_split, "failures": failures, "shards": shards, "ids": ids,
            "short": short}


def _timings(run: dict[str, Any], wall: float) -> dict[str, Any]:
    """Wall and processing time, frames per second, and the seconds of each step summed over videos."""
    seconds = dict.fromkeys(TIMED_STEPS, 0.0)
    for summary in run["videos"].values():
        for key, value in summary["seconds"].items():
            seconds[key] += value
    frames_processed = sum(s["stats"]["frames_sampled"] for s in run["videos"].values())
    recon_s = {k: sum(r["seconds"].get(k, 0.0) for r in run["reconstruct"].values()) for k in ("ae", "sr")}
    return {
        "wall_s": wall,
        "process_s": run["process_s"],
        "frames_processed": frames_processed,
        "frames_per_s": frames_processed / run["process_s"] if frames_processed else 0.0,
        **{f"{k}_s": v for k, v in seconds.items()},
        "write_s": sum(w["write_s"] for w in run["written"]),
        "models_s": run["models_s"],
        **{f"reconstruct_{k}_s": v for k, v in recon_s.items()},
    }


def run_report(cfg: PrecomputeConfig, listing: SourceListing, fingerprint: dict[str, Any], plans: list[ShardPlan],
               todo: list[ShardPlan], run: dict[str, Any], wall: float, concurrency: int) -> dict[str, Any]:
    """The run report: config, versions, counts, the face finder's passes (runs and faces found per pass,
    over the videos processed in this run), every missing video and failure (videos, and frames a
    reconstructor failed on), the reconstructor ids and builtin fit records, shard checksums, the Ray
    node (id, IP) that processed each video of this run and videos per node, timings."""
    from fiagen.precompute.reconstruct.builtin import read_record

    totals = _shard_totals(cfg, plans, todo)
    failures = totals["failures"]
    frame_failures = [f for f in failures if "frame_index" in f]
    return {
        "fiagen_version": __version__,
        "status": "complete",
        "config": {**asdict(cfg), "splits": list(cfg.splits), "resolved_concurrency": concurrency},
        "fingerprint": fingerprint,
        "versions": _versions(),
        "counts": {
            "videos_found": len(listing.items),
            "videos_missing": len(listing.missing),
            "videos_failed": len(failures) - len(frame_failures),
            "videos_short": len(totals["short"]),  # streams that ended before their container's frame count
            **totals["counts"],
            "frames_ae_failed": sum(f["stage"] == "ae" for f in frame_failures),
            "frames_sr_failed": sum(f["stage"] == "sr" for f in frame_failures),
            "shards": len(plans),
            "shards_rebuilt": len(todo),
            "shards_reused": len(plans) - len(todo),
        },
        "per_split": totals["per_split"],
        "face_passes": total_passes(s["face_passes"] for s in run["videos"].values()),
        "missing": [{"video_id": m.video_id, "split": m.split, "path": str(m.path)} for m in listing.missing],
        "unassigned": listing.unassigned,
        "failures": failures,
        "short": totals["short"],
        "reconstructors": {kind: {"spec": getattr(cfg, kind), "ids": sorted(values),
                                  "fit": read_record(Path(cfg.out) / MODELS_DIR, kind)
                                  if getattr(cfg, kind) == "builtin" else None}
                           for kind, values in totals["ids"].items()},
        "shards": totals["shards"],
        "videos": {vid: {k: s[k] for k in ("split", "node_id", "node_ip")} for vid, s in sorted(run["videos"].items())},
        "nodes": _nodes(run["videos"].values()),
        "timings": _timings(run, wall),
    }
