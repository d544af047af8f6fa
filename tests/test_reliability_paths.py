"""What a suite's list files may open (issue 23, items 4 and 8; issue 14): folder CSVs and index files stay
inside their dataset unless allowed, DeepfakeBench JSONs with mixed paths and paths that leave the root, and
output and argument refusals that come before torch loads. Each test failed before its fix."""

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


# ---------------------------------------------------------------------------------------------- 3 DeepfakeBench paths

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
