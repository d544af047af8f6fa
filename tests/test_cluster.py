"""`fiagen precompute --address` on a real two-node Ray cluster on this host, against a local run.

The cluster is two `ray start` processes (a head and a worker node, one CPU each) with their own temp
folders and ports. It is torn down by killing exactly the process groups the test started: `ray stop`
would kill every Ray on the machine, the session's `ray_local` included. Every driver (fiagen, and the
query of the cluster's state) runs as a subprocess: a process connects to one Ray only, and pytest's
may hold the session's `ray_local`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from fiagen.manifests.manifest import read_manifest, read_run_report
from fiagen.precompute.shards import sha256_file

RAY = Path(sys.executable).parent / "ray"
FRAMES, SHARD_SIZE, LIMIT = 4, 8, 2  # 2 videos per split, 6 in all; 2 videos per shard, 3 shards
VIDEOS = 3 * LIMIT
START_TIMEOUT_S = 180
RUN_TIMEOUT_S = 420

# A second driver: the cluster's live nodes, and from the task events the GCS keeps (what `ray list
# tasks` shows, read here without the dashboard, which needs ray[default]) the node each task ran on.
STATE_QUERY = """
import json, sys, time
import ray
from ray._common.utils import binary_to_hex
from ray._private.state import state

ray.init(address=sys.argv[1], log_to_driver=False, logging_level="ERROR")
want_tasks = int(sys.argv[2])
deadline = time.monotonic() + 60
while True:
    nodes = sorted(n["NodeID"] for n in ray.nodes() if n["Alive"])
    ran = {}
    for event in state._get_all_task_events():
        if event.state_updates.HasField("node_id"):
            ran[binary_to_hex(event.task_id)] = (event.task_info.name, binary_to_hex(event.state_updates.node_id))
    by_name = {}
    for name, node in ran.values():
        by_name.setdefault(name, {}).setdefault(node, 0)
        by_name[name][node] += 1
    extracted = sum(by_name.get("_extract_remote", {}).values())
    if (len(nodes) >= 2 and extracted >= want_tasks) or time.monotonic() > deadline:
        break
    time.sleep(0.5)
print(json.dumps({"nodes": nodes, "tasks_by_node": by_name}))
"""


@dataclass
class Cluster:
    """A running local Ray cluster: its address and the environment its drivers need."""

    address: str
    env: dict[str, str]

    def state(self, extract_tasks: int = 0) -> dict[str, Any]:
        """Live node ids and tasks per name and node, once `extract_tasks` extract tasks are recorded."""
        done = subprocess.run([sys.executable, "-c", STATE_QUERY, self.address, str(extract_tasks)], env=self.env,
                              capture_output=True, text=True, timeout=START_TIMEOUT_S)
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray_start(args: list[str], env: dict[str, str], log: Path, groups: list[int]) -> tuple[int, str]:
    """Run `ray start ARGS` in a new session (so its daemons share one process group); exit code and output."""
    with log.open("w") as out:
        try:
            proc = subprocess.Popen([str(RAY), "start", *args], env=env, stdout=out, stderr=subprocess.STDOUT,
                                    cwd=log.parent, start_new_session=True)
        except OSError as err:
            return -1, f"{RAY}: {err}"
        groups.append(proc.pid)
        try:
            code = proc.wait(timeout=START_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            code = -1
    return code, log.read_text()[-3000:]


def _kill_groups(groups: list[int]) -> None:
    """Kill the cluster's daemons (GCS, raylets, agents). Their worker processes exit with their raylet."""
    for pgid in groups:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture
