"""Which videos go into which shard, and which shards a rerun must (re)build."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fiagen.manifests.sources import SourceListing, VideoItem
from fiagen.precompute.shards import empty_record_path, read_shard_meta, shard_is_complete, shard_name


@dataclass(frozen=True)
class ShardPlan:
    """One shard: its split, id, path relative to the output folder, and the videos it holds."""

    split: str
    shard_id: str
    videos: tuple[VideoItem, ...]

    @property
    def relpath(self) -> str:
        return f"shards/{self.split}/{self.shard_id}.h5"


def videos_per_shard(frames: int, shard_size: int) -> int:
    """Whole videos per shard so that a shard holds at most `shard_size` frames (at least one video)."""
    return max(1, shard_size // max(1, frames))


def plan_shards(listing: SourceListing, splits: tuple[str, ...], frames: int, shard_size: int) -> list[ShardPlan]:
    """Deterministic plan: each split's videos, in listing order, cut into runs of whole videos.

    A shard depends only on its own videos, so one shard can be rebuilt without touching the others.
    """
    per = videos_per_shard(frames, shard_size)
    plans = []
    for split in splits:
        items = [it for it in listing.items if it.split == split]
        for i in range(0, len(items), per):
            plans.append(ShardPlan(split, shard_name(i // per), tuple(items[i:i + per])))
    return plans


def is_done(out: Path, plan: ShardPlan) -> bool:
    """A complete shard (checksum matches its sidecar), or the record of one without rows, built from
    exactly the planned videos."""
    path = out / plan.relpath
    if not shard_is_complete(path) and (path.exists() or not empty_record_path(path).exists()):
        return False
    return read_shard_meta(path)["videos"] == [v.video_id for v in plan.videos]
