"""Output folders: one run writing each at a time (`hold_folder`), and the settings each was made with
(its `config.json`, `claim_output`).

The lock is `.fiagen.lock` in the folder: an exclusive flock(2) on it, released by the kernel whenever the
holder ends (also on kill -9, also for a holder on another node over NFS), and the holder's pid, host and
start time written in it for the message a second run gets. On file systems without flock (e.g. Lustre
mounted without it) the record alone decides: a holder on this host whose pid is gone is stale.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import shutil
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from fiagen.core.errors import FiagenError
from fiagen.core.files import disk_full, is_disk_full, remove_stale_temps, write_text

log = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
LOCK_NAME = ".fiagen.lock"
NO_FLOCK = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS)


class FolderInUse(FiagenError):
    """An output folder that another fiagen run holds."""


def _holder(fd: int) -> dict[str, Any]:
    """The pid, host and start time recorded in an open lock file ({} when empty or unreadable)."""
    os.lseek(fd, 0, os.SEEK_SET)
    try:
        record = json.loads(os.read(fd, 4096) or b"{}")
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


def _alive(holder: dict[str, Any]) -> bool:
    """Whether a recorded holder may still be running: on this host, whether its pid exists; on another
    host it cannot be told, so yes."""
    if holder.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(holder["pid"]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a process of another user
        return True
    except (KeyError, TypeError, ValueError):
        return False
    return True


def _describe(holder: dict[str, Any]) -> str:
    return f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}, started {holder.get('started', '?')}"


def _refuse_if_busy(folder: Path, fd: int, mode: int) -> None:
    """FolderInUse when another run holds the lock file open as `fd`: a non-blocking flock in `mode` fails
    or, where the file system has no flock, its record names a live holder. Other OSErrors propagate."""
    holder = _holder(fd)
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        pass
    except OSError as err:
        if err.errno not in NO_FLOCK:
            raise
        if not (holder and _alive(holder)):
            return
    if not holder:  # the holder writes its record just after locking
        time.sleep(0.2)
        holder = _holder(fd)
    raise FolderInUse(f"{folder} is in use by another fiagen run ({_describe(holder)}); wait for it to end, or "
                      f"choose another output folder")


def _lock(folder: Path) -> int:
    """An open, exclusively locked `folder/.fiagen.lock` holding this process's record; FolderInUse when
    another run holds it; a stale record (its run ended without releasing it) is taken over with a warning."""
    path = folder / LOCK_NAME
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            _refuse_if_busy(folder, fd, fcntl.LOCK_EX)
        except (OSError, FolderInUse):
            os.close(fd)
            raise
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # the holder removed the file between our open and lock: lock the new one
            os.close(fd)
            continue
        holder = _holder(fd)
        if holder:
            log.warning("%s: taking over the lock of a run that ended without releasing it (%s)", folder,
                        _describe(holder))
        record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(record).encode(), 0)
            os.fsync(fd)
        except OSError:
            os.close(fd)
            raise
        return fd


def check_output_folder(folder: Path) -> Path:
    """`folder`, unless it is an existing file (one error line)."""
    if folder.exists() and not folder.is_dir():
        raise FiagenError(f"{folder} is a file; the output must be a folder")
    return folder


def _probe_lock(folder: Path) -> None:
    """FolderInUse when another run holds `folder` (its lock file is locked, or, without flock, its record
    names a live holder); takes nothing: a shared lock for an instant, released at once."""
    try:
        fd = os.open(folder / LOCK_NAME, os.O_RDONLY)
    except OSError:
        return  # no lock file, or unreadable: hold_folder decides
    try:
        _refuse_if_busy(folder, fd, fcntl.LOCK_SH)
    except OSError:
        return  # flock failed for another reason: hold_folder decides
    finally:
        os.close(fd)


def preflight_output(folder: Path | str, what: str = "", lock: bool = True) -> Path:
    """The checks of an output folder that cost nothing, made before any heavy import and before anything
    is written (one error line each): not a file, no file among its parents, writable where it would be
    created (not a read-only file system, not forbidden), not held by another run (its lock). `what`
    names the option in the messages (e.g. "--run"); `lock`: check the lock too (not from inside a run
    that holds the folder itself)."""
    folder = check_output_folder(Path(folder))
    where = f"{folder} ({what})" if what else str(folder)
    existing = folder
    while not existing.exists():
        if existing.is_symlink():  # a dangling link: hold_folder's mkdir says what is wrong
            return folder
        parent = existing.parent
        if parent == existing:
            break
        existing = parent
    if existing != folder and not existing.is_dir():
        raise FiagenError(f"cannot write in {where}: {existing} is a file, not a folder")
    if existing.is_dir() and not os.access(existing, os.W_OK | os.X_OK):
        read_only = bool(os.statvfs(existing).f_flag & os.ST_RDONLY)
        reason = "Read-only file system" if read_only else "Permission denied"
        raise FiagenError(f"cannot write in {where}: {reason}" + ("" if existing == folder else f" ({existing})"))
    if lock and folder.is_dir():
        _probe_lock(folder)
    return folder


@contextmanager
def hold_folder(folder: Path | str) -> Iterator[Path]:
    """Hold the output folder `folder` (created when needed) for this run alone, and first delete the
    temporaries earlier runs left in it. One error line when it is a file, cannot be written, or another
    run holds it. A folder it created that is still empty at the end is removed."""
    folder = check_output_folder(Path(folder))
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = _lock(folder)
    except OSError as err:
        if is_disk_full(err):
            raise disk_full(folder) from None
        raise FiagenError(f"cannot write in {folder}: {err.strerror or err}") from None
    try:
        remove_stale_temps(folder)
        yield folder
    finally:
        with suppress(OSError):  # removed while still locked, so no run can lock a file that is gone
            (folder / LOCK_NAME).unlink()
        os.close(fd)
        if created:  # a run that failed before writing anything leaves no empty folder behind
            with suppress(OSError):
                folder.rmdir()  # only when empty


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
    write_text(config, json.dumps(fingerprint, indent=2) + "\n")
