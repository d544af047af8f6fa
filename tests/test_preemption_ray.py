"""Preemption of the trainings that run in Ray workers (issue 30, item 3): a signal to the driver reaches
them through a relay (fiagen.cluster.relay). Multi-worker Ray Train stops at a step all workers agree
on, with last.pt there, and `--resume` continues it; the parallel trainings of a variants run stop, the
finished ones are kept and a rerun resumes the rest. In this process, on the session's Ray."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from test_preemption import rows

from fiagen.core import stop
from fiagen.core.outputs import LOCK_NAME


def sigterm_when(path: Path, n_rows: int) -> threading.Thread:
    """SIGTERM to this process once the CSV `path` holds `n_rows` rows (a preemption while workers train)."""
    def watch() -> None:
        deadline = time.time() + 300
        while time.time() < deadline and not (path.is_file() and len(path.read_text().splitlines()) > n_rows):
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


@pytest.mark.slow
def test_two_ray_train_workers_stop_at_one_step_and_resume_continues(
        shards_small: Path, ray_local, tmp_path: Path, fiagen_main: Callable[[list[str]], tuple[int, str, str]]
) -> None:
    from fiagen.train.checkpoint import read_checkpoint

    run = tmp_path / "ray"
    argv = ["train", "--shards", str(shards_small), "--run", str(run), "--backbone", "test_efficientnet",
            "--pretrained", "none", "--size", "64", "--batch-size", "4", "--epochs", "3", "--loader-workers", "0",
            "--affs-batches", "2", "--quiet", "--train-workers", "2"]
    sigterm_when(run / "steps.csv", 2)
    code, _, err = fiagen_main(argv)
    record = json.loads((run / "run.json").read_text())
    step, total = record["step"], record["steps_total"]
    assert code == 143 and record["status"] == "stopped (signal)" and 2 <= step < total, (err, record)
    assert [line for line in err.splitlines() if "warning" not in line] == [
        f"fiagen: stopped by SIGTERM after step {step}; resume with: fiagen {' '.join(argv)} --resume"]
    assert read_checkpoint(run / "last.pt")["training"]["step"] == step  # rank 0 saved at the agreed step
    assert [int(r["step"]) for r in rows(run / "steps.csv")] == list(range(1, step + 1))
    assert not (run / LOCK_NAME).exists()

    code, _, err = fiagen_main([*argv, "--resume"])
    assert code == 0, err
    assert json.loads((run / "run.json").read_text())["status"] == "complete"
    assert [int(r["step"]) for r in rows(run / "steps.csv")] == list(range(1, total + 1))  # no step twice
    assert read_checkpoint(run / "last.pt")["training"]["step"] == total


@pytest.mark.slow
def test_parallel_trainings_of_a_variants_run_stop_keep_the_finished_and_resume_the_rest(
        fia_shards: Path, ray_local, tmp_path: Path) -> None:
    from fiagen.train.checkpoint import read_checkpoint
    from fiagen.workflow.plan import plan_variants
    from fiagen.workflow.variants import _train_parallel

    plan = plan_variants({
        "train": {"shards": str(fia_shards), "run": str(tmp_path / "runs"), "backbone": "resnet10t",
                  "pretrained": "none", "size": 64, "epochs": 1, "batch_size": 4, "affs_batches": 1,
                  "loader_workers": 0, "quiet": True},
        "variants": [{"name": "quick"}, {"name": "long", "epochs": 12, "val_every": 12}], "seeds": [0]})
    quick, long = (Path(r.train.run) for r in plan.runs)
    echoed: list[str] = []

    def echo(line: str) -> None:  # the quick one finished: a preemption while the long one trains
        echoed.append(line)
        if len(echoed) == 1:
            os.kill(os.getpid(), signal.SIGTERM)

    with stop.handle_signals(), pytest.raises(stop.Stopped) as stopped:
        _train_parallel(plan.runs, 0, echo)
    assert str(stopped.value) == "stopped by SIGTERM with 1 of 2 trainings finished"
    record = json.loads((long / "run.json").read_text())
    step, total = record["step"], record["steps_total"]
    assert record["status"] == "stopped (signal)" and 1 <= step < total, record
    assert echoed == [f"[train quick/seed0] ran: {echoed[0].split(': ', 1)[1]}",
                      f"[train long/seed0] stopped: stopped by SIGTERM after step {step} -> {long}"]
    assert read_checkpoint(long / "last.pt")["training"]["step"] == step
    assert json.loads((quick / "run.json").read_text())["status"] == "complete"
    assert not (long / LOCK_NAME).exists() and not (quick / LOCK_NAME).exists()

    done = _train_parallel(plan.runs, 0, lambda _: None)  # the rerun: the quick one kept, the long one resumed
    assert {k: o.status for k, o in done.items()} == {"quick/seed0": "complete", "long/seed0": "resumed"}
    assert [int(r["step"]) for r in rows(long / "steps.csv")] == list(range(1, total + 1))
    assert json.loads((long / "run.json").read_text())["status"] == "complete"
