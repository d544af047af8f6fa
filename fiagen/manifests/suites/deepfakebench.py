"""A DeepfakeBench dataset JSON (its test split): frame lists, mapped onto this disk."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath, PureWindowsPath

from fiagen.manifests.roots import SourceError
from fiagen.manifests.suites.listing import REAL, EvalItem, SuiteListing, confined, unlisted_media
from fiagen.manifests.suites.locate import search_roots


def _bench_records(node: object, split: str) -> Iterable[tuple[str, str, dict]]:
    """(label name, video id, record) of a DeepfakeBench JSON: dataset -> label -> split -> [compression] -> id."""
    if not isinstance(node, dict):
        return
    for dataset in node.values():
        for label_name, splits in (dataset or {}).items():
            level = (splits or {}).get(split) or {}
            first = next(iter(level.values()), None)
            if isinstance(first, dict) and "frames" not in first:  # a compression level (c0/c23/c40)
                level = level.get("c23") or first
            for vid, rec in level.items():
                if isinstance(rec, dict) and "frames" in rec:
                    yield label_name, vid, rec


def _path_parts(path: str) -> tuple[str, ...]:
    """The parts of a path written on any OS (Windows drives and backslashes too), without its anchor, with
    `.` and `..` resolved in the text: a relative path that climbs above its start keeps its leading `..`
    (it leaves any base); an absolute one stops at its anchor."""
    pure = PureWindowsPath(path) if "\\" in path or re.match(r"^[A-Za-z]:", path) else PurePosixPath(path)
    out: list[str] = []
    for part in pure.parts[1:] if pure.anchor else pure.parts:
        if part == "..":
            if out and out[-1] != "..":
                out.pop()
            elif not pure.anchor:
                out.append(part)
        elif part != ".":
            out.append(part)
    return tuple(out)


def _under(base: Path, parts: Sequence[str], allow_outside: bool = False) -> Path | None:
    """The absolute base/parts (`confined` to `base`), or None when there are no parts or they leave it."""
    path = confined(base, os.path.join(*parts), allow_outside) if parts else None
    return Path(os.path.abspath(path)) if path is not None else None


class _FrameMap:
    """Where the JSON's frame paths (often absolute paths of another machine, and relative ones mixed in)
    lie on this disk, decided per path: the first (base, number of leading parts to drop) that maps the
    path onto an existing file under the base, searched once per folder of the JSON (its frames share
    it); a path whose folder maps nowhere keeps the mapping of a path with the same dropped prefix, else
    the first base with nothing dropped. `..` is resolved in the text first, so only names are dropped: a
    path that climbs out (`../x.png`, `a/../../x.png`) is refused. With `allow_outside`, an absolute path
    that exists as written is taken as it is and `..` may leave the first base."""

    def __init__(self, bases: list[Path], allow_outside: bool = False) -> None:
        self.bases, self.allow_outside = bases, allow_outside
        self.folders: dict[tuple[str, ...], tuple[Path, int] | None] = {}
        self.rules: list[tuple[tuple[str, ...], Path, int]] = []  # (dropped prefix, base, drop) seen to work

    def _search(self, parts: tuple[str, ...]) -> tuple[Path, int] | None:
        known = [(base, drop) for prefix, base, drop in self.rules if parts[:drop] == prefix]
        every = [(base, drop) for base in self.bases for drop in range(len(parts))]
        for exists in (Path.exists, lambda p: p.parent.is_dir()):  # the file, else at least its folder
            for base, drop in known + every:
                path = _under(base, parts[drop:], self.allow_outside)
                if path is not None and (exists is Path.exists or len(parts) - drop > 1) and exists(path):
                    if (parts[:drop], base, drop) not in self.rules:
                        self.rules.append((parts[:drop], base, drop))
                    return base, drop
        return None

    def __call__(self, frame: str) -> Path | None:
        """The file a frame path names on this disk, or None when it leads outside its base (refused)."""
        if self.allow_outside and os.path.isabs(frame) and os.path.exists(frame):
            return Path(frame)
        parts = _path_parts(frame)
        if parts[:1] == ("..",):
            return _under(self.bases[0], parts, True) if self.allow_outside else None
        if parts[:-1] not in self.folders:
            self.folders[parts[:-1]] = self._search(parts)
        found = self.folders[parts[:-1]]
        base, drop = found or next(((base, drop) for prefix, base, drop in self.rules if parts[:drop] == prefix),
                                   (self.bases[0], 0))
        return _under(base, parts[drop:], self.allow_outside)


def deepfakebench(spec: str, root: str | os.PathLike | None, allow_outside: bool = False) -> SuiteListing:
    """A DeepfakeBench dataset JSON (its test split): label names containing "real" are real, others fake.
    Frame paths are mapped under `root` (without one: the JSON's folder, else $FIAGEN_DATA); a frame path
    that leads outside it (`..`, a link) is refused unless `allow_outside`."""
    file = Path(spec).expanduser()
    if not file.is_file():
        raise SourceError(f"deepfakebench: {file} is not a file (expected deepfakebench:FILE.json, a DeepfakeBench "
                          f"dataset JSON from its preprocessing/dataset_json)")
    try:
        index = json.loads(file.read_text())
    except json.JSONDecodeError as err:
        raise SourceError(f"deepfakebench: {file} is not JSON ({err})") from None
    records = list(_bench_records(index, "test"))
    if not records:
        raise SourceError(f"deepfakebench: {file} has no test records (dataset -> label -> test -> [c23] -> id)")
    # under --root; only without one, the JSON's folder or $FIAGEN_DATA (never a place beside the root)
    bases = [Path(root).expanduser()] if root is not None else [file.parent, *search_roots(None)]
    where = _FrameMap(bases, allow_outside)
    items, missing, refused = [], [], []
    for label_name, vid, rec in records:
        is_real = "real" in label_name.lower()
        # every frame path is mapped under a base; one that would leave it (`..`) is refused, never opened
        mapped = [(str(f), where(str(f))) for f in rec["frames"]]
        refused += [f for f, path in mapped if path is None]
        frames = [path for _, path in mapped if path is not None]
        present = tuple(str(f) for f in frames if f.exists())
        item = EvalItem(f"{label_name}/{vid}", frames[0].parent if frames else file.parent, 0 if is_real else 1,
                        REAL if is_real else label_name, file.stem, frames=present)
        if frames or not mapped:  # an item whose every frame was refused is only counted as refused
            (items if present else missing).append(item)
    notes = [f"deepfakebench: {len(refused)} frame paths lead outside {where.bases[0]} and were refused (listed "
             f"in report.json); pass --allow-outside-root to open them"] if refused else []
    video_folders = sorted({Path(f).parent.parent for it in items for f in it.frames[:1]})
    return SuiteListing(f"deepfakebench:{file.stem}", file.parent, items, missing, notes, level="frame",
                        refused=refused, unlisted=unlisted_media(video_folders, items), face_crops=True)
