"""Faults injected on purpose (issue 14): damaged checkpoints, a full disk (in the driver and in a Ray
worker), index paths that leave the dataset root, undecodable frames, two runs on one folder, a resume
inside an epoch, bad arguments, warnings. Each test reproduces the fault and checks what the user gets:
one error line, the run's record written, nothing outside the root opened, nothing stale left."""

from __future__ import annotations

import csv
import dataclasses
import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from test_train_run import ColourPatchPairs

from fiagen.cli.main import cli, main
from fiagen.core import files
from fiagen.core.errors import FiagenError
from fiagen.core.files import TEMP_GLOB, DiskFullError
from fiagen.core.outputs import LOCK_NAME, FolderInUse, hold_folder
from fiagen.manifests.suites import resolve_suite
from fiagen.train.checkpoint import CheckpointDamaged, CheckpointError, read_checkpoint, save_checkpoint
from fiagen.train.config import TrainConfig
from fiagen.train.context import Context
from fiagen.train.loop import TrainResult, run_training
from fiagen.train.model import build_detector

FIAGEN = str(Path(sys.executable).with_name("fiagen"))


def run_cli(argv: list[str], capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    """(exit code, stderr) of `fiagen ARGV` run in this process."""
    monkeypatch.setattr(sys, "argv", ["fiagen", *argv])
    with pytest.raises(SystemExit) as code:
        main()
    return code.value.code, capsys.readouterr().err


def no_space(when: str):
    """An `_fsync` for fiagen.core.files that finds the disk full for temporaries of files named `when`*."""
    real = files._fsync

    def fsync(path: Path, directory: bool = False) -> None:
        if path.name.startswith(f".{when}"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, directory)
    return fsync


def temporaries(folder: Path) -> list[Path]:
    return list(folder.rglob(TEMP_GLOB))


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    det = build_detector("resnet10t", 64)
    torch.nn.init.normal_(det.net.get_classifier().weight, std=0.1)
    return save_checkpoint(tmp_path_factory.mktemp("run") / "best.pt", det, epoch=1, val_auc=0.8, train_data="unit")


# ---------------------------------------------------------------------------------------------- 1 checkpoints

def flip(path: Path, inside: torch.Tensor) -> None:
    """Flip 64 bytes of `path` where the bytes of the tensor `inside` are stored."""
    data = bytearray(path.read_bytes())
    at = data.find(inside.numpy().tobytes()[:256])
    assert at > 0
    data[at:at + 64] = bytes(b ^ 0xFF for b in data[at:at + 64])
    path.write_bytes(bytes(data))


class Pickled:
    """A Python object: a checkpoint holding it must be refused, never unpickled."""


def test_a_damaged_checkpoint_is_one_error_line_and_resume_says_what_can_be_used(
        tiny_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    damaged = tmp_path / "best.pt"
    shutil.copy(tiny_ckpt, damaged)
    flip(damaged, read_checkpoint(tiny_ckpt)["detector"]["net.conv1.0.weight"])
    with pytest.raises(CheckpointDamaged, match="is damaged"):
        read_checkpoint(damaged)
    (tmp_path / "set" / "real").mkdir(parents=True)
    (tmp_path / "set" / "fake").mkdir()
    shutil.copy(tiny_ckpt, tmp_path / "set" / "real" / "x.png")  # any file: the error comes first
    code, err = run_cli(["evaluate", "--suite", f"folder:{tmp_path / 'set'}", "--ckpt", str(damaged), "--quiet"],
                        capsys, monkeypatch)
    assert code == 2 and err.count("\n") == 1 and err.startswith(f"fiagen: error: {damaged} is damaged")

    # --resume from a damaged last.pt: the error says that best.pt is intact but cannot be resumed from
    run = tmp_path / "run"
    data = (ColourPatchPairs(8, 32, seed=1), ColourPatchPairs(4, 32, seed=2))
    cfg = TrainConfig(shards="synthetic", run=str(run), backbone="test_efficientnet", pretrained="none", size=32,
                      batch_size=4, epochs=1, loader_workers=0, lambdas=(1.0, 0.0, 0.0), quiet=True)
    run_training(cfg, Context(), data=data)
    flip(run / "last.pt", read_checkpoint(run / "last.pt")["detector"]["net.conv_stem.weight"])
    resume = dataclasses.replace(cfg, epochs=2, resume=True)
    with pytest.raises(CheckpointDamaged) as damage:
        run_training(resume, Context(), data=data)
    assert f"{run / 'last.pt'} is damaged" in str(damage.value)
    assert f"{run / 'best.pt'} (epoch 1, val AUC" in str(damage.value) and "no optimizer state" in str(damage.value)

    # a pickle of Python objects is refused, naming the object, without torch's advice to unpickle it anyway
    torch.save({"format": "fiagen.detector", "x": Pickled()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError) as refused:
        read_checkpoint(tmp_path / "evil.pt")
    assert "Pickled" in str(refused.value) and "weights_only=False" not in str(refused.value)
    assert "\n" not in str(refused.value)


# ---------------------------------------------------------------------------------------------- 2 full disk

def test_a_full_disk_while_training_is_one_line_and_keeps_the_last_good_checkpoint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_torch_thread: None) -> None:
    run = tmp_path / "run"
    (run / ".old.pt.fiagen-123.tmp").parent.mkdir(parents=True)
    (run / ".old.pt.fiagen-123.tmp").write_bytes(b"x" * 100)  # left by an earlier run that was killed
    data = (ColourPatchPairs(8, 32, seed=1), ColourPatchPairs(4, 32, seed=2))
    cfg = TrainConfig(shards="synthetic", run=str(run), backbone="test_efficientnet", pretrained="none", size=32,
                      batch_size=4, epochs=2, loader_workers=0, lambdas=(1.0, 0.0, 0.0), quiet=True, save_every=1)
    real, saves = files._fsync, []

    def full_at_the_third_last_pt(path: Path, directory: bool = False) -> None:  # step 1, step 2 (epoch end), step 3
        if path.name.startswith(".last.pt"):
            saves.append(path)
        if len(saves) == 3 and path.name.startswith(".last.pt"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, directory)

    monkeypatch.setattr(files, "_fsync", full_at_the_third_last_pt)
    with hold_folder(run), pytest.raises(DiskFullError) as full:
        run_training(cfg, Context(), data=data)
    message = str(full.value)
    assert "\n" not in message and message.startswith(f"no space left on {run / 'last.pt'} (")
    assert "free, about " in message and "needed); training stopped at step" in message
    assert "holds step 2 (epoch 1)" in message and "rerun with --resume" in message
    assert not temporaries(run)  # the failed write's temporary, and the stale one of the earlier run, are gone
    assert read_checkpoint(run / "last.pt")["training"]["step"] == 2  # the last good save is intact
    with (run / "metrics.csv").open() as fh:
        assert [r["epoch"] for r in csv.DictReader(fh)] == ["1"]  # the record: every finished epoch


@pytest.mark.realmedia
def test_a_full_disk_in_a_ray_worker_stops_precompute_with_one_line_and_run_json(
        test_data: Path, ray_local, tmp_path: Path, capsys: pytest.CaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import ray

    from fiagen.precompute import entry as stage

    src = tmp_path / "src" / "train"
    src.mkdir(parents=True)
    for image in ("real_images/skimage_astronaut.png", "real_images/aflw-test.jpg", "ffpp_frames/ex_original.png"):
        (src / Path(image).name).symlink_to(test_data / image)
    out = tmp_path / "out"
    write = stage._write_remote

    @ray.remote(num_cpus=1)
    def write_on_a_full_disk(*args):
        import resource

        import h5py

        from fiagen.precompute.entry import _write_remote

        if args[1].shard_id != "00002":
            return _write_remote._function(*args)
        # the third shard finds no room while HDF5 writes it: past 64 kB every write fails (EFBIG; SIGXFSZ,
        # which would kill the worker, ignored). HDF5 writing into such a file kept it open (its deleted
        # temporary's blocks taken) and crashed in its flush when the process ended (SIGSEGV).
        limit, sigxfsz = resource.getrlimit(resource.RLIMIT_FSIZE), signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64_000, limit[1]))
        before = len(h5py.h5f.get_obj_ids(types=h5py.h5f.OBJ_ALL & ~h5py.h5f.OBJ_DATATYPE))
        try:
            return _write_remote._function(*args)
        finally:  # restored: the worker serves later tests
            resource.setrlimit(resource.RLIMIT_FSIZE, limit)
            signal.signal(signal.SIGXFSZ, sigxfsz)
            left = len(h5py.h5f.get_obj_ids(types=h5py.h5f.OBJ_ALL & ~h5py.h5f.OBJ_DATATYPE)) - before
            if left:
                raise RuntimeError(f"the failed shard left {left} HDF5 objects open")  # noqa: B012

    monkeypatch.setattr(stage, "_write_remote", write_on_a_full_disk)
    argv = ["precompute", "--src", f"folder:{tmp_path / 'src'}", "--out", str(out), "--frames", "1",
            "--shard-size", "1", "--ae", "none", "--sr", "none", "--quiet"]
    code, err = run_cli(argv, capsys, monkeypatch)
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"fiagen: error: no space left on {out / 'shards/train/00002.h5'} (") and "needed)" in err
    assert "2 of 3 shards are complete" in err
    report = json.loads((out / "run.json").read_text())
    assert report["status"].startswith("stopped: no space left on")
    assert report["shards_complete"] == ["shards/train/00000.h5", "shards/train/00001.h5"]
    assert report["shards_unfinished"] == ["shards/train/00002.h5"]
    assert not temporaries(out) and not (out / LOCK_NAME).exists()

    monkeypatch.setattr(stage, "_write_remote", write)
    (out / "shards/train/.00002.h5.fiagen-99999.tmp").write_bytes(b"half a shard of a killed run")
    before = (out / "shards/train/00000.h5").stat().st_mtime_ns
    code, err = run_cli(argv, capsys, monkeypatch)
    assert code == 0, err
    assert json.loads((out / "run.json").read_text())["status"] == "complete"
    assert (out / "shards/train/00000.h5").stat().st_mtime_ns == before  # complete shards are not redone
    assert not temporaries(out)


