"""One voice: every message of every command leaves through the "fiagen" logger and the one handler that
`fiagen.cli.main` installs (fiagen.core.log): `fiagen: warning: ...` / `fiagen: error: ...` lines and plain info lines
on stderr, Python warnings included; `-q` keeps warnings and errors only, in front of the command or
after it."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from fiagen.cli.main import cli
from fiagen.core import log

FiagenMain = Callable[[list[str]], tuple[int, str, str]]  # the conftest fixture fiagen_main



@pytest.fixture
def empty_ffpp(tmp_path: Path) -> Path:
    """An FF++ tree without any video: every video of a split is missing, so precompute has nothing to run
    (no Ray) and warns."""
    root = tmp_path / "ffpp"
    (root / "original_sequences" / "youtube" / "c23" / "videos").mkdir(parents=True)
    return root


def precompute_argv(root: Path, out: Path) -> list[str]:
    return ["precompute", "--src", "ff++_c23", "--root", str(root), "--out", str(out), "--splits", "val",
            "--ae", "none", "--sr", "none"]


def test_a_precompute_warning_is_one_line_and_quiet_keeps_only_it(empty_ffpp: Path, tmp_path: Path,
                                                                   fiagen_main: FiagenMain) -> None:
    code, out, err = fiagen_main(precompute_argv(empty_ffpp, tmp_path / "a"))
    assert code == 0, err
    lines = err.splitlines()
    warned = [line for line in lines if line.startswith("fiagen: warning:")]
    assert warned == [f"fiagen: warning: ff++_c23: 140 of the 140 videos of splits val are missing under "
                      f"{empty_ffpp}; precompute goes on without them (OUT/run.json lists them)"], err
    assert "ff++_c23: 0 videos in 0 shards, 0 to write (0 already done)" in lines  # an info line, plain
    assert ".py:" not in err and "140 missing" in out  # the command's result stays on stdout
    for argv in (["-q", *precompute_argv(empty_ffpp, tmp_path / "b")],
                 [*precompute_argv(empty_ffpp, tmp_path / "c"), "-q"],
                 [*precompute_argv(empty_ffpp, tmp_path / "d"), "--quiet"]):
        code, out, err = fiagen_main(argv)
        assert code == 0 and err.splitlines() == warned, (argv, err)


def test_a_python_warning_of_any_command_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`warnings.warn` in fiagen code goes through the same handler; one from another package names its
    category and origin, still on one line; -v adds debug lines, -q hides info lines."""
    from fiagen.precompute import entry as stage

    runs = []

    def warn_and_log(cfg: object) -> None:
        runs.append(cfg)  # a new text each run: Python shows a warning once per text and place
        warnings.warn(f"a fiagen warning ({len(runs)})", stacklevel=2)  # attributed to the caller: fiagen's cli
        warnings.warn_explicit("a foreign warning", RuntimeWarning, "/elsewhere/pkg/mod.py", 7)
        logging.getLogger("fiagen.precompute.entry").info("an info line")
        logging.getLogger("fiagen.precompute.entry").debug("a debug line")
        raise SystemExit(0)

    monkeypatch.setattr(stage, "precompute", warn_and_log)
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.png").write_bytes(b"x")  # a source its checks find (they run before the stage)
    runner = CliRunner()
    normal = runner.invoke(cli, ["precompute", "--src", f"folder:{src}", "--out", str(tmp_path)])
    assert normal.stderr.splitlines() == ["fiagen: warning: a fiagen warning (1)",
                                          "fiagen: warning: RuntimeWarning: a foreign warning (mod.py:7)",
                                          "an info line"], normal.stderr
    verbose = runner.invoke(cli, ["-v", "precompute", "--src", f"folder:{src}", "--out", str(tmp_path)])
    assert verbose.stderr.splitlines()[-1] == "fiagen: debug: a debug line"
    quiet = runner.invoke(cli, ["precompute", "--src", f"folder:{src}", "--out", str(tmp_path), "-q"])
    assert quiet.stderr.splitlines() == ["fiagen: warning: a fiagen warning (3)",
                                         "fiagen: warning: RuntimeWarning: a foreign warning (mod.py:7)"]


@pytest.fixture
def no_recon_shards(astronaut_face, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A precompute output of one val video (3 frames) stored without AE or SR reconstructions."""
    import cv2
    import numpy as np

    from fiagen.precompute.extract import face_crop
    from fiagen.precompute.faces import Detection
    from fiagen.precompute.index import write_manifest
    from fiagen.precompute.shard_writer import write_shard
    from fiagen.precompute.shards import ShardContent

    image, det, mesh = astronaut_face
    out = tmp_path_factory.mktemp("no_recon")
    records = []
    for k in range(3):
        dx = (k - 1) * 6
        moved = cv2.warpAffine(image, np.float32([[1, 0, dx], [0, 1, 0]]), (256, 256), borderMode=cv2.BORDER_REFLECT)
        x0, y0, x1, y1 = det.box
        records.append(face_crop(moved, Detection((x0 + dx, y0, x1 + dx, y1), det.score),
                                 mesh + np.float32([dx, 0, 0]), k, 1, "astro_v"))
    rel = "shards/val/00000.h5"
    sha = write_shard(out / rel, ShardContent(split="val", shard_id="00000", videos=["astro_v"], records=records))
    write_manifest(out, [(rel, sha)])
    return out


def test_an_evaluate_warning_is_one_line(no_recon_shards: Path, ray_local, tmp_path: Path,
                                         fiagen_main: FiagenMain) -> None:
    """Scoring the `pseudo:` suite of shards without reconstructions warns (MMR falls back to the original)."""
    from fiagen.train.checkpoint import save_checkpoint
    from fiagen.train.model import build_detector

    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "run" / "best.pt", build_detector("resnet10t", 64), epoch=1, train_data="x")
    code, out, err = fiagen_main(["evaluate", "--suite", f"pseudo:{no_recon_shards}", "--ckpt", str(ckpt), "--out",
                                  str(tmp_path / "eval"), "--concurrency", "1", "--quiet"])
    assert code == 0, err
    assert err.splitlines() == [f"fiagen: warning: {no_recon_shards} (val) holds no AE/SR reconstructions: MMR "
                                f"uses the original in their place"], err
    assert "pseudo" in out


def test_library_use_adds_no_handler() -> None:
    """Imported as a library, fiagen leaves logging to the application (no handler of its own)."""
    assert not any(isinstance(h, log.StderrHandler) for h in logging.getLogger("fiagen").handlers)
