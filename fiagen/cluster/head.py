"""A stage's own local Ray, started in a session of its own.

ray.init() starts Ray's GCS, raylet and agents in the driver's process group. A scheduler that preempts by
signalling that group (Kubernetes through `tini -g`, SLURM's `scancel --signal` to a batch step, `kill -TERM
-PGID`) then ends Ray's head together with fiagen: fiagen's safe point finds the GCS gone, and a task that
failed with the raylet makes the driver wait 60 s for the GCS before Ray ends it with an error (no record,
no resume line). So a stage without --address starts its head as `ray start --head --block` (Ray's own
CLI) in a new session, on free local ports and in a temporary Ray folder of its own (so `ray.init()` and
`--address auto` elsewhere on the machine never find it), and attaches to it. A group signal then reaches
fiagen alone: it stops at its safe point, writes its record, disconnects, and ends the head (SIGTERM: Ray
drains and ends its processes), then removes the folder. A kill -9 of fiagen is covered by the watcher
(fiagen.cluster.reaper), which ends the head with Ray's other processes.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from fiagen.core.errors import FiagenError

START_S = 120.0  # the longest a head may take to open its GCS port (seconds; a loaded machine is slow)
STOP_S = 10.0  # how long the head may take to end its processes on SIGTERM before they are killed
AUTH_MODE = "RAY_AUTH_MODE"  # Ray's switch for token authentication between its processes


class HeadError(FiagenError):
    """The local Ray head could not be started."""


@dataclass
class LocalHead:
    """A running `ray start --head --block` process, its GCS address and its Ray folder."""

    process: subprocess.Popen
    address: str
    folder: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def start_head(cpus: int) -> LocalHead:
    """Start a local Ray head with `cpus` CPUs in a session of its own; return once its GCS answers."""
    folder = Path(tempfile.mkdtemp(prefix="fiagen-ray-"))  # short: Ray's socket paths live under it
    port = _free_port()
    command = [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block", f"--port={port}",
               f"--num-cpus={cpus}", "--include-dashboard=false", "--disable-usage-stats",
               f"--ray-client-server-port={_free_port()}", "--node-ip-address=127.0.0.1", f"--temp-dir={folder}"]
    # token authentication, as a plain local ray.init() has it (Ray sets the same variable for itself then):
    # the head makes or reads ~/.ray/auth_token, and this process's ray.init presents it; an explicit
    # RAY_AUTH_MODE is kept
    if AUTH_MODE not in os.environ:
        from ray._raylet import Config

        os.environ[AUTH_MODE] = "token"
        Config.initialize("")  # Ray's config, read when ray was imported, sees the variable (as ray.init does)
    log = folder / "head.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True, close_fds=True)
    head = LocalHead(process, f"127.0.0.1:{port}", folder)
    try:
        deadline = time.monotonic() + START_S
        while not _answers(port):
            if process.poll() is not None or time.monotonic() > deadline:
                lines = log.read_text(errors="replace").strip().splitlines()
                why = lines[-1] if lines else f"exit status {process.poll()}"
                raise HeadError(f"the local Ray head did not start ({why}); `ray start --head` shows why")
            time.sleep(0.1)
    except BaseException:  # a signal or an error while it starts: nothing of it is left behind
        stop_head(head)
        raise
    return head


def stop_head(head: LocalHead) -> None:
    """End the head: SIGTERM to `ray start`, which drains the node and ends its processes; SIGKILL to what is
    left of its session after STOP_S; remove its folder."""
    process = head.process
    process.terminate()
    try:
        process.wait(STOP_S)
    except subprocess.TimeoutExpired:
        pass
    _signal_group(process.pid, signal.SIGKILL)  # anything of its session still there
    process.wait()
    shutil.rmtree(head.folder, ignore_errors=True)


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass
