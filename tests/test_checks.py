"""Every mistake caught before the work starts (issue 31): each command's checks run first, --dry-run runs
exactly them (the same one line, the same status), a pipeline checks every stage before the first, a suite
with nothing to score is an error, and every message is one `fiagen: error:` line naming the real problem."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from fiagen.core.outputs import hold_folder
from fiagen.manifests.roots import SourceError
from fiagen.manifests.suites import resolve_suite

FiagenMain = Callable[[list[str]], tuple[int, str, str]]  # the conftest fixture fiagen_main
FIAGEN = str(Path(sys.executable).with_name("fiagen"))
UNKNOWN_SUITE = "fiagen: error: unknown suite 'cdfv1': expected ff++, cdf_v1, cdf_v2"


@pytest.fixture(autouse=True)
def _no_data_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FIAGEN_DATA", raising=False)


def one_error(code: int, err: str) -> str:
    """The one line of a refused command: status 2 (as every argument error), nothing else on stderr."""
    lines = err.splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("fiagen: error: "), (code, err)
    return lines[0]


def cdf_list(folder: Path, entries: int) -> None:
    """A Celeb-DF test list of `entries` lines (the first real, the others fakes); no video on disk."""
    lines = ["1 Celeb-real/id0_0000.mp4"] + [f"0 Celeb-synthesis/id0_id1_{i:04d}.mp4" for i in range(entries - 1)]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "List_of_testing_videos.txt").write_text("\n".join(lines) + "\n")


# ------------------------------------------------------------------------------------ dry-runs that check

def test_each_dry_run_refuses_a_wrong_name_or_a_missing_root_with_the_real_runs_line(
        untrained_ckpt: Path, tmp_path: Path, fiagen_main: FiagenMain) -> None:
    nope = tmp_path / "nope"
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "a.mp4").write_bytes(b"x")
    clips = f"folder:{tmp_path / 'clips'}"
    cases = [
        (["precompute", "--src", "ff++", "--out", str(tmp_path / "o")], "unknown --src 'ff++': expected ff++_c23"),
        (["precompute", "--src", clips, "--sr", f"spandrel:{nope}.pth", "--out", str(tmp_path / "o")],
         f"--sr spandrel:{nope}.pth: no such file"),
        (["precompute", "--src", clips, "--ae", f"sd-vae:{nope}", "--out", str(tmp_path / "o")],
         f"--ae sd-vae:{nope}: no such folder"),
        (["precompute", "--root", str(nope), "--out", str(tmp_path / "o")], f"neither {nope} nor"),
        (["evaluate", "--suite", "cdf2", "--ckpt", str(untrained_ckpt)], "unknown suite 'cdf2'"),
        (["evaluate", "--suite", "cdf_v2", "--root", str(nope), "--ckpt", str(untrained_ckpt)],
         f"cdf_v2: {nope} has no List_of_testing_videos.txt"),
        (["bench", "--suite", "ff++,cdf2", "--ckpt", str(untrained_ckpt)], "unknown suite 'cdf2'"),
        (["train", "--shards", str(nope)], f"{nope} has no manifest.parquet (no such folder)"),
        (["explain", "--ckpt", str(untrained_ckpt), "--input", str(tmp_path / "nope.mp4"), "--out",
          str(tmp_path / "x")],
         f"--input {tmp_path / 'nope.mp4'}: no such file"),
        (["preview", "--shards", str(nope)], f"{nope} has no manifest.parquet (no such folder): --shards takes"),
    ]
    for argv, message in cases:
        dry = one_error(*fiagen_main([*argv, "--dry-run"])[::2])
        assert message in dry, (argv, dry)
        assert one_error(*fiagen_main(argv)[::2]) == dry, argv  # the real run: the same line, before any work
    assert not (tmp_path / "o").exists() and not (tmp_path / "x").exists()


def test_a_dry_run_that_passes_prints_the_config_and_says_which_folder_was_taken(
        tmp_path: Path, fiagen_main: FiagenMain) -> None:
    """--root is the folder holding the datasets, or a dataset's own folder, for every command."""
    dataset = tmp_path / "data" / "FaceForensics++"
    (dataset / "original_sequences/youtube/c23/videos").mkdir(parents=True)
    for root in (tmp_path / "data", dataset):
        code, out, err = fiagen_main(["precompute", "--root", str(root), "--out", str(tmp_path / "o"), "--dry-run"])
        assert code == 0 and f"root: {root}\n" in out, err
        assert err.splitlines() == [f"ff++_c23: data from {dataset}"]


