"""A watcher that ends the processes of a local Ray when the fiagen process that started it is killed.

A fiagen stage that starts its own Ray (no --address) stops it with ray.shutdown() when it ends, also on
an error or a signal it handles. A kill -9 leaves no such chance: Ray's head processes die with their
parent, but the raylet's DashboardAgent and RuntimeEnvAgent then spend a minute or two trying to report
the raylet's death to the GCS, which is gone too. The watcher is a small separate process (its own
session, so a Ctrl-C in the terminal does not reach it) that lists, once a second, the Ray processes
below the driver (raylet, GCS, agents, workers, Ray's Python scripts; told by their command line); when the
driver is gone it sends them SIGTERM, then SIGKILL to those still there 3 s later, and exits. It
remembers each process with its start time, so a pid reused in the meantime is never touched. When the
stage ends normally it is stopped first. Linux only (it reads /proc); elsewhere nothing is started. The
watcher's program is fiagen.cluster.watcher.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

POLL_S = 1.0
GRACE_S = 3.0


def start_watcher(poll_s: float = POLL_S, grace_s: float = GRACE_S) -> subprocess.Popen | None:
    """Start the watcher of this process's Ray processes (None where there is no /proc)."""
    if not Path("/proc/self/stat").exists():
        return None
    return subprocess.Popen([sys.executable, "-m", "fiagen.cluster.watcher", str(os.getpid()), str(poll_s),
                             str(grace_s)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, close_fds=True)


def stop_watcher(watcher: subprocess.Popen | None) -> None:
    """Stop the watcher (the stage ended and stopped its Ray itself)."""
    if watcher is not None and watcher.poll() is None:
        watcher.kill()
        watcher.wait()
