"""DFDC (the public test set's labels.csv) and DFDC preview (dataset.json, its test set)."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from fiagen.manifests.roots import SourceError
from fiagen.manifests.suites.listing import REAL, EvalItem, SuiteListing, split_found, unlisted_media
from fiagen.manifests.suites.locate import ORIGIN, locate


def dfdc(root: str | os.PathLike | None) -> SuiteListing:
    """DFDC public test set: labels.csv (filename,label with 1 = fake); videos in videos/ or beside it."""
    base = locate(root, ("DFDC/test", "DFDC", "dfdc", "dfdc_test"), "labels.csv", "dfdc", ORIGIN["dfdc"])
    found = []
    with open(base / "labels.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not {"filename", "label"} <= set(reader.fieldnames):
            raise SourceError(f"dfdc: {base / 'labels.csv'} needs the columns filename,label")
        for row in reader:
            name = row["filename"].strip()
            label = int(float(row["label"]))
            path = base / "videos" / name
            if not path.exists() and (base / name).exists():
                path = base / name
            found.append(EvalItem(Path(name).stem, path, label, "DFDC" if label else REAL, "dfdc"))
    items, missing = split_found(found)
    folders = [base / "videos"] if (base / "videos").is_dir() else [base]
    return SuiteListing("dfdc", base, items, missing, unlisted=unlisted_media(folders, items, missing))


def dfdcp(root: str | os.PathLike | None) -> SuiteListing:
    """DFDC preview: dataset.json {relpath: {label: real|fake, set: train|test}}; the test set only.

    Files are looked up at the key's path, else at <first folder>/videos/<rest> (a common re-layout).
    """
    base = locate(root, ("DFDCP", "dfdcp", "dfdc_preview", "DFDC-preview"), "dataset.json", "dfdcp",
                   ORIGIN["dfdcp"])
    index = json.loads((base / "dataset.json").read_text())
    found = []
    for key, rec in sorted(index.items()):
        if rec.get("set") != "test":
            continue
        label = 1 if str(rec.get("label", "")).lower() == "fake" else 0
        parts = key.split("/")
        path = base / key
        if not path.exists() and len(parts) > 1 and (base / parts[0] / "videos" / "/".join(parts[1:])).exists():
            path = base / parts[0] / "videos" / "/".join(parts[1:])
        found.append(EvalItem(Path(key).with_suffix("").as_posix(), path, label, parts[0] if label else REAL,
                              "dfdcp"))
    items, missing = split_found(found)
    folders = sorted({base / key.split("/")[0] for key in index})
    return SuiteListing("dfdcp", base, items, missing, unlisted=unlisted_media(folders, items, missing))