def test_run_checks_every_stage_before_the_first(tmp_path: Path) -> None:
    """A typo'd bench suite and a missing root are found in under 2 s, before precompute writes anything."""
    clips = tmp_path / "clips"
    clips.mkdir()
    (clips / "a.mp4").write_bytes(b"not decoded before the checks")
    out = tmp_path / "out"
    stages = f"precompute: {{src: 'folder:{clips}', out: {out}}}\ntrain: {{run: {tmp_path / 'run'}}}\n"
    typo, no_root = tmp_path / "typo.yaml", tmp_path / "root.yaml"
    typo.write_text(stages + "bench: {suite: [cdfv1]}\n")
    no_root.write_text(stages + f"bench: {{suite: cdf_v2, root: {tmp_path / 'nope'}}}\n")
    env = {**os.environ, "FIAGEN_DATA": ""}
    for pipeline, message in ((typo, UNKNOWN_SUITE),
                              (no_root, f"fiagen: error: cdf_v2: {tmp_path / 'nope'} has no List_of")):
        for extra in ([], ["--dry-run"]):
            start = time.perf_counter()
            proc = subprocess.run([FIAGEN, "run", str(pipeline), *extra], capture_output=True, text=True, env=env,
                                  timeout=60)
            seconds = time.perf_counter() - start
            assert one_error(proc.returncode, proc.stderr).startswith(message), proc.stderr
            assert seconds < 2.0 and proc.stdout == "", (extra, seconds)
    assert not out.exists() and not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------------ one meaning of --root

def test_a_shared_celeb_df_folder_is_used_only_for_the_release_its_list_is(tmp_path: Path) -> None:
    cdf_list(tmp_path / "v2" / "Celeb-DF", 518)  # v2's list: 518 videos
    cdf_list(tmp_path / "v1" / "Celeb-DF", 3)
    assert resolve_suite("cdf_v2", tmp_path / "v2").root == tmp_path / "v2" / "Celeb-DF"
    assert resolve_suite("cdf_v1", tmp_path / "v1").root == tmp_path / "v1" / "Celeb-DF"
    with pytest.raises(SourceError, match=r"cdf_v1: .*v2/Celeb-DF holds cdf_v2's test list \(v2's names 518"):
        resolve_suite("cdf_v1", tmp_path / "v2")
    with pytest.raises(SourceError, match=r"cdf_v2: .*v1/Celeb-DF holds cdf_v1's test list"):
        resolve_suite("cdf_v2", tmp_path / "v1")
    cdf_list(tmp_path / "v1" / "Celeb-DF-v2", 2)  # a folder named for its release is taken as named
    assert resolve_suite("cdf_v2", tmp_path / "v1").root == tmp_path / "v1" / "Celeb-DF-v2"
    with pytest.raises(SourceError, match="is named for cdf_v2, not cdf_v1"):
        resolve_suite("cdf_v1", tmp_path / "v1" / "Celeb-DF-v2")


# ------------------------------------------------------------------------------------ an empty result is an error

def test_a_suite_with_every_file_missing_or_refused_is_one_line_and_writes_nothing(
        untrained_ckpt: Path, tmp_path: Path, fiagen_main: FiagenMain) -> None:
    cdf_list(tmp_path / "data" / "Celeb-DF-v2", 2)
    out = tmp_path / "eval"
    argv = ["evaluate", "--suite", "cdf_v2", "--root", str(tmp_path / "data"), "--ckpt", str(untrained_ckpt), "--out",
            str(out)]
    line = one_error(*fiagen_main(argv)[::2])
    cdf = tmp_path / "data" / "Celeb-DF-v2"
    assert line == (f"fiagen: error: cdf_v2: nothing to score: all 2 listed files are missing under {cdf} (first: "
                    f"{cdf / 'Celeb-real/id0_0000.mp4'})")
    assert not out.exists()  # no report.json (no NaN), no table, no empty ROC plot
    (tmp_path / "set").mkdir()
    (tmp_path / "set" / "list.csv").write_text("path,label\n/etc/hostname,0\n../elsewhere.mp4,1\n")
    argv = ["evaluate", "--suite", f"folder:{tmp_path / 'set' / 'list.csv'}", "--ckpt", str(untrained_ckpt), "--out",
            str(out)]
    assert "nothing to score: all 2 listed paths lead outside" in one_error(*fiagen_main(argv)[::2])
    assert not out.exists()


