"""Dataset roots: an explicit --root, else a folder under $FIAGEN_DATA."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from fiagen.core.errors import FiagenError

DATA_ENV = "FIAGEN_DATA"


class SourceError(FiagenError):
    """A dataset that cannot be found or read as asked; the message is one line for the user."""


def dataset_root(root: str | os.PathLike | None, names: Sequence[str], marker: str, what: str) -> Path:
    """The root of a dataset.

    `root` (or `$FIAGEN_DATA` without it) is the folder that holds the datasets: the first `root/<name>`
    of `names` that holds `marker` (a relative path that proves the layout); `root` itself when it holds
    `marker` (the dataset's own folder) is taken too.
    """
    if root is not None:
        path = Path(root).expanduser().resolve()
        if path.exists() and not path.is_dir():
            raise SourceError(f"{what}: --root {path} is a file; pass the folder holding {names[0]}/ (or the "
                              f"dataset's own folder)")
        for candidate in [path] + [path / n for n in names]:
            if (candidate / marker).exists():
                return candidate
        raise SourceError(f"{what}: neither {path} nor {path}/{{{','.join(names)}}} holds {marker}; pass the "
                          f"folder holding {names[0]}/ (or the dataset's own folder) as --root")
    env = os.environ.get(DATA_ENV)
    if not env:
        raise SourceError(f"{what}: pass --root DIR or set {DATA_ENV} to the folder holding {names[0]}/ "
                          f"(expected DIR/{names[0]}/{marker})")
    base = Path(env).expanduser().resolve()
    for candidate in [base / n for n in names] + [base]:
        if (candidate / marker).exists():
            return candidate
    tried = ", ".join(str(base / n) for n in names)
    raise SourceError(f"{what}: none of {tried}, {base} holds {marker}; pass --root DIR")
