"""DFDC (the public test set's labels.csv) and DFDC preview (dataset.json, its test set)."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from fiagen.manifests.roots import SourceError
from fiagen.manifests.suites.listing import REAL, EvalItem, SuiteListing, confined, index_listing
from fiagen.manifests.suites.locate import ORIGIN, locate


def dfdc(root: str | os.PathLike | None, allow_outside: bool = False) -> SuiteListing:
    """DFDC public test set: labels.csv (filename,label with 1 = fake); videos in videos/ or beside it; a
    filename leading outside the dataset folder is refused unless `allow_outside`."""
    base = locate(root, ("DFDC/test", "DFDC", "dfdc", "dfdc_test"), "labels.csv", "dfdc", ORIGIN["dfdc"])
    found, refused = [], []
    with open(base / "labels.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not {"filename", "label"} <= set(reader.fieldnames):
            raise SourceError(f"dfdc: {base / 'labels.csv'} needs the columns filename,label")
        for row in reader:
            name = row["filename"].strip()
            label = int(float(row["label"]))
            # in videos/, else beside it; a place outside the dataset folder is never looked at
            places = [p for p in (confined(base / "videos", name, allow_outside), confined(base, name, allow_outside))
                      if p is not None]
            if not places:
                refused.append(name)
                continue
            path = next((p for p in places if p.exists()), places[0])
            found.append(EvalItem(Path(name).stem, path, label, "DFDC" if label else REAL, "dfdc"))
    return index_listing("dfdc", base, found, refused, [base / "videos"] if (base / "videos").is_dir() else [base])


def dfdcp(root: str | os.PathLike | None, allow_outside: bool = False) -> SuiteListing:
    """DFDC preview: dataset.json {relpath: {label: real|fake, set: train|test}}; the test set only.

    Files are looked up at the key's path, else at <first folder>/videos/<rest> (a common re-layout); a
    key leading outside the dataset folder is refused unless `allow_outside`.
    """
    base = locate(root, ("DFDCP", "dfdcp", "dfdc_preview", "DFDC-preview"), "dataset.json", "dfdcp",
                   ORIGIN["dfdcp"])
    index = json.loads((base / "dataset.json").read_text())
    found, refused = [], []
    for key, rec in sorted(index.items()):
        if rec.get("set") != "test":
            continue
        label = 1 if str(rec.get("label", "")).lower() == "fake" else 0
        parts = key.split("/")
        path = confined(base, key, allow_outside)
        if path is None:
            refused.append(key)
            continue
        moved = confined(base, "/".join([parts[0], "videos", *parts[1:]]), allow_outside) if len(parts) > 1 else None
        if not path.exists() and moved is not None and moved.exists():
            path = moved
        found.append(EvalItem(Path(key).with_suffix("").as_posix(), path, label, parts[0] if label else REAL,
                              "dfdcp"))
    return index_listing("dfdcp", base, found, refused, sorted({base / key.split("/")[0] for key in index
                                                                 if key not in refused}))