def test_a_suite_whose_every_video_fails_is_one_line_without_a_table(
        untrained_ckpt: Path, ray_local, tmp_path: Path, fiagen_main: FiagenMain) -> None:
    for label in ("real", "fake"):
        (tmp_path / "set" / label).mkdir(parents=True)
        (tmp_path / "set" / label / "a.mp4").write_bytes(b"not a video")
    out = tmp_path / "eval"
    code, _, err = fiagen_main(["evaluate", "--suite", f"folder:{tmp_path / 'set'}", "--ckpt", str(untrained_ckpt),
                                "--out", str(out), "--frames", "1", "--quiet"])
    assert one_error(code, err).startswith("fiagen: error: folder:" f"{tmp_path / 'set'}: nothing scored: all 2 videos "
                                           "failed (first: ")
    suite = out / "folder-set"
    assert not (suite / "report.json").exists() and not (suite / "table.csv").exists()
    assert not (suite / "roc.png").exists()

    import cv2
    from skimage import data

    for label in ("real", "fake"):  # a real that scores, no fake: partly empty (no AUC)
        (tmp_path / "set" / label / "a.mp4").unlink()
    cv2.imwrite(str(tmp_path / "set" / "real" / "a.png"), data.astronaut()[:, :, ::-1])
    code, out_text, err = fiagen_main(["evaluate", "--suite", f"folder:{tmp_path / 'set'}", "--ckpt",
                                       str(untrained_ckpt), "--out", str(tmp_path / "partly"), "--frames", "1"])
    assert code == 0 and "1 videos scored" in out_text, err
    assert "fiagen: warning: folder:" in err and "no ROC curve drawn: no method has both real and fake" in err
    report = (tmp_path / "partly" / "folder-set" / "report.json").read_text()
    assert "NaN" not in report and json.loads(report)["summary"]["video_auc"] is None
    assert not (tmp_path / "partly" / "folder-set" / "roc.png").exists()


# ------------------------------------------------------------------------------------ every message is fiagen's

def test_each_mistake_is_one_line_naming_it(untrained_ckpt: Path, tmp_path: Path, fiagen_main: FiagenMain) -> None:
    video = tmp_path / "VIDEO.mp4"
    video.write_bytes(b"\x00\xf8 binary")
    (tmp_path / "config.yaml").write_text("frames: 4\n")
    ffpp = tmp_path / "ffpp"
    (ffpp / "original_sequences").mkdir(parents=True)
    for label in ("real", "fake"):
        (tmp_path / "set" / label).mkdir(parents=True)
        (tmp_path / "set" / label / "a.png").write_bytes(b"x")
    cases = [
        (["evaluate", "--suite", f"folder:{video}", "--ckpt", str(untrained_ckpt)], f"folder: {video} is a media file"),
        (["evaluate", "--suite", "ff++", "--ckpt", str(tmp_path)], f"--ckpt: {tmp_path} is a folder; expected a file"),
        (["explain", "--ckpt", str(untrained_ckpt), "--input", str(tmp_path), "--out", "x"],
         f"--input: {tmp_path} is a folder; expected a file"),
        (["bench", "--root", str(video), "--ckpt", str(untrained_ckpt)],
         f"--root: {video} is a file; expected a folder"),
        (["evaluate", "--suite", f"folder:{tmp_path / 'set'}", "--ckpt", str(tmp_path / "config.yaml")],
         f"--ckpt {tmp_path / 'config.yaml'} is not a fiagen checkpoint (not torch's zip format"),
        (["explain", "--ckpt", str(untrained_ckpt), "--input", str(tmp_path / "nope.mp4"), "--out", "x"],
         "no such file"),
        (["train", "--shards", str(ffpp), "--run", str(tmp_path / "run")],
         f"{ffpp} has no manifest.parquet: it is a dataset folder, not a precompute output"),
    ]
    for argv, message in cases:
        line = one_error(*fiagen_main(argv)[::2])
        assert message in line, (argv, line)
        assert f"--out {ffpp}" not in line  # no advice writes into a dataset
    assert not (tmp_path / "run").exists()
    line = one_error(*fiagen_main(["bench", "--ckpt", str(untrained_ckpt)])[::2])  # no data at all: a short line
    assert line.startswith("fiagen: error: none of the 8 suites has data (no --root nor $FIAGEN_DATA)")
    assert len(line) < 250


