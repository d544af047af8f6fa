"""Your own test set: PATH/real/ and PATH/fake/, or a CSV path,label[,method]."""

from __future__ import annotations

import csv
from pathlib import Path

from fiagen.core.media import VIDEO_SUFFIXES, is_media
from fiagen.manifests.roots import SourceError
from fiagen.manifests.suites.listing import (
    REAL,
    EvalItem,
    SuiteListing,
    child_dir,
    confined,
    media_units,
    refused_note,
    unlisted_media,
)


def _label(value: str) -> int | None:
    v = value.strip().lower()
    return {"0": 0, "1": 1, "real": 0, "fake": 1}.get(v)


def folder(spec: str, allow_outside: bool = False) -> SuiteListing:
    """Your own test set: PATH/real/ and PATH/fake/ (fake/<method>/ names methods), or a CSV
    `path,label[,method]` (label 0/1 or real/fake; relative paths from the CSV's folder; an optional
    header row names its second column "label"). A CSV path outside the CSV's folder (`..`, an absolute
    path elsewhere, a link that leads out) is refused, never opened, unless `allow_outside` (--allow-outside-root)."""
    path = Path(spec).expanduser()
    name = f"folder:{path}"
    if path.is_file():
        if is_media(path):
            raise SourceError(f"folder: {path} is a media file; folder:PATH takes a folder holding real/ and fake/, "
                              f"or a CSV path,label[,method] (to look at one file: fiagen explain --input)")
        items, missing, refused = [], [], []
        try:
            with open(path, newline="", encoding="utf-8") as fh:
                rows = [r for r in csv.reader(fh) if r and any(c.strip() for c in r)]
        except (UnicodeDecodeError, csv.Error) as err:
            raise SourceError(f"folder: {path} is not a CSV text file path,label[,method] ({err})") from None
        if rows and len(rows[0]) > 1 and rows[0][1].strip().lower() == "label":
            rows = rows[1:]
        for n, row in enumerate(rows, 1):
            label = _label(row[1]) if len(row) > 1 else None
            if label is None:
                raise SourceError(f"folder: {path} row {n} is not path,label[,method] with label 0/1/real/fake: {row}")
            file = confined(path.parent, row[0].strip(), allow_outside)
            if file is None:
                refused.append(row[0].strip())
                continue
            method = REAL if label == 0 else (row[2].strip() if len(row) > 2 and row[2].strip() else "fake")
            item = EvalItem(Path(row[0].strip()).with_suffix("").as_posix(), file, label, method, "folder")
            (items if file.exists() else missing).append(item)
        folders = sorted({it.path.parent for it in items + missing})  # the CSV's own folders, not below
        return SuiteListing(name, path.parent, items, missing, refused_note("folder", refused, path.parent),
                            refused=refused, unlisted=unlisted_media(folders, items, missing, recursive=False))
    real_dir, fake_dir = child_dir(path, REAL), child_dir(path, "fake")
    if real_dir is None or fake_dir is None:
        raise SourceError(f"folder: {path} needs real/ and fake/ subfolders (fake/<method>/ optional), "
                          f"or pass a CSV path,label[,method] as folder:FILE.csv")
    items = [EvalItem(f"real/{uid}", p, 0, REAL, "folder") for uid, p in media_units(real_dir, False)]
    for uid, p in media_units(fake_dir, False):
        parts = uid.split("/")
        items.append(EvalItem(f"fake/{uid}", p, 1, parts[0] if len(parts) > 1 else "fake", "folder"))
    if not items:
        raise SourceError(f"folder: no videos ({', '.join(sorted(VIDEO_SUFFIXES))}) or images under {path}")
    return SuiteListing(name, path, items, unlisted=unlisted_media([path], items))
