"""Ray after kill -9 (issue 23, item 9): a local Ray starts without its dashboard, and its processes end
with a killed driver while others are left alone. Each test failed before its fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_a_local_ray_starts_without_dashboard() -> None:
    from fiagen.cluster.session import init_kwargs

    assert init_kwargs("127.0.0.1:6379") == {"address": "127.0.0.1:6379", "include_dashboard": False,
                                             "logging_level": 40, "log_to_driver": False, "configure_logging": True}


# A driver: starts the watcher, a fake raylet (a script under a ray/ folder) that starts a fake agent in
# a session of its own (as Ray's agents end up: orphans), and a child that is not Ray's; prints the pids.
DRIVER = """
import subprocess, sys, time
from fiagen.cluster.reaper import start_watcher
watcher = start_watcher(poll_s=0.2, grace_s=1.0)
raylet = subprocess.Popen([sys.executable, sys.argv[1], sys.argv[2]])
other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
time.sleep(1.5)  # the watcher has seen them all
print(watcher.pid, raylet.pid, open(sys.argv[3]).read().strip(), other.pid, flush=True)
time.sleep(120)
"""
RAYLET = """
import subprocess, sys, time
agent = subprocess.Popen([sys.executable, sys.argv[1]], start_new_session=True)
open(sys.argv[1] + ".pid", "w").write(str(agent.pid))
time.sleep(120)
"""


def test_the_processes_of_a_local_ray_end_with_a_killed_driver(tmp_path: Path) -> None:
    import os
    import signal
    import time

    folder = tmp_path / "ray"
    folder.mkdir()
    (folder / "raylet.py").write_text(RAYLET)
    (folder / "agent.py").write_text("import time\ntime.sleep(120)\n")
    driver = subprocess.Popen([sys.executable, "-c", DRIVER, str(folder / "raylet.py"), str(folder / "agent.py"),
                               str(folder / "agent.py.pid")], stdout=subprocess.PIPE, text=True)
    pids = [int(p) for p in driver.stdout.readline().split()]
    watcher, raylet, agent, other = pids

    def running(pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    try:
        assert all(running(p) for p in pids)
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        deadline = time.monotonic() + 20
        while any(running(p) for p in (watcher, raylet, agent)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not running(raylet) and not running(agent) and not running(watcher)
        assert running(other)  # not a Ray process: left alone
    finally:
        for pid in pids:
            if running(pid):
                os.kill(pid, signal.SIGKILL)
