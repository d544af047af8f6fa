"""Preemption (issue 23, items 1-3): SIGTERM or SIGINT stops precompute, train and evaluate at a safe point
with a record, one line naming the resume command and exit status 143/130; a resumed train repeats the
uninterrupted run exactly; a full disk in a Ray shard writer is one line with nothing left behind; and
`--pretrained auto` without the network and without the weights cached is one line at once.

The signals are sent by the process to itself from test code (a wrapped step or task), so each test
knows where it lands."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from fiagen.core import stop
from fiagen.core.files import TEMP_GLOB
from fiagen.core.outputs import LOCK_NAME

TESTS = Path(__file__).parent

# `fiagen train ARGS` on synthetic pairs (the datasets of the shards replaced), sending SIGNAL to itself
# right after step AT (0: never): a preemption that lands inside a known step. It runs in tests/, so
# `python -c` finds test_train_run there.
TRAIN = textwrap.dedent("""
    import os, signal, sys
    import torch
    torch.set_num_threads(1)
    from test_train_run import ColourPatchPairs
    from fiagen.train import loop

    loop.run_datasets = lambda cfg: (ColourPatchPairs(24, 32, seed=1), ColourPatchPairs(8, 32, seed=2))
    at, sig, real, calls = int(os.environ["AT"]), int(os.environ["SIGNAL"]), loop.sam_step, []

    def step(*args, **kwargs):
        calls.append(1)
        if len(calls) == at:
            os.kill(os.getpid(), sig)  # lands inside the step: the run ends this step, then stops
            if os.environ.get("TWICE"):
                os.kill(os.getpid(), sig)
        return real(*args, **kwargs)

    loop.sam_step = step
    from fiagen.cli.main import main
    sys.argv = ["fiagen", *sys.argv[1:]]
    main()
