"""What a suite lists (EvalItem, SuiteListing) and the helpers every dataset's parser shares: found vs
missing items, test units under a folder, media files no item covers."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from fiagen.core.media import is_image, is_media

REAL = "real"


@dataclass(frozen=True)
class EvalItem:
    """One test video (a video file, an image, or a folder of frame images) with its ground truth.

    `label` is 1 for fake, 0 for real; `method` is the manipulation ("real" for reals); `pool` names the
    reals a fake is scored against; `family` groups methods (DF40: FS/FR/EFS/FE, DiFF: T2I/I2I/FS/FE);
    `frames` lists the frame images when an index names them (DeepfakeBench JSON).
    """

    video_id: str
    path: Path
    label: int
    method: str
    pool: str = ""
    family: str = ""
    frames: tuple[str, ...] = ()


@dataclass
class SuiteListing:
    """What a suite holds: items on disk, items its index names but the disk lacks, notes, and the paths
    its index names that were refused (outside the dataset root; never opened)."""

    name: str
    root: Path
    items: list[EvalItem]
    missing: list[EvalItem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    level: str = "video"
    refused: list[str] = field(default_factory=list)
    # media files under the suite's folders that it does not list; its images are face crops (DF40,
    # DiFF, DeepfakeBench frames: an image without a detected face is scored whole by default)
    unlisted: list[Path] = field(default_factory=list)
    face_crops: bool = False

    def counts(self) -> dict[str, int]:
        """Items per method (reals under "real"), found on disk."""
        out: dict[str, int] = {}
        for it in self.items:
            out[it.method] = out.get(it.method, 0) + 1
        return out


def confined(root: Path, text: str, allow_outside: bool = False) -> Path | None:
    """The file a list file names (`text`: relative to `root`, or absolute), with `..` resolved in the
    text; None when it lies outside `root` (refused: never opened) unless `allow_outside`
    (--allow-outside-root). Links are resolved before the check: a listed path inside `root` whose link
    leads out of it is refused too. A relative `text` keeps the form of `root` (relative stays relative)."""
    path = Path(os.path.normpath(Path(root) / Path(text).expanduser()))
    return path if allow_outside or Path(os.path.realpath(path)).is_relative_to(os.path.realpath(root)) else None


def refused_note(suite: str, refused: list[str], root: Path) -> list[str]:
    """The listing's note about the list paths that lead outside `root` (none: no note)."""
    return [f"{suite}: {len(refused)} listed paths lead outside {root} and were refused (listed in report.json); "
            f"pass --allow-outside-root to open them"] if refused else []


def unlisted_media(folders: Iterable[Path], *listed: Iterable[EvalItem], recursive: bool = True) -> list[Path]:
    """Media files under `folders` (or, not `recursive`, directly in them) that no listed item covers
    (an item's file, a frame of its frame list, or a file in its frame folder), sorted."""
    files, dirs = set(), set()
    for it in (it for items in listed for it in items):
        if it.frames:
            files.update(os.path.abspath(f) for f in it.frames)
        else:
            (files if is_media(it.path) else dirs).add(os.path.abspath(it.path))
    found = set()
    for folder in folders:
        for dirpath, dirnames, filenames in os.walk(folder):
            if os.path.abspath(dirpath) in dirs:
                dirnames.clear()
                continue
            found.update(Path(dirpath, f) for f in filenames
                         if is_media(Path(f)) and os.path.abspath(os.path.join(dirpath, f)) not in files)
            if not recursive:
                dirnames.clear()
    return sorted(found)


def split_found(found: Iterable[EvalItem]) -> tuple[list[EvalItem], list[EvalItem]]:
    """(items whose file exists, items whose file is missing), in order."""
    items, missing = [], []
    for it in found:
        (items if it.path.exists() else missing).append(it)
    return items, missing


def index_listing(name: str, base: Path, found: Iterable[EvalItem], refused: list[str],
                  folders: Iterable[Path]) -> SuiteListing:
    """The listing of a dataset's index file: `found` split into items on disk and missing ones, the paths
    it refused (with their note), and the media under `folders` that no item covers."""
    items, missing = split_found(found)
    return SuiteListing(name, base, items, missing, refused_note(name, refused, base), refused=refused,
                        unlisted=unlisted_media(folders, items, missing))


def media_units(folder: Path, frame_folders: bool) -> list[tuple[str, Path]]:
    """(id relative to `folder`, path) of the test units under a folder.

    frame_folders=True: every video file, and every subfolder that directly holds images (a video's
    extracted frames); images lying directly in `folder` count one each. False: every video and every
    image is a unit of its own.
    """
    units = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        here = Path(dirpath)
        files = sorted(here / f for f in filenames if is_media(here / f))
        if frame_folders and here != folder and any(is_image(f) for f in files):
            units.append((here.relative_to(folder).as_posix(), here))
            files = [f for f in files if not is_image(f)]
        units += [(f.relative_to(folder).with_suffix("").as_posix(), f) for f in files]
    return sorted(units)


def child_dir(folder: Path, name: str) -> Path | None:
    """The subfolder called `name`, ignoring case."""
    if (folder / name).is_dir():
        return folder / name
    if folder.is_dir():
        for p in folder.iterdir():
            if p.is_dir() and p.name.lower() == name.lower():
                return p
    return None
