"""Issue 23, items 4-9: what a suite's list files may open, imperfect media kept, refusals before torch
loads, checkpoint messages, DeepfakeBench JSONs with mixed paths, Ray without its dashboard. Each test
failed before its fix."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fiagen.manifests.suites import resolve_suite

# ---------------------------------------------------------------------------------------------- 4 list paths


def _touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_folder_csv_paths_stay_inside_the_suite_unless_allowed(tmp_path: Path) -> None:
    suite, elsewhere = tmp_path / "suite", tmp_path / "elsewhere"
    _touch(suite / "real" / "a.png")
    _touch(suite / "fake" / "b.png")
    _touch(tmp_path / "outside" / "x.png")
    _touch(elsewhere / "y.png")
    escapes = ["../outside/x.png", str(elsewhere / "y.png"), "/etc/passwd", "real/../../outside/x.png"]
    csv = suite / "list.csv"
    csv.write_text("path,label\nreal/a.png,0\nfake/b.png,1\n" + "".join(f"{p},1\n" for p in escapes)
                   + f"{suite / 'real' / 'a.png'},0\n")  # an absolute path inside the suite is fine
    listing = resolve_suite(f"folder:{csv}")
    assert listing.refused == escapes
    assert [it.path.name for it in listing.items] == ["a.png", "b.png", "a.png"] and not listing.missing
    assert all(it.path.resolve().is_relative_to(suite) for it in listing.items)
    assert any("4 listed paths lead outside" in n and "--allow-outside-root" in n for n in listing.notes)

    allowed = resolve_suite(f"folder:{csv}", allow_outside_root=True)
    assert not allowed.refused and sorted(p.name for p in (it.path for it in allowed.items)) == [
        "a.png", "a.png", "b.png", "passwd", "x.png", "x.png", "y.png"]


def test_every_index_file_is_confined_to_its_dataset(tmp_path: Path) -> None:
    cdf = tmp_path / "Celeb-DF-v2"
    _touch(cdf / "Celeb-real" / "id0_0000.mp4")
    _touch(tmp_path / "secret.mp4")
    (cdf / "List_of_testing_videos.txt").write_text("1 Celeb-real/id0_0000.mp4\n0 ../secret.mp4\n0 /etc/passwd\n")
    listing = resolve_suite("cdf_v2", cdf)
    assert listing.refused == ["../secret.mp4", "/etc/passwd"] and len(listing.items) == 1
    assert len(resolve_suite("cdf_v2", cdf, allow_outside_root=True).items) == 3

    dfdc = tmp_path / "DFDC"
    _touch(dfdc / "videos" / "a.mp4")
    (dfdc / "labels.csv").write_text("filename,label\na.mp4,0\n../../secret.mp4,1\n/etc/passwd,1\n")
    listing = resolve_suite("dfdc", dfdc)
    assert listing.refused == ["../../secret.mp4", "/etc/passwd"] and [it.path.name for it in listing.items] == [
        "a.mp4"]

    dfdcp = tmp_path / "DFDCP"
    _touch(dfdcp / "method_A" / "a.mp4")
    (dfdcp / "dataset.json").write_text(json.dumps({
        "method_A/a.mp4": {"label": "fake", "set": "test"}, "../secret.mp4": {"label": "real", "set": "test"},
        "/etc/passwd": {"label": "real", "set": "test"}}))
    listing = resolve_suite("dfdcp", dfdcp)
    assert sorted(listing.refused) == ["../secret.mp4", "/etc/passwd"] and len(listing.items) == 1


def test_allow_outside_root_is_an_option_of_evaluate_and_bench(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from fiagen.cli.main import cli
    from fiagen.evaluate.inputs import find_inputs

    _touch(tmp_path / "mine" / "real" / "a.png")
    _touch(tmp_path / "mine" / "fake" / "b.png")
    zipped = _touch(tmp_path / "zipped.pt", b"PK\x05\x06" + bytes(18))  # an empty zip: what --dry-run reads of it
    for command in ("evaluate", "bench"):
        result = CliRunner().invoke(cli, [command, "--suite", f"folder:{tmp_path / 'mine'}", "--ckpt", str(zipped),
                                          "--allow-outside-root", "--dry-run"])
        assert result.exit_code == 0, result.output
        assert "allow_outside_root: true" in result.output
    ckpt = _touch(tmp_path / "best.pt")
    _touch(tmp_path / "outside.png")
    _touch(tmp_path / "set" / "inside.png")  # all refused would be nothing to score: an error
    (tmp_path / "set" / "list.csv").write_text("inside.png,0\n../outside.png,1\n")
    spec = f"folder:{tmp_path / 'set' / 'list.csv'}"
    assert find_inputs([spec], None, ckpt).listings[spec].refused == ["../outside.png"]
    assert find_inputs([spec], None, ckpt, allow_outside_root=True).listings[spec].refused == []


# ---------------------------------------------------------------------------------------------- 8 mixed JSON paths

def test_deepfakebench_json_with_absolute_and_relative_frames_resolves_each_path(tmp_path: Path) -> None:
    root = tmp_path / "rgb"
    rel = [f"FaceForensics++/original_sequences/youtube/c23/frames/{v}/{k:03d}.png" for v in ("000", "001")
           for k in range(2)]
    for r in rel:
        _touch(root / r)
    foreign = "/home/someone/datasets/rgb/"  # the first path: absolute, from another machine
    index = {"FF": {"FF-real": {"test": {
        "000": {"frames": [foreign + rel[0], foreign + rel[1]]},
        "001": {"frames": [rel[2], rel[3]]},  # relative, present under the root
        "002": {"frames": [foreign + rel[0].replace("/000/", "/002/"), "../../escape.png"]}}}}}
    file = root / "ff.json"
    file.write_text(json.dumps(index))
    listing = resolve_suite(f"deepfakebench:{file}", root)
    assert [(it.video_id, len(it.frames)) for it in listing.items] == [("FF-real/000", 2), ("FF-real/001", 2)]
    assert all(Path(f).is_relative_to(root) and Path(f).exists() for it in listing.items for f in it.frames)
    assert [m.video_id for m in listing.missing] == ["FF-real/002"] and listing.refused == ["../../escape.png"]


# ---------------------------------------------------------------------------------------------- 5 imperfect media

VEXPRESS = "transfer/talking_head/real/vexpress__RD_Radio10_0_clip_0.mp4"  # its container says 62, 61 decode


class _Overstated:
    """A decoder whose container overstates the frame count by `extra`."""

    def __init__(self, cap, extra: int) -> None:
        self.cap, self.extra = cap, extra

    def get(self, prop: int) -> float:
        import cv2

        return self.cap.get(prop) + (self.extra if prop == cv2.CAP_PROP_FRAME_COUNT else 0)

    def __getattr__(self, name: str):
        return getattr(self.cap, name)


def _face_video(path: Path, image, n: int) -> Path:
    """`n` frames of `image` (RGB), each shifted a little, as an mp4."""
    import cv2
    import numpy as np

    h, w = image.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (w, h))
    for k in range(n):
        moved = cv2.warpAffine(image, np.float32([[1, 0, k % 5 - 2], [0, 1, 0]]), (w, h), borderMode=cv2.BORDER_REFLECT)
        writer.write(cv2.cvtColor(moved, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def test_a_video_whose_container_overstates_its_frames_is_sampled_from_what_decodes(
        astronaut_face, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fiagen.evaluate.scoring import video_crops
    from fiagen.manifests.suites.listing import EvalItem
    from fiagen.precompute import video
    from fiagen.precompute.extract import extract_video
    from fiagen.precompute.faces import FaceLandmarker

    path = _face_video(tmp_path / "clip.mp4", astronaut_face[0], 20)
    real_open = video.open_video
    monkeypatch.setattr(video, "open_video", lambda p: _Overstated(real_open(p), 5))  # says 25 frames, 20 decode
    with FaceLandmarker() as faces:
        res = video_crops(EvalItem("clip", path, 0, "real"), 8, 64, faces)
    assert res.failure is None, res.failure
    assert res.frames_sampled == 8 and res.frames_with_face == 8 and len(res.crops) == 8
    assert sorted(set(res.frame.tolist())) == sorted(res.frame.tolist()) and max(res.frame) < 20
    assert (res.frames_decoded, res.frames_shortfall) == (20, 5)

    got = extract_video("clip", path, "train", 8)
    assert got.failure is None, got.failure
    indices = [r.frame_index for r in got.records]
    assert len(indices) == 8 and indices == sorted(set(indices)) and indices[-1] < 20
    assert got.stats()["frames_decoded"] == 20 and got.stats()["frames_shortfall"] == 5


def _truncated(test_data: Path, folder: Path) -> Path:
    """A copy of a shared clip (its index before its data: what decodes stays readable) cut at 60% of its
    bytes: 102 of its 175 frames decode."""
    data = (test_data / "real_videos" / "liveportrait_d20.mp4").read_bytes()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cut.mp4").write_bytes(data[:int(len(data) * 0.6)])
    return folder / "cut.mp4"


@pytest.mark.realmedia
def test_evaluate_scores_truncated_and_miscounted_videos_from_their_decodable_frames(
        test_data: Path, ray_local, tmp_path: Path) -> None:
    import torch

    from fiagen.evaluate.runner import EvalConfig, evaluate
    from fiagen.evaluate.store import read_scores
    from fiagen.train.checkpoint import save_checkpoint
    from fiagen.train.model import build_detector

    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "run" / "best.pt", build_detector("resnet10t", 64), epoch=1, val_auc=0.5,
                           train_data="unit")
    suite = tmp_path / "suite"
    _truncated(test_data, suite / "real")
    (suite / "fake").mkdir()
    shutil.copy(test_data / VEXPRESS, suite / "fake" / "vexpress.mp4")
    shutil.copy(test_data / VEXPRESS, tmp_path / "outside.mp4")
    escapes = ["../outside.mp4", str(tmp_path / "outside.mp4"), "/etc/passwd"]  # item 4: never opened
    (suite / "list.csv").write_text("real/cut.mp4,0\nfake/vexpress.mp4,1\n" + "".join(f"{p},1\n" for p in escapes))
    result = evaluate(EvalConfig(suites=(f"folder:{suite / 'list.csv'}",), ckpt=str(ckpt), out=str(tmp_path / "eval"),
                                 frames=32, quiet=True))
    assert result.report["paths_refused"] == 3 and result.report["refused"] == escapes
    _, videos = read_scores(result.folder)
    assert sorted(videos["video"]) == ["fake/vexpress", "real/cut"]
    v = videos.set_index("video")
    assert (v["status"] == "ok").all(), v["reason"].tolist()
    assert v.loc["fake/vexpress", "frames_sampled"] == 32 and v.loc["fake/vexpress", "frames_with_face"] >= 31
    assert (v.loc["fake/vexpress", "frames_decoded"], v.loc["fake/vexpress", "frames_shortfall"]) == (61, 1)
    assert (v.loc["real/cut", "frames_decoded"], v.loc["real/cut", "frames_shortfall"]) == (102, 73)
    assert v.loc["real/cut", "frames_sampled"] == 32
    raw = result.report["conditions"]["raw"]
    assert raw["videos_failed"] == 0 and raw["videos_short"] == 2
    assert {s["video"]: s["frames_shortfall"] for s in raw["short"]} == {"fake/vexpress": 1, "real/cut": 73}


@pytest.mark.realmedia
def test_precompute_keeps_a_truncated_video_and_writes_no_empty_shard(test_data: Path, ray_local,
                                                                      tmp_path: Path) -> None:
    from fiagen.manifests.manifest import read_manifest, read_run_report
    from fiagen.precompute.entry import PrecomputeConfig, precompute

    src = tmp_path / "src"
    _truncated(test_data, src)
    (src / "empty.mp4").write_bytes(b"")
    out = tmp_path / "out"
    cfg = PrecomputeConfig(src=f"folder:{src}", out=str(out), frames=4, shard_size=4, ae="none", sr="none",
                           quiet=True)
    precompute(cfg)
    report = read_run_report(out)
    assert [f["video_id"] for f in report["failures"]] == ["empty"]
    assert report["short"] == [{"video_id": "cut", "split": "train", "frames_decoded": 102, "frames_shortfall": 73}]
    assert report["counts"]["videos_short"] == 1
    manifest = read_manifest(out)
    assert manifest["video_id"].unique().tolist() == ["cut"] and len(manifest) == 4
    assert manifest["frame_index"].max() < 102
    shards = sorted(p.name for p in (out / "shards" / "train").iterdir())
    assert shards == ["00000.h5", "00000.h5.sha256", "00001.h5.empty.json"]  # the failed video: its record only
    again = precompute(cfg)
    assert (again.shards_written, again.shards_reused) == (0, 2)
    assert [f["video_id"] for f in read_run_report(out)["failures"]] == ["empty"]


# ---------------------------------------------------------------------------------------------- 6 refusals at once

# Runs `fiagen ARGV` for each ARGV of the JSON list argv[1] in this one process, and prints, per run, its
# exit code, its stderr and whether torch or Ray had been imported by then. FAKE_RO names a folder to
# report as on a read-only file system (os.access and os.statvfs say so).
REFUSE = """
import contextlib, io, json, os, sys
ro = os.environ.get("FAKE_RO")
if ro:
    access, statvfs = os.access, os.statvfs
    os.access = lambda p, mode, **kw: False if os.path.abspath(p).startswith(ro) else access(p, mode, **kw)

    class ReadOnly:
        def __init__(self, real):
            self.real = real
        def __getattr__(self, name):
            return self.real.f_flag | os.ST_RDONLY if name == "f_flag" else getattr(self.real, name)
    os.statvfs = lambda p: ReadOnly(statvfs(p)) if os.path.abspath(p).startswith(ro) else statvfs(p)
