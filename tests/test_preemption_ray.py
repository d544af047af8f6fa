"""Preemption of the trainings that run in Ray workers (issue 30, item 3): a signal to the driver reaches
them through a relay (fiagen.cluster.relay). The parallel trainings of a variants run stop, the finished
ones are kept and a rerun resumes the rest (in this process, on the session's Ray). Multi-worker Ray Train,
stopped at a step all workers agree on and resumed, is tested with a signal to its process group
(tests/test_preemption_group.py)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from test_preemption import rows

from fiagen.core import stop
from fiagen.core.outputs import LOCK_NAME


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