@pytest.mark.realmedia
def test_a_full_disk_while_scoring_is_one_line_and_report_json_says_what_is_committed(
        test_data: Path, tiny_ckpt: Path, ray_local, tmp_path: Path, capsys: pytest.CaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    suite = tmp_path / "set"
    for name, kind in (("ex_original.png", "real"), ("ex_deepfakes.png", "fake"), ("ex_neuraltextures.png", "fake")):
        (suite / kind).mkdir(parents=True, exist_ok=True)
        (suite / kind / name).symlink_to(test_data / "ffpp_frames" / name)
    out = tmp_path / "eval"
    monkeypatch.setattr(files, "_fsync", no_space("part-00001"))  # the second chunk does not fit
    argv = ["evaluate", "--suite", f"folder:{suite}", "--ckpt", str(tiny_ckpt), "--out", str(out), "--frames", "1",
            "--chunk", "1", "--quiet"]
    code, err = run_cli(argv, capsys, monkeypatch)
    folder = out / "folder-set"
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"fiagen: error: no space left on {folder / 'frames.parquet/part-00001.parquet'} (")
    assert "scores of 1 videos are committed" in err
    report = json.loads((folder / "report.json").read_text())
    assert report["status"].startswith("stopped: no space left") and report["videos_committed"] == {"raw": 1}
    assert not temporaries(out)


