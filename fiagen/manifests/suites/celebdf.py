"""Celeb-DF v1 and v2: the release's List_of_testing_videos.txt."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from fiagen.manifests.roots import SourceError
from fiagen.manifests.suites.listing import REAL, EvalItem, SuiteListing, confined, index_listing
from fiagen.manifests.suites.locate import ORIGIN, locate

CDF_LIST = "List_of_testing_videos.txt"
CDF_SHARED = "Celeb-DF"  # the folder name both releases unpack to: told apart by their list
CDF_OWN = {"cdf_v1": ("Celeb-DF-v1", "celebdf_v1", "cdf_v1", "CDF-v1"),
           "cdf_v2": ("Celeb-DF-v2", "celebdf_v2", "cdf_v2", "CDF-v2")}
CDF_NAMES = {v: (own[0], CDF_SHARED, *own[1:]) for v, own in CDF_OWN.items()}
CDF_V2_VIDEOS = 518  # the entries of Celeb-DF v2's List_of_testing_videos.txt (178 real, 340 fake)


def list_version(folder: Path) -> str:
    """The release whose test list `folder` holds: cdf_v2 when it names v2's 518 videos, else cdf_v1."""
    lines = [line for line in (folder / CDF_LIST).read_text().splitlines() if line.strip()]
    return "cdf_v2" if len(lines) == CDF_V2_VIDEOS else "cdf_v1"


def _not_version(version: str) -> Callable[[Path], str | None]:
    """Why a folder holding a Celeb-DF list is not `version` (None: it is): a folder named for the other
    release, or the shared name `Celeb-DF` whose list is the other release's."""
    other = "cdf_v1" if version == "cdf_v2" else "cdf_v2"

    def refuse(folder: Path) -> str | None:
        name = folder.name.lower()
        if name in {n.lower() for n in CDF_OWN[other]}:
            return f"{folder} is named for {other}, not {version}"
        if name == CDF_SHARED.lower() and list_version(folder) != version:
            return (f"{folder} holds {other}'s test list (v2's names {CDF_V2_VIDEOS} videos; this one "
                    f"{'does' if other == 'cdf_v2' else 'does not'}), not {version}'s; put {version} in "
                    f"{folder.parent / CDF_OWN[version][0]}")
        return None

    return refuse


def celebdf(root: str | os.PathLike | None, version: str = "cdf_v2", allow_outside: bool = False) -> SuiteListing:
    """Celeb-DF test list: lines `<label> <relpath>` where label 1 means REAL (inverted to our 0); a path
    outside the dataset folder is refused unless `allow_outside`."""
    base = locate(root, CDF_NAMES[version], CDF_LIST, version, ORIGIN["cdf"], _not_version(version))
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
    folders = sorted({base / it.path.relative_to(base).parts[0] for it in found if it.path.is_relative_to(base)})
    return index_listing(version, base, found, refused, folders)
