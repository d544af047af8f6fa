"""Where a suite's dataset lies: --root/<name> or --root itself, else $FIAGEN_DATA[/<name>], and the
one-line errors that say where it looked and where the index file comes from."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from fiagen.manifests.roots import DATA_ENV, SourceError

# Where each index file comes from, for the one-line error when a root lacks it.
ORIGIN = {
    "ff++": "the FaceForensics++ download (download-FaceForensics.py -d all -c c23 -t videos)",
    "cdf": "the Celeb-DF release (https://github.com/yuezunli/celeb-deepfakeforensics), next to Celeb-real/",
    "dfd": "the FaceForensics++ download (-d DeepFakeDetection_original and -d DeepFakeDetection, -c c23)",
    "dfdc": "the DFDC public test set (labels.csv beside videos/), https://ai.meta.com/datasets/dfdc/",
    "dfdcp": "the DFDC preview release, dataset.json at its root",
    "df40": "the DF40 test data (https://github.com/YZY-stack/DF40), one folder per method",
    "diff": "the DiFF images (https://github.com/xaCheng1996/DiFF): T2I/ I2I/ FS/ FE/ and real/",
}


def locate(root: str | os.PathLike | None, names: Sequence[str], marker: str, what: str, origin: str,
           refuse: Callable[[Path], str | None] | None = None) -> Path:
    """The folder holding `marker`: --root itself or --root/<name>; else $FIAGEN_DATA/<name> or $FIAGEN_DATA.
    `refuse(folder)`: why a folder holding `marker` is not this dataset after all (None: it is)."""
    refused: list[str] = []

    def first(candidates: Sequence[Path]) -> Path | None:
        for candidate in candidates:
            if (candidate / marker).exists():
                reason = refuse(candidate) if refuse is not None else None
                if reason is None:
                    return candidate
                refused.append(reason)
        return None

    if root is not None:
        base = Path(root).expanduser()
        if base.exists() and not base.is_dir():
            raise SourceError(f"{what}: --root {base} is a file; pass the folder holding {names[0]}/ (or the "
                              f"dataset's own folder)")
        found = first([base] + [base / n for n in names])
        if found is None:
            raise SourceError(f"{what}: " + ("; ".join(refused) if refused else
                              f"{base} has no {marker} (it comes with {origin}); pass the folder holding "
                              f"{names[0]}/, or the dataset's own folder, as --root"))
        return found
    env = os.environ.get(DATA_ENV)
    if not env:
        raise SourceError(f"{what}: pass --root DIR or set {DATA_ENV} to a folder holding {names[0]}/ (expected "
                          f"DIR/{names[0]}/{marker}; {marker} comes with {origin})")
    base = Path(env).expanduser()
    found = first([base / n for n in names] + [base])
    if found is None:
        raise SourceError(f"{what}: " + ("; ".join(refused) if refused else
                          f"none of {', '.join(str(base / n) for n in names)}, {base} (${DATA_ENV}) holds {marker} "
                          f"(it comes with {origin}); pass --root DIR"))
    return found


def search_roots(root: str | os.PathLike | None) -> list[Path]:
    """Folders where a suite looks for the other datasets it needs (DF40's reals): --root, its parent, $FIAGEN_DATA."""
    out = []
    if root is not None:
        base = Path(root).expanduser()
        out += [base, base.parent]
    if os.environ.get(DATA_ENV):
        out.append(Path(os.environ[DATA_ENV]).expanduser())
    return out


def no_layout(suite: str, root: str | os.PathLike | None, folder: str, lacks: str, what: str) -> SourceError:
    """The one-line error of a suite found by its folder layout: where it looked (--root, else
    $FIAGEN_DATA/<folder>) and `lacks` `what`; or, with neither set, that one must be."""
    env = os.environ.get(DATA_ENV)
    if root is None and not env:
        return SourceError(f"{suite}: pass --root DIR (the folder holding {folder}/, or {folder}/ itself) or set "
                           f"{DATA_ENV} to a folder holding {folder}/ with {what}")
    if root is not None and Path(root).expanduser().is_file():
        return SourceError(f"{suite}: --root {root} is a file; pass the folder holding {folder}/ (or {folder}/ itself)")
    where = str(root) if root is not None else f"{Path(env).expanduser() / folder} (from ${DATA_ENV})"
    return SourceError(f"{suite}: {where} {lacks} {what}; pass the folder holding {folder}/ (or {folder}/ itself) "
                       f"as --root")


def find_dataset(bases: Iterable[Path], names: Sequence[str], marker: str) -> Path | None:
    """The first base, or base/NAME, that holds `marker`; None when none does."""
    for base in bases:
        for candidate in [base] + [base / n for n in names]:
            if (candidate / marker).exists():
                return candidate
    return None