# ---------------------------------------------------------------------------------------------- 3 paths

@pytest.mark.realmedia
def test_deepfakebench_paths_stay_inside_the_root_and_a_bad_frame_is_skipped(
        test_data: Path, tiny_ckpt: Path, ray_local, tmp_path: Path) -> None:
    from fiagen.evaluate.runner import EvalConfig, evaluate
    from fiagen.evaluate.store import read_scores

    root, outside = tmp_path / "rgb", tmp_path / "secret"
    frames = root / "FF/original/000"
    frames.mkdir(parents=True)
    outside.mkdir()
    shutil.copy(test_data / "ffpp_frames/ex_original.png", frames / "000.png")
    shutil.copy(test_data / "ffpp_frames/ex_original.png", frames / "002.png")
    (frames / "001.png").write_bytes(b"\x89PNG not an image")
    (frames / "009.png").write_bytes(b"\x89PNG not an image either")
    shutil.copy(test_data / "ffpp_frames/ex_deepfakes.png", outside / "x.png")
    shutil.copy(test_data / "ffpp_frames/ex_deepfakes.png", root / "FF/fake.png")
    escape = "FF/original/../../../secret/x.png"  # leaves the root
    absolute = str(outside / "x.png")  # an absolute path: mapped under the root, where it does not exist
    index = {"FF": {
        "FF-real": {"test": {"000": {"frames": ["FF/original/000/000.png", "FF/original/000/001.png",
                                                "FF/original/000/002.png", escape]},
                             "009": {"frames": ["FF/original/000/009.png"]}}},
        "FF-DF": {"test": {"010": {"frames": [escape, absolute]}, "011": {"frames": ["FF/fake.png"]}}}}}
    file = root / "ff.json"
    file.write_text(json.dumps(index))
    listing = resolve_suite(f"deepfakebench:{file}", root)
    assert listing.refused == [escape, escape]
    opened = [Path(f) for it in listing.items for f in it.frames]
    assert opened and all(f.is_relative_to(root) for f in opened)
    assert [m.video_id for m in listing.missing] == ["FF-DF/010"]  # its absolute frame is not under the root

    result = evaluate(EvalConfig(suites=(f"deepfakebench:{file}",), root=str(root), ckpt=str(tiny_ckpt),
                                 out=str(tmp_path / "eval"), frames=8, quiet=True))
    assert result.report["paths_refused"] == 2 and result.report["refused"] == [escape, escape]
    _, videos = read_scores(result.folder)
    v = videos.set_index("video")
    assert v.loc["FF-real/000", "status"] == "ok" and v.loc["FF-real/000", "frames_undecodable"] == 1
    assert v.loc["FF-real/000", "frames_sampled"] == 3 and v.loc["FF-real/000", "frames_with_face"] == 2
    assert v.loc["FF-real/009", "status"] == "failed" and "none of the 1" in v.loc["FF-real/009", "reason"]
    assert result.report["conditions"]["raw"]["frames_undecodable"] == 2


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


def test_an_output_folder_on_a_read_only_file_system_is_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.png").write_bytes(b"x")

    def read_only(self: Path, *args, **kwargs) -> None:
        raise OSError(errno.EROFS, "Read-only file system", str(self))

    monkeypatch.setattr(Path, "mkdir", read_only)
    code, err = run_cli(["precompute", "--src", f"folder:{tmp_path / 'src'}", "--out", str(tmp_path / "ro"), "--ae",
                         "none", "--sr", "none"], capsys, monkeypatch)
    assert code == 2 and err == f"fiagen: error: cannot write in {tmp_path / 'ro'}: Read-only file system\n"


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
