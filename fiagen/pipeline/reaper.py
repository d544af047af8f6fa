"""A watcher that ends the processes of a local Ray when the fiagen process that started it is killed.

A fiagen stage that starts its own Ray (no --address) stops it with ray.shutdown() when it ends, also on
an error or a signal it handles. A kill -9 leaves no such chance: Ray's head processes die with their
parent, but the raylet's DashboardAgent and RuntimeEnvAgent then spend a minute or two trying to report
the raylet's death to the GCS, which is gone too. The watcher is a small separate process (its own
session, so a Ctrl-C in the terminal does not reach it) that lists, once a second, the Ray processes
below the driver (raylet, GCS, agents, workers, Ray's Python scripts; told by their command line); when the
driver is gone it sends them SIGTERM, then SIGKILL to those still there 3 s later, and exits. It
remembers each process with its start time, so a pid reused in the meantime is never touched. When the
stage ends normally it is stopped first. Linux only (it reads /proc); elsewhere nothing is started.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

POLL_S = 1.0
GRACE_S = 3.0

WATCH = r"""
import os, signal, sys, time

PROC = "/proc"


def stat(pid):
    '''(parent pid, state, start time) of a live process, or None.'''
    try:
        with open(f"{PROC}/{pid}/stat", "rb") as fh:
            text = fh.read().decode(errors="replace")
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[1]), fields[0], fields[19]


def is_ray(pid):
    '''A Ray process: a worker or agent (ray::...), the raylet, the GCS, or a Python script of Ray's.'''
    try:
        with open(f"{PROC}/{pid}/cmdline", "rb") as fh:
            args = fh.read().decode(errors="replace").split("\0")
    except OSError:
        return False
    return args[0].startswith("ray::") or any(
        a.endswith(("/raylet", "/gcs_server")) or ("/ray/" in a and a.endswith(".py")) for a in args[:3])


def alive(pid, start):
    s = stat(pid)
    return s is not None and s[1] != "Z" and s[2] == start


driver = int(sys.argv[1])
me, poll, grace = os.getpid(), float(sys.argv[2]), float(sys.argv[3])
driver_start = stat(driver)[2]
seen = {}  # pid -> start time
while alive(driver, driver_start):
    parents = {}
    for name in os.listdir(PROC):
        if name.isdigit() and (s := stat(int(name))) is not None:
            parents.setdefault(s[0], []).append((int(name), s[2]))
    todo = list(parents.get(driver, []))
    while todo:
        pid, start = todo.pop()
        todo += parents.get(pid, [])
        if pid != me and pid not in seen and is_ray(pid):
            seen[pid] = start
    time.sleep(poll)
for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 0)):
    left = {pid: start for pid, start in seen.items() if alive(pid, start)}
    for pid in left:
        try:
            os.kill(pid, sig)
        except OSError:
            pass
    deadline = time.monotonic() + wait
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = {pid: start for pid, start in left.items() if alive(pid, start)}
    seen = left
"""


def start_watcher(poll_s: float = POLL_S, grace_s: float = GRACE_S) -> subprocess.Popen | None:
    """Start the watcher of this process's Ray processes (None where there is no /proc)."""
    if not Path("/proc/self/stat").exists():
        return None
    return subprocess.Popen([sys.executable, "-c", WATCH, str(os.getpid()), str(poll_s), str(grace_s)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, close_fds=True)


def stop_watcher(watcher: subprocess.Popen | None) -> None:
    """Stop the watcher (the stage ended and stopped its Ray itself)."""
    if watcher is not None and watcher.poll() is None:
        watcher.kill()
        watcher.wait()