""")


def fiagen_train(run: Path, *extra: str, at: int = 0, sig: int = signal.SIGTERM, twice: bool = False
                 ) -> subprocess.CompletedProcess:
    (run.parent / "manifest.parquet").touch()  # passes the argument check; the datasets are replaced
    argv = ["train", "--shards", str(run.parent), "--run", str(run), "--backbone", "test_efficientnet",
            "--pretrained", "none", "--size", "32", "--batch-size", "4", "--epochs", "2", "--loader-workers", "0",
            "--affs-batches", "1", "--quiet", *extra]
    env = {**os.environ, "AT": str(at), "SIGNAL": str(int(sig)), "OMP_NUM_THREADS": "1", "TWICE": "1" if twice else ""}
    return subprocess.run([sys.executable, "-c", TRAIN, *argv], capture_output=True, text=True, env=env, timeout=300,
                          cwd=TESTS)


def messages(proc: subprocess.CompletedProcess) -> str:
    """stderr without the warning about random init."""
    return "".join(line for line in proc.stderr.splitlines(keepends=True) if "--pretrained none:" not in line)


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


TIMING = {"pairs_per_s", "data_wait_s", "data_wait_fraction", "seconds"}


def without_timing(table: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in table]


@pytest.mark.slow
def test_sigterm_mid_epoch_then_resume_repeats_the_uninterrupted_run_exactly(tmp_path: Path) -> None:
    from fiagen.train.checkpoint import read_checkpoint

    straight = fiagen_train(tmp_path / "straight")
    assert straight.returncode == 0, straight.stderr
    # 6 steps an epoch; the signal lands in step 4 (no save is due there: --save-every is off)
    run = tmp_path / "stopped"
    stopped = fiagen_train(run, at=4)
    assert stopped.returncode == 143, stopped.stderr
    assert messages(stopped).count("\n") == 1, stopped.stderr
    assert messages(stopped).startswith("fiagen: stopped by SIGTERM after step 4; resume with: fiagen train --shards ")
    assert stopped.stderr.rstrip().endswith(f"--run {run} --backbone test_efficientnet --pretrained none --size 32 "
                                            f"--batch-size 4 --epochs 2 --loader-workers 0 --affs-batches 1 "
                                            f"--quiet --resume")
    assert read_checkpoint(run / "last.pt")["training"]["step"] == 4
    assert json.loads((run / "run.json").read_text()) == {"status": "stopped (signal)", "step": 4, "epoch": 0,
                                                          "steps_total": 12, "signal": "SIGTERM"}
    assert not (run / LOCK_NAME).exists() and not list(run.rglob(TEMP_GLOB))
    assert not (run / "metrics.csv").exists() or rows(run / "metrics.csv") == []

    resumed = fiagen_train(run, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((run / "run.json").read_text())["status"] == "complete"
    a = read_checkpoint(run / "last.pt")
    b = read_checkpoint(tmp_path / "straight" / "last.pt")
    assert a["detector"].keys() == b["detector"].keys()
    assert all(torch.equal(a["detector"][k], b["detector"][k]) for k in a["detector"]), "weights differ"
    assert without_timing(rows(run / "metrics.csv")) == without_timing(rows(tmp_path / "straight" / "metrics.csv"))
    assert without_timing(rows(run / "steps.csv")) == without_timing(rows(tmp_path / "straight" / "steps.csv"))


@pytest.mark.slow
def test_sigint_at_the_end_of_an_epoch_stops_after_its_validation_and_a_second_signal_at_once(tmp_path: Path) -> None:
    from fiagen.train.checkpoint import read_checkpoint

    run = tmp_path / "ctrl_c"
    stopped = fiagen_train(run, at=6, sig=signal.SIGINT)  # the last step of epoch 1: validated, then stopped
    assert stopped.returncode == 130, stopped.stderr
    assert messages(stopped).startswith("fiagen: stopped by SIGINT after step 6; resume with: fiagen train ")
    assert messages(stopped).count("\n") == 1 and stopped.stderr.rstrip().endswith("--resume")
    assert [r["epoch"] for r in rows(run / "metrics.csv")] == ["1"] and rows(run / "metrics.csv")[0]["val_auc"]
    assert read_checkpoint(run / "last.pt")["training"]["step"] == 6

    twice = tmp_path / "twice"
    at_once = fiagen_train(twice, at=2, twice=True)
    assert at_once.returncode == 143, at_once.stderr
    assert messages(at_once).startswith("fiagen: stopped by SIGTERM at once; resume with: fiagen train ")
    assert messages(at_once).count("\n") == 1
    assert at_once.stderr.rstrip().endswith("--quiet")  # no last.pt yet: the same command starts it again
    assert not (twice / LOCK_NAME).exists() and not list(twice.rglob(TEMP_GLOB))


def test_stop_handlers_flag_inside_safe_points_and_raise_outside() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with stop.handle_signals():
        with pytest.raises(stop.Stopped) as outside:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
        assert outside.value.code == 143 and str(outside.value) == "stopped by SIGTERM"
        with stop.safe_points():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.1)
            assert stop.requested() == signal.SIGINT
            with pytest.raises(stop.Stopped) as second:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(1)
            assert second.value.code == 130 and second.value.detail == "at once"
        stopped = stop.Stopped(signal.SIGTERM, "after step 3", ("--resume",), "train")
        line = stopped.resume_line(["train", "--run", "a b"])
        assert line == "stopped by SIGTERM after step 3; resume with: fiagen train --run 'a b' --resume"
        assert stopped.resume_line(["run", "p.yaml"]).endswith("resume with: fiagen run p.yaml")  # resumes itself
    assert signal.getsignal(signal.SIGTERM) is before and stop.requested() is None


# ---------------------------------------------------------------------------------------------- precompute

def frames_source(test_data: Path, root: Path, n: int) -> Path:
    """A folder source of `n` one-frame images (one shard each with --shard-size 1)."""
    src = root / "src" / "train"
    src.mkdir(parents=True)
    for k in range(n):
        (src / f"img{k}.png").symlink_to(test_data / "ffpp_frames" / "ex_original.png")
    return src.parent


def precompute_argv(src: Path, out: Path) -> list[str]:
    return [str(Path(sys.executable).with_name("fiagen")), "precompute", "--src", f"folder:{src}", "--out", str(out),
            "--frames", "1", "--shard-size", "1", "--ae", "none", "--sr", "none", "--concurrency", "1", "--quiet"]


@pytest.mark.slow
@pytest.mark.realmedia
def test_sigterm_during_precompute_finishes_the_shards_in_flight_and_records_the_stop(
        test_data: Path, tmp_path: Path) -> None:
    src, out = frames_source(test_data, tmp_path, 8), tmp_path / "out"
    argv = precompute_argv(src, out)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not list(out.glob("shards/train/*.sha256")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)  # to the driver only, as a scheduler does
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert err.count("\n") == 1 and "SIGTERM received" not in err and "PC: @" not in err, err
    assert err.startswith("fiagen: stopped by SIGTERM with ") and " of 8 shards complete; resume with: " in err
    assert err.rstrip().endswith(" ".join(["fiagen", *argv[1:]]))
    report = json.loads((out / "run.json").read_text())
    assert report["status"] == "stopped (signal)" and report["signal"] == "SIGTERM"
    complete = report["shards_complete"]
    assert 1 <= len(complete) < 8 and f" {len(complete)} of 8 " in err
    assert sorted(p.relative_to(out).as_posix() for p in out.glob("shards/train/*.h5")) == complete
    assert not list(out.rglob(TEMP_GLOB)) and not (out / LOCK_NAME).exists()

    again = subprocess.run(argv, capture_output=True, text=True, timeout=300)  # the resume command
    assert again.returncode == 0, again.stderr
    assert json.loads((out / "run.json").read_text())["status"] == "complete"
    assert f"({8 - len(complete)} written, {len(complete)} reused)" in again.stdout


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 700 kB tmpfs (room for about three one-frame shards), or a skip where mounting is not allowed."""
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=700k", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.mark.slow
@pytest.mark.realmedia
def test_a_full_disk_in_a_ray_shard_writer_is_one_line_no_retry_and_nothing_left(
        test_data: Path, tmp_path: Path, small_disk: Path) -> None:
    src, out = frames_source(test_data, tmp_path, 8), small_disk / "out"
    proc = subprocess.run(precompute_argv(src, out), capture_output=True, text=True, timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith(f"fiagen: error: no space left on {out}/shards/")
    assert " of 8 shards are complete" in proc.stderr and "free some space" in proc.stderr
    for junk in ("SIGSEGV", "retries remaining", "worker died", "Traceback"):
        assert junk not in output, output
    report = json.loads((out / "run.json").read_text())
    assert report["status"].startswith("stopped: no space left on")
    assert 1 <= len(report["shards_complete"]) < 8 and report["shards_unfinished"]
    assert sorted(p.relative_to(out).as_posix() for p in out.glob("shards/train/*.h5")) == report["shards_complete"]
    assert not list(out.rglob(TEMP_GLOB)) and not (out / LOCK_NAME).exists()


# ---------------------------------------------------------------------------------------------- evaluate

def checkpoint_and_suite(test_data: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A random resnet10t checkpoint (64 px) and a folder suite of 6 images, 3 real and 3 fake."""
    from fiagen.train.checkpoint import save_checkpoint
    from fiagen.train.model import build_detector

    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "best.pt", build_detector("resnet10t", 64), epoch=1, val_auc=0.5,
                           train_data="unit")
    suite = tmp_path / "set"
    for k in range(6):
        name, kind = ("ex_original.png", "real") if k % 2 else ("ex_deepfakes.png", "fake")
        (suite / kind).mkdir(parents=True, exist_ok=True)
        (suite / kind / f"{k}.png").symlink_to(test_data / "ffpp_frames" / name)
    return ckpt, suite


@pytest.mark.slow
@pytest.mark.realmedia
def test_sigterm_while_scoring_keeps_the_committed_scores_and_records_the_stop(
        test_data: Path, ray_local, tmp_path: Path, capsys: pytest.CaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from fiagen.cli.main import main
    from fiagen.evaluate import dispatch

    ckpt, suite = checkpoint_and_suite(test_data, tmp_path)
    real, collected = dispatch._collect, []

    def collect_then_sigterm(*args, **kwargs):  # a scheduler's SIGTERM right after the first video is scored
        real(*args, **kwargs)
        collected.append(1)
        if len(collected) == 1:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(dispatch, "_collect", collect_then_sigterm)
    out = tmp_path / "eval"
    argv = ["evaluate", "--suite", f"folder:{suite}", "--ckpt", str(ckpt), "--out", str(out), "--frames", "1",
            "--chunk", "1", "--concurrency", "1", "--quiet"]
    monkeypatch.setattr(sys, "argv", ["fiagen", *argv])
    with pytest.raises(SystemExit) as code:
        main()
    err = capsys.readouterr().err
    assert code.value.code == 143 and err.count("\n") == 1, err
    assert err == (f"fiagen: stopped by SIGTERM with the scores of 1 videos committed; resume with: fiagen "
                   f"{' '.join(argv)}\n")
    report = json.loads((out / "folder-set" / "report.json").read_text())
    assert report["status"] == "stopped (signal)" and report["signal"] == "SIGTERM"
    assert report["videos_committed"] == {"raw": 1}
    assert not list(out.rglob(TEMP_GLOB)) and not (out / LOCK_NAME).exists()
    assert signal.getsignal(signal.SIGTERM) is not stop._handler  # the handlers are restored

    monkeypatch.setattr(dispatch, "_collect", real)
    with pytest.raises(SystemExit) as code:  # the resume command scores the other five
        main()
    assert code.value.code == 0, capsys.readouterr().err
    report = json.loads((out / "folder-set" / "report.json").read_text())
    assert report["status"] == "complete" and report["conditions"]["raw"]["videos"] == 6
    assert report["conditions"]["raw"]["videos_reused"] == 1 and report["conditions"]["raw"]["videos_scored_now"] == 5
