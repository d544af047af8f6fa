"""Training sources: which real videos exist and which split each belongs to."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from fiagen.core.media import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from fiagen.manifests.roots import SourceError, dataset_root

SPLITS = ("train", "val", "test")
FFPP_VIDEO_DIR = "original_sequences/youtube/c23/videos"
FFPP_NAMES = ("FaceForensics++", "FaceForensics", "ffpp", "ff++")


@dataclass(frozen=True)
class VideoItem:
    """One real video (or image) of a source."""

    video_id: str
    path: Path
    split: str


@dataclass
class SourceListing:
    """What a source holds: the items found, and what it expected but could not find or place."""

    name: str
    root: Path
    items: list[VideoItem]
    missing: list[VideoItem] = field(default_factory=list)
    unassigned: list[str] = field(default_factory=list)

    def select(self, splits: tuple[str, ...], limit: int | None) -> SourceListing:
        """Only the given splits, and the first `limit` items of each split."""
        items: list[VideoItem] = []
        for split in splits:
            in_split = [it for it in self.items if it.split == split]
            items += in_split[:limit] if limit is not None else in_split
        missing = [it for it in self.missing if it.split in splits]
        return SourceListing(self.name, self.root, items, missing, self.unassigned)


def ffpp_split_ids() -> dict[str, list[str]]:
    """The official FF++ split: video ids per split (both ids of every pair), sorted."""
    out = {}
    for split in SPLITS:
        text = resources.files("fiagen.manifests").joinpath(f"splits/ffpp_{split}.json").read_text()
        out[split] = sorted({vid for pair in json.loads(text) for vid in pair})
    return out


def ffpp_c23(root: str | Path | None) -> SourceListing:
    """FF++ c23 originals at <root>/original_sequences/youtube/c23/videos/<id>.mp4, official split."""
    base = dataset_root(root, FFPP_NAMES, FFPP_VIDEO_DIR, "ff++_c23")
    video_dir = base / FFPP_VIDEO_DIR
    found, missing = [], []
    for split, ids in ffpp_split_ids().items():
        for vid in ids:
            item = VideoItem(vid, video_dir / f"{vid}.mp4", split)
            (found if item.path.is_file() else missing).append(item)
    return SourceListing("ff++_c23", base, found, missing)


def _media_files(folder: Path) -> list[Path]:
    suffixes = VIDEO_SUFFIXES | IMAGE_SUFFIXES
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)


def folder(path: str | Path) -> SourceListing:
    """Every video and image under a folder; split from a train/ val/ test/ first level, else all train."""
    base = Path(path).expanduser().resolve()
    if not base.is_dir():
        raise SourceError(f"folder source: {base} is not a directory (expected folder:PATH with videos or images)")
    split_dirs = [s for s in SPLITS if (base / s).is_dir()]
    items, unassigned = [], []
    for file in _media_files(base):
        rel = file.relative_to(base)
        video_id = rel.with_suffix("").as_posix()
        if not split_dirs:
            items.append(VideoItem(video_id, file, "train"))
        elif rel.parts[0] in split_dirs:
            items.append(VideoItem(video_id, file, rel.parts[0]))
        else:
            unassigned.append(rel.as_posix())
    if not items:
        raise SourceError(f"folder source: no videos ({', '.join(sorted(VIDEO_SUFFIXES))}) or images under {base}")
    return SourceListing(f"folder:{base}", base, items, [], unassigned)


def resolve_source(src: str, root: str | Path | None = None) -> SourceListing:
    """The listing of a --src value: `ff++_c23` (with --root or $FIAGEN_DATA) or `folder:PATH`."""
    if src == "ff++_c23":
        return ffpp_c23(root)
    if src.startswith("folder:"):
        return folder(src[len("folder:"):])
    raise SourceError(f"unknown --src '{src}': expected ff++_c23 or folder:PATH")
