"""Celeb-DF v1 and v2: the release's List_of_testing_videos.txt."""

from __future__ import annotations

import os
from pathlib import Path

from fiagen.manifests.roots import SourceError
from fiagen.manifests.suites.listing import (
    REAL,
    EvalItem,
    SuiteListing,
    confined,
    refused_note,
    split_found,
    unlisted_media,
)
from fiagen.manifests.suites.locate import ORIGIN, locate

CDF_LIST = "List_of_testing_videos.txt"
CDF_NAMES = {"cdf_v1": ("Celeb-DF-v1", "Celeb-DF", "celebdf_v1", "cdf_v1", "CDF-v1"),
             "cdf_v2": ("Celeb-DF-v2", "Celeb-DF", "celebdf_v2", "cdf_v2", "CDF-v2")}


def celebdf(root: str | os.PathLike | None, version: str = "cdf_v2", allow_outside: bool = False) -> SuiteListing:
    """Celeb-DF test list: lines `<label> <relpath>` where label 1 means REAL (inverted to our 0); a path
    outside the dataset folder is refused unless `allow_outside`."""
    base = locate(root, CDF_NAMES[version], CDF_LIST, version, ORIGIN["cdf"])
    found, refused = [], []
    for n, line in enumerate((base / CDF_LIST).read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or parts[0] not in ("0", "1"):
            raise SourceError(f"{version}: {base / CDF_LIST} line {n} is not '<0|1> <relpath>': {line.strip()!r}")
        is_real = parts[0] == "1"
        rel = parts[1].strip()
        method = REAL if is_real else rel.split("/")[0]
        path = confined(base, rel, allow_outside)
        if path is None:
            refused.append(rel)
            continue
        found.append(EvalItem(Path(rel).with_suffix("").as_posix(), path, 0 if is_real else 1, method, "cdf"))
    items, missing = split_found(found)
    folders = sorted({base / it.path.relative_to(base).parts[0] for it in found if it.path.is_relative_to(base)})
    return SuiteListing(version, base, items, missing, refused_note(version, refused, base), refused=refused,
                        unlisted=unlisted_media(folders, items, missing))
