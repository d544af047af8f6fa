"""Output folders that remember the settings they were made with (their `config.json`)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Callable, Sequence

from fiagen.errors import FiagenError

CONFIG_NAME = "config.json"


def claim_output(folder: Path, fingerprint: dict[str, Any], overwrite: bool, stale: Sequence[str],
                 refuse: Callable[[list[str]], FiagenError]) -> None:
    """Make `folder` hold outputs of `fingerprint`, recorded in its config.json.

    A folder made with other settings raises `refuse(changed keys)` unless `overwrite`, which first
    deletes the names in `stale` (files or folders) so that nothing of the old settings survives.
    """
    config = folder / CONFIG_NAME
    if config.exists():
        previous = json.loads(config.read_text())
        if previous != fingerprint:
            if not overwrite:
                raise refuse(sorted(k for k in fingerprint.keys() | previous.keys()
                                    if previous.get(k) != fingerprint.get(k)))
            for name in stale:
                target = folder / name
                if target.is_dir():
                    shutil.rmtree(target)
                else:
                    target.unlink(missing_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    config.write_text(json.dumps(fingerprint, indent=2) + "\n")
