"""The watcher process of fiagen.cluster.reaper: `python -m fiagen.cluster.watcher DRIVER POLL GRACE`.

Lists, every POLL seconds, the Ray processes below the DRIVER pid (told by their command line); when the
driver is gone it sends them SIGTERM, then SIGKILL to those still there GRACE seconds later, and exits.
Each process is remembered with its start time, so a pid reused in the meantime is never touched. Reads
/proc (Linux); imports nothing beyond the standard library, so it starts at once.
"""

from __future__ import annotations

import os
import signal
import sys
import time

PROC = "/proc"


def stat(pid: int) -> tuple[int, str, str] | None:
    """(parent pid, state, start time) of a live process, or None."""
    try:
        with open(f"{PROC}/{pid}/stat", "rb") as fh:
            text = fh.read().decode(errors="replace")
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[1]), fields[0], fields[19]


def is_ray(pid: int) -> bool:
    """A Ray process: a worker or agent (ray::...), the raylet, the GCS, a Python script of Ray's, or the
    `ray start` of a local head (fiagen.cluster.head)."""
    try:
        with open(f"{PROC}/{pid}/cmdline", "rb") as fh:
            args = fh.read().decode(errors="replace").split("\0")
    except OSError:
        return False
    return args[0].startswith("ray::") or any(
        a.endswith(("/raylet", "/gcs_server")) or ("/ray/" in a and a.endswith(".py")) or a == "ray.scripts.scripts"
        for a in args[:3])


def alive(pid: int, start: str) -> bool:
    """The process `pid` that started at `start` still runs (not a zombie, not a reused pid)."""
    s = stat(pid)
    return s is not None and s[1] != "Z" and s[2] == start


def ray_below(driver: int, me: int) -> dict[int, str]:
    """The Ray processes below `driver` now (pid -> start time), leaving out `me`."""
    parents: dict[int, list[tuple[int, str]]] = {}
    for name in os.listdir(PROC):
        if name.isdigit() and (s := stat(int(name))) is not None:
            parents.setdefault(s[0], []).append((int(name), s[2]))
    found, todo = {}, list(parents.get(driver, []))
    while todo:
        pid, start = todo.pop()
        todo += parents.get(pid, [])
        if pid != me and is_ray(pid):
            found[pid] = start
    return found


def end(processes: dict[int, str], grace: float) -> None:
    """SIGTERM to the processes still alive, then SIGKILL to those left `grace` seconds later."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 0.0)):
        left = {pid: start for pid, start in processes.items() if alive(pid, start)}
        for pid in left:
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        deadline = time.monotonic() + wait
        while left and time.monotonic() < deadline:
            time.sleep(0.1)
            left = {pid: start for pid, start in left.items() if alive(pid, start)}
        processes = left


def main(argv: list[str]) -> None:
    """Watch the driver argv[0] every argv[1] s; end its Ray processes (grace argv[2] s) once it is gone."""
    driver, poll, grace = int(argv[0]), float(argv[1]), float(argv[2])
    first = stat(driver)
    if first is None:
        return
    seen: dict[int, str] = {}
    while alive(driver, first[2]):
        seen = {**ray_below(driver, os.getpid()), **seen}
        time.sleep(poll)
    end(seen, grace)


if __name__ == "__main__":
    main(sys.argv[1:])