def test_evaluate_takes_several_suites_as_bench_does(untrained_ckpt: Path, tmp_path: Path,
                                                     fiagen_main: FiagenMain) -> None:
    for version in ("v1", "v2"):
        cdf_list(tmp_path / f"Celeb-DF-{version}", 2)
        for line in (tmp_path / f"Celeb-DF-{version}" / "List_of_testing_videos.txt").read_text().splitlines():
            (tmp_path / f"Celeb-DF-{version}" / line.split()[1]).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / f"Celeb-DF-{version}" / line.split()[1]).write_bytes(b"x")
    code, out, err = fiagen_main(["evaluate", "--suite", "cdf_v2", "--suite", "cdf_v1", "--root", str(tmp_path),
                                  "--ckpt", str(untrained_ckpt), "--dry-run"])
    assert code == 0 and "suites: [cdf_v2, cdf_v1]\n" in out, err
    assert err.splitlines() == [f"cdf_v2: data from {tmp_path / 'Celeb-DF-v2'}",
                                f"cdf_v1: data from {tmp_path / 'Celeb-DF-v1'}"]


def test_inspect_draws_outside_the_shards_folder(tmp_path: Path, fiagen_main: FiagenMain,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from fiagen.precompute import inspect as inspect_module

    shards = tmp_path / "shards"
    shards.mkdir()
    (shards / "manifest.parquet").write_bytes(b"")
    drawn: list[Path] = []
    monkeypatch.setattr(inspect_module, "summary", lambda folder: "summary")
    monkeypatch.setattr(inspect_module, "draw_frames", lambda folder, n, to, seed: drawn.append(to) or [])
    monkeypatch.chdir(tmp_path)
    code, out, err = fiagen_main(["inspect", "--shards", str(shards), "--draw", "2"])
    assert code == 0 and drawn == [Path("inspect")] and "wrote 0 PNGs to inspect" in out, err


def test_a_new_output_folder_left_empty_by_a_failure_is_removed(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), hold_folder(tmp_path / "run"):
        raise RuntimeError("failed before writing anything")
    assert not (tmp_path / "run").exists()
    with hold_folder(tmp_path / "kept") as folder:
        (folder / "config.yaml").write_text("a: 1\n")
    assert (tmp_path / "kept" / "config.yaml").is_file()


# ------------------------------------------------------------------------------------ pictures that stand alone

def test_a_gradcam_tile_is_large_with_its_title_and_colour_bar(tmp_path: Path) -> None:
    import cv2

    from fiagen.evaluate.plots import cam_plot

    cam = np.zeros((32, 32), np.float32)
    cam[4:12, 20:28] = 1.0  # hot top right
    tile = cv2.cvtColor(cv2.imread(str(cam_plot(np.full((32, 32, 3), 128, np.uint8), cam, "a.mp4 P(fake) = 0.9",
                                                tmp_path / "t.png"))), cv2.COLOR_BGR2RGB).astype(int)
    assert tile.shape == (316, 596, 3)  # two 256 px panels (32 px crop enlarged), title above, bar beside
    panel = tile[56:312, 272:528]  # the overlay panel
    hot, cold = panel[40:88, 168:216].mean(axis=(0, 1)), panel[180:240, 20:80].mean(axis=(0, 1))
    assert hot[0] > hot[2] + 40 and cold[2] > cold[0] + 40  # red where the map is 1, blue where 0
    bar = tile[60:308, 538:548]
    assert bar[2].mean(axis=0)[0] > 100 and bar[-3].mean(axis=0)[2] > 100  # the bar: red on top, blue below
    assert (tile[2:26, 150:450] < 100).any()  # the title's dark text