def two_node_cluster() -> Iterator[Cluster]:
    """A head node and a second node (1 CPU each) on localhost, with their own temp folders and ports."""
    # Short temp path: Ray's unix sockets live under it and socket paths are limited to 107 bytes.
    tmp = Path(tempfile.mkdtemp(prefix="fiagen-ray-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    # Ray 2.60 turns token authentication on for a new cluster and keeps the token in ~/.ray; this
    # throwaway cluster opts out so it neither needs nor leaves a token there.
    env.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
    port = _free_port()

    def node(name: str) -> list[str]:
        """One CPU, a small object store, and what each node on one host needs of its own: a temp folder,
        OS-chosen worker ports and a free agent port (the default, 52365, is the same for every node)."""
        return ["--num-cpus", "1", "--object-store-memory", str(100 * 2**20), "--disable-usage-stats",
                "--temp-dir", str(tmp / name), "--min-worker-port", "0", "--max-worker-port", "0",
                "--dashboard-agent-listen-port", str(_free_port())]

    groups: list[int] = []
    try:
        code, output = _ray_start(["--head", "--port", str(port), "--include-dashboard", "false",
                                   "--ray-client-server-port", str(_free_port()), *node("head")],
                                  env, tmp / "head.log", groups)
        if code != 0:
            pytest.skip(f"`ray start --head` cannot run on this machine (exit {code}): {output.strip()[-500:]}")
        # The second node joins the head; one log monitor per host is enough.
        code, output = _ray_start(["--address", f"127.0.0.1:{port}", "--include-log-monitor", "false",
                                   *node("worker")], env, tmp / "worker.log", groups)
        assert code == 0, f"the second node did not start (exit {code}):\n{output}"
        cluster = Cluster(f"127.0.0.1:{port}", env)
        assert len(cluster.state()["nodes"]) == 2
        yield cluster
    finally:
        _kill_groups(groups)
        shutil.rmtree(tmp, ignore_errors=True)


def _shards(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): sha256_file(p) for p in sorted(out.glob("shards/*/*.h5"))}


def _precompute(root: Path, out: str, cwd: Path, env: dict[str, str], *extra: str) -> None:
    """`fiagen precompute` on the test's small config (reconstructors off: not what this test is about)."""
    run = subprocess.run(
        [sys.executable, "-m", "fiagen", "precompute", "--src", "ff++_c23", "--root", os.path.relpath(root, cwd),
         "--out", out, "--frames", str(FRAMES), "--shard-size", str(SHARD_SIZE), "--limit", str(LIMIT),
         "--ae", "none", "--sr", "none", "--quiet", *extra],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]


def test_precompute_on_two_node_cluster_matches_local_run(ffpp_root: Path, two_node_cluster: Cluster,
                                                          tmp_path: Path) -> None:
    cluster_out, local_out = tmp_path / "cluster", tmp_path / "local"
    # Relative --root and --out, from a directory other than the nodes' (where their workers run).
    _precompute(ffpp_root, "cluster", tmp_path, two_node_cluster.env, "--address", two_node_cluster.address)
    state = two_node_cluster.state(extract_tasks=VIDEOS)
    nodes = set(state["nodes"])
    assert len(nodes) == 2

    # Ray's own record: the extract tasks ran on both nodes, as many per node as run.json says.
    report = read_run_report(cluster_out)
    assert report["config"]["address"] == two_node_cluster.address
    assert report["config"]["resolved_concurrency"] == 2  # the cluster's CPUs: one per node
    assert set(report["nodes"]) == nodes
    assert state["tasks_by_node"]["_extract_remote"] == {n: v["videos"] for n, v in report["nodes"].items()}
    assert all(v["videos"] >= 1 for v in report["nodes"].values())
    assert sum(state["tasks_by_node"]["_write_remote"].values()) == 3
    assert len(report["videos"]) == VIDEOS
    assert {v["node_id"] for v in report["videos"].values()} == nodes
    assert {v["node_ip"] for v in report["videos"].values()} == {n["ip"] for n in report["nodes"].values()}

    # Without --address, a local Ray even where Ray would find the cluster (RAY_ADDRESS, as after `ray
    # start`); the same config there gives byte-identical shards and the same manifest.
    _precompute(ffpp_root, "local", tmp_path, {**two_node_cluster.env, "RAY_ADDRESS": two_node_cluster.address})
    local = read_run_report(local_out)
    assert len(local["nodes"]) == 1 and not set(local["nodes"]) & nodes
    assert next(iter(local["nodes"].values()))["videos"] == VIDEOS
    assert set(local["videos"]) == set(report["videos"])
    shards = _shards(cluster_out)
    assert len(shards) == 3
    assert shards == _shards(local_out)
    assert [(s["path"], s["sha256"], s["videos"]) for s in report["shards"]] == \
        [(s["path"], s["sha256"], s["videos"]) for s in local["shards"]]
    assert report["fingerprint"] == local["fingerprint"] and report["counts"] == local["counts"]
    manifest = read_manifest(cluster_out)
    assert len(manifest) == VIDEOS * FRAMES
    assert set(manifest["video_id"]) == set(report["videos"])
    pd.testing.assert_frame_equal(manifest, read_manifest(local_out))
