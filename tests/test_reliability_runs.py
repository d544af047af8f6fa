"""Runs that meet a fault (issue 14): two runs on one folder (locks, a dead holder, no flock), a resume
inside an epoch, bad arguments refused in under two seconds, a training warning as one line."""

from __future__ import annotations

import csv
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
from click.testing import CliRunner
from in_process_cli import run_cli
from test_train_run import ColourPatchPairs

from fiagen.cli.main import cli
from fiagen.core.errors import FiagenError
from fiagen.core.outputs import LOCK_NAME, FolderInUse, hold_folder
from fiagen.train.checkpoint import read_checkpoint
from fiagen.train.config import TrainConfig
from fiagen.train.context import Context
from fiagen.train.loop import TrainResult, run_training

FIAGEN = str(Path(sys.executable).with_name("fiagen"))


# ---------------------------------------------------------------------------------------------- 4 locks

HOLD = "import sys, time\nfrom fiagen.core.outputs import hold_folder\nwith hold_folder(sys.argv[1]):\n" \
       "    print('held', flush=True)\n    time.sleep(60)\n"


def test_a_second_run_on_a_held_folder_stops_at_once_and_a_dead_holder_is_taken_over(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.png").write_bytes(b"x")
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        for argv in (["precompute", "--src", f"folder:{tmp_path / 'src'}", "--out", str(out), "--ae", "none",
                      "--sr", "none"],
                     ["train", "--shards", str(tmp_path / "src"), "--run", str(out), "--backbone", "test_efficientnet",
                      "--pretrained", "none"]):
            start = time.perf_counter()
            code, err = run_cli(argv, capsys, monkeypatch)
            assert code == 2 and err.count("\n") == 1, err
            assert f"{out} is in use by another fiagen run (pid {holder.pid} on host {socket.gethostname()}" in err
            assert time.perf_counter() - start < 30  # no Ray, no work: refused before anything starts
        assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]  # nothing written by the refused runs
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with hold_folder(out):  # its holder died without releasing it (kill -9): taken over, with a warning
        assert json.loads((out / LOCK_NAME).read_text())["pid"] == os.getpid()
    err = capsys.readouterr().err
    assert err.startswith(f"fiagen: warning: {out}: taking over the lock") and f"pid {holder.pid}" in err
    assert not (out / LOCK_NAME).exists()


def test_without_flock_the_record_decides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture, fiagen_log: None) -> None:
    import fcntl

    def unsupported(fd: int, op: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", unsupported)
    host = socket.gethostname()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": sleeper.pid, "host": host, "started": "then"}))
        with pytest.raises(FolderInUse, match=f"pid {sleeper.pid} on host {host}"):
            with hold_folder(tmp_path):
                pass
        (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": dead.pid, "host": host, "started": "then"}))
        with hold_folder(tmp_path):
            assert "taking over" in capsys.readouterr().err
    finally:
        sleeper.kill()
        sleeper.wait()


def test_hold_folder_removes_only_stale_temporaries_and_refuses_files(tmp_path: Path) -> None:
    stale = [tmp_path / "a/.x.h5.fiagen-1.tmp", tmp_path / ".run.json.fiagen-2.tmp"]
    kept = [tmp_path / "a/x.h5", tmp_path / "a/notes.tmp", tmp_path / ".hidden"]
    for path in stale + kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    with hold_folder(tmp_path):
        pass
    assert not any(p.exists() for p in stale) and all(p.exists() for p in kept)
    with pytest.raises(FiagenError, match="is a file"):
        with hold_folder(tmp_path / "a/x.h5"):
            pass


# ---------------------------------------------------------------------------------------------- 5 smaller things

def test_a_resumed_epoch_logs_the_same_averages_as_the_uninterrupted_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_torch_thread: None) -> None:
    from fiagen.train import loop

    data = (ColourPatchPairs(24, 32, seed=1), ColourPatchPairs(8, 32, seed=2))
    common = dict(shards="synthetic", backbone="test_efficientnet", pretrained="none", size=32, batch_size=4,
                  epochs=2, loader_workers=0, affs_batches=1, save_every=2, quiet=True)
    run_training(TrainConfig(run=str(tmp_path / "straight"), **common), Context(), data=data)

    real_step, calls = loop.sam_step, []

    def killed_at_step_4(*args, **kwargs):  # after last.pt was saved at step 2, mid-epoch
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    monkeypatch.setattr(loop, "sam_step", killed_at_step_4)
    with pytest.raises(KeyboardInterrupt):
        run_training(TrainConfig(run=str(tmp_path / "killed"), **common), Context(), data=data)
    monkeypatch.setattr(loop, "sam_step", real_step)
    assert read_checkpoint(tmp_path / "killed" / "last.pt")["training"]["step"] == 2
    run_training(TrainConfig(run=str(tmp_path / "killed"), resume=True, **common), Context(), data=data)

    def epochs(run: str) -> list[dict[str, str]]:
        with (tmp_path / run / "metrics.csv").open() as fh:
            return list(csv.DictReader(fh))

    got, want = epochs("killed"), epochs("straight")
    assert [r["epoch"] for r in got] == ["1", "2"]
    for a, b in zip(got, want, strict=False):
        for key in ("step", "train_loss", "train_bce", "train_pcr", "train_icr", "val_auc", "val_loss", "lr"):
            assert float(a[key]) == pytest.approx(float(b[key]), rel=1e-5, abs=1e-7), (a["epoch"], key)


def test_argument_errors_come_in_under_two_seconds(tiny_ckpt: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pt").write_bytes(b"x")
    cases = [
        (["evaluate", "--suite", "cdf_v2", "--root", str(tmp_path), "--ckpt", str(tiny_ckpt)],
         "has no List_of_testing_videos.txt"),
        (["bench", "--suite", "ff++", "--root", str(tmp_path), "--ckpt", str(tmp_path / "none.pt")],
         "checkpoint not found"),
        (["train", "--shards", str(tmp_path), "--run", str(run)], "already holds a run"),
        (["precompute", "--out", str(tiny_ckpt)], "is a file; the output must be a folder"),
        (["evaluate", "--suite", "ff++", "--out", str(tiny_ckpt)], "is a file; the output must be a folder"),
    ]
    env = {**os.environ, "FIAGEN_DATA": ""}
    for argv, message in cases:
        start = time.perf_counter()
        proc = subprocess.run([FIAGEN, *argv], capture_output=True, text=True, env=env, timeout=60)
        seconds = time.perf_counter() - start
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and message in proc.stderr, (argv, proc.stderr)
        assert seconds < 2.0, (argv, seconds)


def test_a_training_warning_is_one_line_without_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fiagen.train import entry

    def warn_and_finish(cfg: TrainConfig) -> TrainResult:
        warnings.warn("the shards hold no AE/SR reconstructions", stacklevel=2)
        return TrainResult(Path(cfg.run), Path(cfg.run) / "last.pt", None, None, 1, 1, 0)

    monkeypatch.setattr(entry, "train", warn_and_finish)
    (tmp_path / "manifest.parquet").write_bytes(b"")  # a precompute output, as train checks before it runs
    result = CliRunner().invoke(cli, ["train", "--shards", str(tmp_path), "--run", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert "fiagen: warning: the shards hold no AE/SR reconstructions\n" in result.stderr
    assert "warnings.warn" not in result.output and ".py:" not in result.stderr
