"""Preemption the way clusters do it (issue 30, item 3): SIGTERM to the whole process group of a command
started in a session of its own (`setsid`), as SLURM and Kubernetes (through `tini -g`) send it, for
precompute, train, evaluate and `fiagen run`. Each must end within a 30 s grace period with one line and no
traceback or Ray noise, leave its record and no lock, no process of its session, and resume exactly.

The commands run under tests/signal_at.py, which sends the signal to the group right after a known call
(precompute: from outside, once a first shard is complete), so each test knows where it lands."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from test_preemption import checkpoint_and_suite, frames_source, precompute_argv, rows

from fiagen.core.files import TEMP_GLOB
from fiagen.core.outputs import LOCK_NAME

TESTS = Path(__file__).parent
GRACE_S = 30  # Kubernetes' default terminationGracePeriodSeconds
FIAGEN = str(Path(sys.executable).with_name("fiagen"))


def session_processes(sid: int) -> list[str]:
    """The live processes of session `sid` (the command's group and the Ray workers it started), from /proc."""
    left = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            fields = text[text.rindex(")") + 2:].split()
            if int(fields[3]) == sid and fields[0] != "Z":
                left.append((stat.parent / "cmdline").read_text().replace("\0", " ")[:120])
        except (OSError, ValueError):
            continue
    return left


def orphans(sid: int, wait_s: float = 10) -> list[str]:
    """The processes still in session `sid` after `wait_s` (what the command left behind)."""
    deadline = time.time() + wait_s
    while (left := session_processes(sid)) and time.time() < deadline:
        time.sleep(0.2)
    return left


def lines(stderr: str) -> list[str]:
    """stderr without the warnings of tiny test data (no AE/SR reconstructions, random weights)."""
    return [line for line in stderr.splitlines() if not line.startswith("fiagen: warning:")]


def group_stopped(tmp_path: Path, argv: list[str], target: str = "", at: int = 0,
                  when: Path | None = None) -> subprocess.CompletedProcess:
    """Run `fiagen ARGV` in a session of its own and SIGTERM its process group: right after the `at`-th call of
    `target` (tests/signal_at.py), or with `when` from outside once that file exists. Asserts that it ended
    within the grace period and that its session left no process."""
    stamp = tmp_path / "signalled_at"
    command = [sys.executable, str(TESTS / "signal_at.py"), target, str(at), "--", *argv] if target else \
        [FIAGEN, *argv]
    env = {**os.environ, "SIGNALLED_AT": str(stamp), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    if when is not None:
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None and not when.exists():
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()
        stamp.write_text(f"{time.time()}\n")
        os.killpg(proc.pid, signal.SIGTERM)
    out, err = proc.communicate(timeout=300)
    seconds = time.time() - float(stamp.read_text())
    assert seconds < GRACE_S, (seconds, err)
    assert orphans(proc.pid) == []
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


def fiagen(*argv: str) -> subprocess.CompletedProcess:
    """The resume command, as the user runs it."""
    return subprocess.run([FIAGEN, *argv], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def assert_one_stop_line(result: subprocess.CompletedProcess, argv: list[str], where: str) -> None:
    """Exit 143 and one line (no traceback, no Ray noise): where it stopped and the command that resumes."""
    assert result.returncode == 143, result.stderr
    assert len(lines(result.stderr)) == 1, result.stderr
    (line,) = lines(result.stderr)
    assert line.startswith(f"fiagen: stopped by SIGTERM {where}") and " resume with: fiagen " in line, line
    assert line.endswith(" ".join(argv)), line


@pytest.mark.slow
@pytest.mark.realmedia
def test_group_sigterm_during_precompute_then_the_rerun_builds_only_the_rest(test_data: Path, tmp_path: Path) -> None:
    src, out = frames_source(test_data, tmp_path, 8), tmp_path / "out"
    argv = precompute_argv(src, out)[1:]
    stopped = group_stopped(tmp_path, argv, when=out / "shards" / "train" / "00000.h5.sha256")
    assert_one_stop_line(stopped, argv, "with ")
    report = json.loads((out / "run.json").read_text())
    assert report["status"] == "stopped (signal)" and report["signal"] == "SIGTERM"
    complete = report["shards_complete"]
    assert 1 <= len(complete) < 8 and f" {len(complete)} of 8 shards complete" in stopped.stderr
    assert sorted(p.relative_to(out).as_posix() for p in out.glob("shards/train/*.h5")) == complete
    assert not list(out.rglob(TEMP_GLOB)) and not (out / LOCK_NAME).exists()
    kept = {p.name: p.read_bytes() for p in out.glob("shards/train/*.sha256")}

    again = fiagen(*argv)
    assert again.returncode == 0, again.stderr
    assert f"({8 - len(complete)} written, {len(complete)} reused)" in again.stdout
    assert {name: (out / "shards" / "train" / name).read_bytes() for name in kept} == kept  # untouched
    assert json.loads((out / "run.json").read_text())["status"] == "complete"


def train_argv(shards: Path, run: Path) -> list[str]:
    return ["train", "--shards", str(shards), "--run", str(run), "--backbone", "test_efficientnet", "--pretrained",
            "none", "--size", "64", "--batch-size", "4", "--epochs", "1", "--loader-workers", "1", "--affs-batches",
            "1", "--quiet"]


@pytest.mark.slow
@pytest.mark.realmedia
def test_group_sigterm_during_train_with_a_loader_worker_then_resume_is_exact(shards_small: Path,
                                                                              tmp_path: Path) -> None:
    from fiagen.train.checkpoint import read_checkpoint

    run = tmp_path / "stopped"
    argv = train_argv(shards_small, run)
    stopped = group_stopped(tmp_path, argv, "fiagen.train.loop:sam_step", 3)
    assert_one_stop_line(stopped, [*argv, "--resume"], "after step 3;")
    record = json.loads((run / "run.json").read_text())
    assert record == {"status": "stopped (signal)", "step": 3, "epoch": 0, "signal": "SIGTERM",
                      "steps_total": record["steps_total"]} and record["steps_total"] > 3
    assert read_checkpoint(run / "last.pt")["training"]["step"] == 3
    assert not (run / LOCK_NAME).exists() and not list(run.rglob(TEMP_GLOB))

    assert fiagen(*argv, "--resume").returncode == 0
    straight = fiagen(*train_argv(shards_small, tmp_path / "straight"))
    assert straight.returncode == 0, straight.stderr
    a, b = read_checkpoint(run / "last.pt"), read_checkpoint(tmp_path / "straight" / "last.pt")
    assert all(torch.equal(a["detector"][k], b["detector"][k]) for k in b["detector"]), "weights differ"
    assert [r["loss"] for r in rows(run / "steps.csv")] == [r["loss"] for r in rows(tmp_path / "straight" /
                                                                                     "steps.csv")]


@pytest.mark.slow
@pytest.mark.realmedia
def test_group_sigterm_while_scoring_then_the_rerun_scores_only_the_rest(test_data: Path, tmp_path: Path) -> None:
    ckpt, suite = checkpoint_and_suite(test_data, tmp_path)
    out = tmp_path / "eval"
    argv = ["evaluate", "--suite", f"folder:{suite}", "--ckpt", str(ckpt), "--out", str(out), "--frames", "1",
            "--chunk", "1", "--concurrency", "1", "--quiet"]
    stopped = group_stopped(tmp_path, argv, "fiagen.evaluate.dispatch:_collect", 1)
    assert_one_stop_line(stopped, argv, "with the scores of 1 videos committed;")
    report = json.loads((out / "folder-set" / "report.json").read_text())
    assert report["status"] == "stopped (signal)" and report["videos_committed"] == {"raw": 1}
    assert not list(out.rglob(TEMP_GLOB)) and not (out / LOCK_NAME).exists()

    again = fiagen(*argv)
    assert again.returncode == 0, again.stderr
    raw = json.loads((out / "folder-set" / "report.json").read_text())["conditions"]["raw"]
    assert (raw["videos"], raw["videos_reused"], raw["videos_scored_now"]) == (6, 1, 5)


@pytest.mark.slow
@pytest.mark.realmedia
def test_group_sigterm_in_the_second_stage_of_a_pipeline_then_the_rerun_repeats_no_step(ffpp_root: Path,
                                                                                         tmp_path: Path) -> None:
    """The train stage runs after precompute's Ray session ended: ray.shutdown() had left SIGTERM at its
    default action (the process died at once, without a record, its locks left)."""
    pipeline, out, run = tmp_path / "pipeline.yaml", tmp_path / "out", tmp_path / "run"
    pipeline.write_text(yaml.safe_dump({
        "precompute": {"src": "ff++_c23", "root": str(ffpp_root), "out": str(out), "frames": 4, "limit": 2,
                       "ae": "none", "sr": "none", "quiet": True},
        "train": {"run": str(run), "backbone": "resnet10t", "pretrained": "none", "size": 64, "epochs": 3,
                  "batch_size": 4, "affs_batches": 1, "loader_workers": 0, "quiet": True}}))
    argv = ["-q", "run", str(pipeline)]
    stopped = group_stopped(tmp_path, argv, "fiagen.train.loop:sam_step", 3)
    assert_one_stop_line(stopped, argv, "after step 3;")
    assert json.loads((run / "run.json").read_text())["status"] == "stopped (signal)"
    assert not (run / LOCK_NAME).exists() and not (out / LOCK_NAME).exists()

    again = fiagen(*argv)
    assert again.returncode == 0, again.stderr
    assert [line.split(":")[0] for line in again.stdout.splitlines()] == ["[precompute] complete", "[train] resumed"]
    assert [r["step"] for r in rows(run / "steps.csv")] == [str(k) for k in range(1, 7)]  # each step once
    assert json.loads((run / "run.json").read_text())["status"] == "complete"


@pytest.mark.slow
@pytest.mark.realmedia
def test_group_sigterm_to_two_ray_train_workers_stops_them_at_one_step_then_resume_continues(
        shards_small: Path, tmp_path: Path) -> None:
    """The local Ray's head runs in a session of its own (fiagen.cluster.head): the group's signal reaches the
    driver alone, whose relay stops both workers after the same step, and --resume continues from there.
    Before, the signal also ended the GCS and the raylet, and the driver waited 60 s on the GCS."""
    from fiagen.train.checkpoint import read_checkpoint

    run = tmp_path / "run"
    argv = [*train_argv(shards_small, run)[:-1], "--epochs", "2", "--loader-workers", "0", "--train-workers", "2",
            "--quiet"]
    stopped = group_stopped(tmp_path, argv, when=run / "steps.csv")
    record = json.loads((run / "run.json").read_text())
    step = record["step"]
    assert_one_stop_line(stopped, [*argv, "--resume"], f"after step {step};")
    assert record["status"] == "stopped (signal)" and "workers" not in record and 1 <= step < record["steps_total"]
    assert read_checkpoint(run / "last.pt")["training"]["step"] == step  # rank 0 saved at the agreed step
    assert [int(r["step"]) for r in rows(run / "steps.csv")] == list(range(1, step + 1))
    assert not (run / LOCK_NAME).exists()

    again = fiagen(*argv, "--resume")
    assert again.returncode == 0, again.stderr
    assert json.loads((run / "run.json").read_text())["status"] == "complete"
    total = record["steps_total"]
    assert [int(r["step"]) for r in rows(run / "steps.csv")] == list(range(1, total + 1))  # no step twice
    assert read_checkpoint(run / "last.pt")["training"]["step"] == total
