"""Faults on disk injected on purpose (issue 14): a damaged checkpoint, a full disk (in the driver and in a
Ray worker, while training, precomputing and scoring), an output folder on a read-only file system. Each
test reproduces the fault and checks what the user gets: one error line, the run's record written, nothing
stale left."""

from __future__ import annotations

import csv
import dataclasses
import errno
import json
import shutil
import signal
from pathlib import Path

import pytest
import torch
from in_process_cli import run_cli
from test_train_run import ColourPatchPairs

from fiagen.core import files
from fiagen.core.files import TEMP_GLOB, DiskFullError
from fiagen.core.outputs import LOCK_NAME, hold_folder
from fiagen.train.checkpoint import CheckpointDamaged, CheckpointError, read_checkpoint
from fiagen.train.config import TrainConfig
from fiagen.train.context import Context
from fiagen.train.loop import run_training


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


# ---------------------------------------------------------------------------------------------- 5 read-only file system

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