from fiagen.cli.main import main
runs = []
for argv in json.loads(sys.argv[1]):
    sys.argv = ["fiagen", *argv]
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            main()
            code = 0
        except SystemExit as stop:
            code = stop.code
    runs.append({"argv": argv, "code": code, "err": err.getvalue(), "torch": "torch" in sys.modules,
                 "ray": "ray" in sys.modules})
print(json.dumps(runs))
"""

HOLD = ("import sys, time\nfrom fiagen.core.outputs import hold_folder\nwith hold_folder(sys.argv[1]):\n"
        "    print('held', flush=True)\n    time.sleep(120)\n")


def _refusals(cases: list[list[str]], **env: str) -> list[dict]:
    import os

    proc = subprocess.run([sys.executable, "-c", REFUSE, json.dumps(cases)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1", "FIAGEN_DATA": "", **env})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_output_and_argument_refusals_come_before_torch_loads(tmp_path: Path) -> None:
    import os
    import signal
    import socket

    afile = _touch(tmp_path / "afile")
    shards = tmp_path / "shards"
    shards.mkdir()
    ckpt = _touch(tmp_path / "best.pt")
    suite = tmp_path / "suite"
    _touch(suite / "real" / "a.png")
    _touch(suite / "fake" / "b.png")
    ro = tmp_path / "ro"
    ro.mkdir()
    held = tmp_path / "held"
    train = ["train", "--backbone", "resnet10t", "--pretrained", "none"]
    evaluate = ["evaluate", "--suite", f"folder:{suite}", "--ckpt", str(ckpt)]
    cases = [
        ([*train, "--shards", str(shards), "--run", str(afile / "run")], f"{afile} is a file, not a folder"),
        ([*train, "--shards", str(tmp_path / "nonexistent"), "--run", str(tmp_path / "run2")],
         f"{tmp_path / 'nonexistent'} has no manifest.parquet"),
        ([*train, "--shards", str(shards), "--run", str(ro / "run")], "Read-only file system"),
        ([*evaluate, "--out", str(ro / "eval")], "Read-only file system"),
        (["precompute", "--src", f"folder:{suite}", "--out", str(ro / "out")], "Read-only file system"),
    ]
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(held)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        in_use = f"{held} is in use by another fiagen run (pid {holder.pid} on host {socket.gethostname()}"
        cases += [([*train, "--shards", str(shards), "--run", str(held)], in_use),
                  ([*train, "--run", str(held), "--resume"], in_use),  # its config.yaml is not written yet
                  ([*evaluate, "--out", str(held)], in_use),
                  (["bench", "--suite", f"folder:{suite}", "--ckpt", str(ckpt), "--out", str(held)], in_use),
                  (["precompute", "--src", f"folder:{suite}", "--out", str(held)], in_use)]
        runs = _refusals([argv for argv, _ in cases], FAKE_RO=str(ro))
        (held / "config.yaml").write_text(f"shards: {shards}\nbackbone: resnet10t\npretrained: none\n")
        runs += _refusals([[*train, "--run", str(held), "--resume"]])  # a second --resume: no last.pt yet
        cases.append(([], in_use))
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    for run, (_, message) in zip(runs, cases, strict=True):
        assert run["code"] == 2 and run["err"].count("\n") == 1 and message in run["err"], run
        assert not run["torch"] and not run["ray"], run
    assert not (tmp_path / "run2").exists()  # nothing written for the bad --shards
    assert sorted(os.listdir(held)) == [".fiagen.lock", "config.yaml"]


# ---------------------------------------------------------------------------------------------- 7 checkpoint messages

def test_a_cut_short_or_corrupt_checkpoint_is_damage_and_a_raw_pickle_is_refused_without_warnings(
        tmp_path: Path) -> None:
    import pickle
    import struct
    import warnings
    import zipfile

    import torch

    from fiagen.train.checkpoint import (
        CheckpointDamaged,
        CheckpointError,
        read_checkpoint,
        read_resume_checkpoint,
        save_checkpoint,
    )
    from fiagen.train.model import build_detector

    torch.manual_seed(0)
    run = tmp_path / "run"
    det = build_detector("resnet10t", 64)
    best = save_checkpoint(run / "best.pt", det, epoch=2, val_auc=0.75, train_data="unit")
    data = save_checkpoint(run / "last.pt", det, epoch=3, step=30, train_data="unit").read_bytes()

    (run / "last.pt").write_bytes(data[:len(data) * 6 // 10])  # a copy cut short
    with pytest.raises(CheckpointDamaged) as cut:
        read_resume_checkpoint(run)
    message = str(cut.value)
    assert f"{run / 'last.pt'} is damaged: it is cut short" in message and "miniz" not in message
    assert f"{best} (epoch 2, val AUC 0.7500) is intact" in message and "\n" not in message

    with zipfile.ZipFile(best) as zf:  # one byte of the pickled structure flipped
        entry = zf.getinfo(next(n for n in zf.namelist() if n.endswith("data.pkl")))
    name_len, extra_len = struct.unpack("<HH", data[entry.header_offset + 26:entry.header_offset + 30])
    at = entry.header_offset + 30 + name_len + extra_len + entry.file_size // 2
    flipped = bytearray(data)
    flipped[at] ^= 0xFF
    (tmp_path / "flipped.pt").write_bytes(bytes(flipped))
    with pytest.raises(CheckpointDamaged, match="is damaged: its record data.pkl does not match the CRC-32") as err:
        read_checkpoint(tmp_path / "flipped.pt")
    assert "unpickler" not in str(err.value)

    payload = torch.load(best, weights_only=True)
    with (tmp_path / "raw.pt").open("wb") as fh:
        pickle.dump(payload, fh, protocol=4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(CheckpointError, match="not torch's zip format"):
            read_checkpoint(tmp_path / "raw.pt")
    assert [str(w.message) for w in caught] == []


# ---------------------------------------------------------------------------------------------- 9 Ray after kill -9

def test_a_local_ray_starts_without_dashboard() -> None:
    from fiagen.precompute.cluster import init_kwargs

    assert init_kwargs(None, 2)["include_dashboard"] is False and init_kwargs(None, 2)["address"] == "local"
    assert init_kwargs("auto", None)["include_dashboard"] is False


# A driver: starts the watcher, a fake raylet (a script under a ray/ folder) that starts a fake agent in
# a session of its own (as Ray's agents end up: orphans), and a child that is not Ray's; prints the pids.
DRIVER = """
import subprocess, sys, time
from fiagen.precompute.reaper import start_watcher
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
