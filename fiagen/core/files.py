"""Files written whole or not at all, their digests, and a full disk that says so.

`atomic_file(path)` yields a temporary name in the same folder (`.<name>.fiagen-<pid>.tmp`); the caller
writes it, then it is flushed to disk (fsync), renamed over `path`, and the folder entry synced. A failure
removes the temporary; a full disk (ENOSPC, EDQUOT or EFBIG, as raised by Python, h5py or pyarrow) becomes one
`DiskFullError` naming the file, the space left and about how much the file needed. `remove_stale_temps`
deletes the temporaries a killed run left behind (`fiagen.core.outputs.hold_folder` calls it once it holds the
folder, so no other run's temporaries can be in the way).
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from fiagen.core.errors import FiagenError

TEMP_GLOB = ".*.fiagen-*.tmp"
# no space, no quota, or a file size limit (RLIMIT_FSIZE, the file system's largest file): the file does not fit
FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
FULL_TEXTS = ("No space left on device", "Disk quota exceeded", "File too large")


def human_size(n: int) -> str:
    """Bytes as a short figure: 512 B, 3.4 MB, 1.2 GB."""
    units = ("B", "kB", "MB", "GB", "TB")
    size, k = float(n), 0
    while size >= 1000 and k < len(units) - 1:
        size, k = size / 1000, k + 1
    return f"{n} B" if k == 0 else f"{size:.1f} {units[k]}"


class DiskFullError(FiagenError):
    """A write that found no space left; `note` says what finished and how to go on (added by the stage)."""

    def __init__(self, path: str, free: int, needed: int, note: str = "") -> None:
        super().__init__(path, free, needed, note)  # all in args, so a Ray worker's error pickles whole
        self.path, self.free, self.needed, self.note = path, free, needed, note

    def __str__(self) -> str:
        needed = f", about {human_size(self.needed)} needed" if self.needed else ""
        note = f"; {self.note}" if self.note else ""
        return f"no space left on {self.path} ({human_size(self.free)} free{needed}){note}"

    def noted(self, note: str) -> DiskFullError:
        """The same error with `note` (what finished, how to go on)."""
        return DiskFullError(self.path, self.free, self.needed, note)


def is_disk_full(err: BaseException) -> bool:
    """Whether `err` is a write that ran out of space or quota."""
    if isinstance(err, OSError) and err.errno in FULL_ERRNOS:
        return True
    return isinstance(err, (OSError, RuntimeError)) and any(text in str(err) for text in FULL_TEXTS)


def disk_full(path: Path | str, needed: int = 0) -> DiskFullError:
    """The DiskFullError of `path`, with the space left on its file system now."""
    folder = Path(path) if Path(path).is_dir() else Path(path).parent
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        free = 0
    return DiskFullError(str(path), free, needed)


def _fsync(path: Path, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_file(path: Path | str, size: int = 0) -> Iterator[Path]:
    """Yield a temporary path beside `path` to write; on success it replaces `path` (fsync, rename), on
    any failure it is removed (a full disk: DiskFullError; `size`: the bytes to be written, when known)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.fiagen-{os.getpid()}.tmp")
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException as err:
        written = tmp.stat().st_size if tmp.exists() else 0
        tmp.unlink(missing_ok=True)
        if is_disk_full(err):
            before = path.stat().st_size if path.exists() else 0
            raise disk_full(path, max(written, before, size)) from None
        raise
    with suppress(OSError):  # some file systems cannot sync a folder; the rename is done either way
        _fsync(path.parent, directory=True)


def write_bytes(path: Path | str, data: bytes | memoryview) -> Path:
    """Write `data` to `path` atomically."""
    with atomic_file(path, len(data)) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: Path | str, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically."""
    return write_bytes(path, text.encode())


def remove_stale_temps(folder: Path) -> int:
    """Delete the temporaries of earlier runs under `folder` (only while holding it); how many."""
    stale = list(Path(folder).rglob(TEMP_GLOB))
    for tmp in stale:
        tmp.unlink(missing_ok=True)
    return len(stale)


def sha256_file(path: Path | str) -> str:
    """The sha256 of a file's bytes, hex."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


class RefusedPickle(FiagenError):
    """A torch file that holds Python objects other than plain data (loading it could run code)."""


def load_plain(path: Path | str) -> Any:
    """torch.load(path, weights_only=True) onto the CPU. A file that holds other Python objects than
    tensors and plain values raises RefusedPickle naming the object, not torch's advice to load it unsafely."""
    import pickle
    import warnings

    import torch

    try:
        with warnings.catch_warnings():  # torch's note on a pickle protocol above 2 (the file is judged here)
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL (\S+)", str(err))
        if found:
            raise RefusedPickle(f"it holds the Python object {found.group(1)}, not plain data (refused: fiagen "
                                f"reads torch files with weights_only=True)") from None
        reason = str(err).split("WeightsUnpickler error:")[-1].strip() or "unreadable"
        raise RefusedPickle(f"refused by the plain-data unpickler: {reason.splitlines()[0]}") from None
