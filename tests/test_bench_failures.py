"""A bench of several suites where one suite's every video fails: that suite is reported as failed (printed,
in OUT/bench.json, exit status 1) and the other suites are still scored."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import cv2
from skimage import data

FiagenMain = Callable[[list[str]], tuple[int, str, str]]  # the conftest fixture fiagen_main


def broken_suite(folder: Path) -> Path:
    """A folder suite whose two videos cannot be decoded."""
    for label in ("real", "fake"):
        (folder / label).mkdir(parents=True)
        (folder / label / "a.mp4").write_bytes(b"not a video")
    return folder


def image_suite(folder: Path) -> Path:
    """A folder suite of one real and one fake image that decode."""
    for label, image in (("real", data.astronaut()), ("fake", data.astronaut()[:, ::-1])):
        (folder / label).mkdir(parents=True)
        cv2.imwrite(str(folder / label / "a.png"), image[:, :, ::-1])
    return folder


def test_a_suite_where_every_video_fails_does_not_stop_the_others(
        untrained_ckpt: Path, ray_local, tmp_path: Path, fiagen_main: FiagenMain) -> None:
    bad, good = broken_suite(tmp_path / "bad"), image_suite(tmp_path / "good")
    out = tmp_path / "eval"
    code, text, err = fiagen_main(["bench", "--suite", f"folder:{bad}", "--suite", f"folder:{good}", "--ckpt",
                                   str(untrained_ckpt), "--out", str(out), "--frames", "1"])
    assert code == 1, err
    assert f"fiagen: error: 1 of 2 suites scored nothing: folder:{bad} (see {out / 'bench.json'})" in err
    assert f"warning: folder:{bad}: nothing scored: all 2 videos failed" in err
    assert f"failed folder:{bad}: nothing scored: all 2 videos failed (first: " in text
    assert "2 videos scored (2 now" in text  # the suite after the failed one was scored
    table = (out / "folder-good" / "table.csv").read_text()
    assert table.splitlines()[0].startswith("method,") and len(table.splitlines()) >= 2
    record = json.loads((out / "bench.json").read_text())
    assert record["schema"] == "fiagen.bench/1" and record["skipped"] == {}
    assert record["scored"] == {f"folder:{good}": str(out / "folder-good")}
    assert list(record["failed"]) == [f"folder:{bad}"]
    assert record["failed"][f"folder:{bad}"].startswith(f"folder:{bad}: nothing scored: all 2 videos failed")
    assert not (out / "folder-bad" / "table.csv").exists() and not (out / "folder-bad" / "report.json").exists()


def test_a_bench_where_every_suite_fails_is_one_error(
        untrained_ckpt: Path, ray_local, tmp_path: Path, fiagen_main: FiagenMain) -> None:
    one, two = broken_suite(tmp_path / "one"), broken_suite(tmp_path / "two")
    code, _, err = fiagen_main(["bench", "--suite", f"folder:{one}", "--suite", f"folder:{two}", "--ckpt",
                                str(untrained_ckpt), "--out", str(tmp_path / "eval"), "--frames", "1"])
    lines = [line for line in err.splitlines() if line.startswith("fiagen: ")]  # not the progress bars
    assert code == 2 and len(lines) == 3, err  # a warning per suite as it fails, then the error
    assert lines[1].startswith(f"fiagen: warning: folder:{two}: nothing scored: all 2 videos failed")
    assert lines[2].startswith(f"fiagen: error: nothing scored in any of the 2 suites (first: folder:{one}: "
                               "nothing scored: all 2 videos failed")
    assert not (tmp_path / "eval" / "bench.csv").exists()
