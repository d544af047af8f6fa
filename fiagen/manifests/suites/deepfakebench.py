"""A DeepfakeBench dataset JSON (its test split): frame lists, mapped onto this disk."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath, PureWindowsPath

from fiagen.manifests.roots import SourceError
from fiagen.manifests.suites.listing import REAL, EvalItem, SuiteListing, unlisted_media
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
    """The parts of a path written on any OS (Windows drives and backslashes too), without its anchor."""
    pure = PureWindowsPath(path) if "\\" in path or re.match(r"^[A-Za-z]:", path) else PurePosixPath(path)
    return pure.parts[1:] if pure.anchor else pure.parts


def _under(base: Path, parts: Sequence[str]) -> Path | None:
    """The absolute base/parts with `..` resolved in the text, or None when that leaves `base`."""
    path = Path(os.path.abspath(base.joinpath(*parts)))
    return path if parts and path.is_relative_to(os.path.abspath(base)) else None


def _frame_root(sample: str, bases: list[Path]) -> tuple[Path, int]:
    """Where the JSON's frame paths (often absolute paths of another machine) lie on this disk: the first
    (base, number of leading parts to drop) that maps `sample` onto an existing file under the base;
    none: the first base, nothing dropped."""
    parts = _path_parts(sample)
    return next(((base, drop) for base in bases for drop in range(len(parts))
                 if (path := _under(base, parts[drop:])) is not None and path.exists()), (bases[0], 0))


def deepfakebench(spec: str, root: str | os.PathLike | None) -> SuiteListing:
    """A DeepfakeBench dataset JSON (its test split): label names containing "real" are real, others fake."""
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
    bases = ([Path(root).expanduser()] if root is not None else []) + [file.parent] + search_roots(None)
    base, drop = _frame_root(next((str(f) for _, _, rec in records for f in rec["frames"]), ""), bases)
    items, missing, refused = [], [], []
    for label_name, vid, rec in records:
        is_real = "real" in label_name.lower()
        # every frame path is mapped under `base`; one that would leave it (`..`) is refused, never opened
        mapped = [(str(f), _under(base, _path_parts(str(f))[drop:])) for f in rec["frames"]]
        refused += [f for f, path in mapped if path is None]
        frames = [path for _, path in mapped if path is not None]
        present = tuple(str(f) for f in frames if f.exists())
        item = EvalItem(f"{label_name}/{vid}", frames[0].parent if frames else file.parent, 0 if is_real else 1,
                        REAL if is_real else label_name, file.stem, frames=present)
        if frames or not mapped:  # an item whose every frame was refused is only counted as refused
            (items if present else missing).append(item)
    notes = [f"deepfakebench: {len(refused)} frame paths lead outside {base} and were refused (listed in "
             f"report.json)"] if refused else []
    video_folders = sorted({Path(f).parent.parent for it in items for f in it.frames[:1]})
    return SuiteListing(f"deepfakebench:{file.stem}", file.parent, items, missing, notes, level="frame",
                        refused=refused, unlisted=unlisted_media(video_folders, items), face_crops=True)
