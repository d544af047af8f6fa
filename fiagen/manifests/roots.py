"""Dataset roots: an explicit --root, else a folder under $FIAGEN_DATA."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from fiagen.errors import FiagenError

DATA_ENV = "FIAGEN_DATA"


class SourceError(FiagenError):
    """A dataset that cannot be found or read as asked; the message is one line for the user."""


def dataset_root(root: str | os.PathLike | None, names: Sequence[str], marker: str, what: str) -> Path:
    """The root of a dataset.

    `root` wins when given; otherwise `$FIAGEN_DATA/<name>` for the first of `names` that holds `marker`
    (a relative path that proves the layout), or `$FIAGEN_DATA` itself when it holds it.
    """
    if root is not None:
        path = Path(root).expanduser().resolve()
        if not (path / marker).exists():
            raise SourceError(f"{what}: {path} has no {marker} (pass the dataset's root folder as --root)")
        return path
    env = os.environ.get(DATA_ENV)
    if not env:
        raise SourceError(f"{what}: pass --root DIR or set {DATA_ENV} to a folder holding the dataset "
                          f"(expected DIR/{marker})")
    base = Path(env).expanduser().resolve()
    for candidate in [base / n for n in names] + [base]:
        if (candidate / marker).exists():
            return candidate
    tried = ", ".join(str(base / n) for n in names)
    raise SourceError(f"{what}: none of {tried}, {base} holds {marker}; pass --root DIR")
