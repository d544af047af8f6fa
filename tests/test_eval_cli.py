"""Evaluation commands with a tiny checkpoint: one-line CLI errors, the default checkpoint, explain on an
image, and the face policy (hard faces, whole-image fallback, omissions reported)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from fiagen.cli.main import main
from fiagen.evaluate.inputs import default_checkpoint
from fiagen.evaluate.scoring import predict
from fiagen.evaluate.store import read_scores
from fiagen.generate.crop import eval_crop
from fiagen.manifests.suites import suite_dirname
from fiagen.train.checkpoint import load_detector


def test_cli_errors_are_one_line(tiny_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FIAGEN_DATA", raising=False)
    (tmp_path / "x.txt").write_text("a text file")
    cases = [
        (["bench", "--suite", "df40", "--root", str(tmp_path)], "pass --ckpt"),
        (["evaluate", "--suite", "cdf_v2", "--root", str(tmp_path), "--ckpt", str(tiny_ckpt)],
         "List_of_testing_videos.txt"),
        (["evaluate", "--suite", "ff++", "--ckpt", str(tmp_path / "none.pt")], "checkpoint not found"),
        (["evaluate", "--suite", "ff++", "--perturb", "compression"], "H.264"),
        (["explain", "--ckpt", str(tiny_ckpt), "--input", str(tmp_path / "x.txt"), "--out", "o"], "not a video"),
    ]
    for argv, message in cases:
        monkeypatch.setattr(sys, "argv", ["fiagen", *argv])
        with pytest.raises(SystemExit) as code:
            main()
        err = capsys.readouterr().err.strip()
        assert code.value.code == 2 and message in err and "Traceback" not in err, (argv, err)


def test_default_checkpoint_is_newest(tmp_path: Path) -> None:
    for name, age in (("a", 100), ("b", 10), ("c", 50)):
        path = tmp_path / "runs" / name / "best.pt"
        path.parent.mkdir(parents=True)
        path.write_bytes(b"x")
        os.utime(path, (time.time() - age, time.time() - age))
    assert default_checkpoint(tmp_path / "runs") == tmp_path / "runs" / "b" / "best.pt"


@pytest.mark.realmedia
def test_explain_image(test_data: Path, tiny_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                       monkeypatch: pytest.MonkeyPatch) -> None:
    image = test_data / "real_images" / "skimage_astronaut.png"
    monkeypatch.setattr(sys, "argv", ["fiagen", "explain", "--ckpt", str(tiny_ckpt), "--input", str(image),
                                      "--out", str(tmp_path / "cam")])
    with pytest.raises(SystemExit) as code:
        main()
    assert code.value.code == 0 and "1 crops from 1 frames" in capsys.readouterr().out
    record = json.loads((tmp_path / "cam" / "explain.json").read_text())
    (crop,) = record["crops"]
    tile = cv2.imread(str(tmp_path / "cam" / crop["file"]))  # two 256 px panels (the 64 px crop, enlarged), a bar
    assert tile.shape == (316, 596, 3) and crop["layer"] == "net.layer4"
    model, _ = load_detector(tiny_ckpt)
    frame = cv2.cvtColor(cv2.imread(str(image)), cv2.COLOR_BGR2RGB)
    assert crop["score"] == pytest.approx(float(predict(model, eval_crop(frame, crop["box"], 64)[None], 1, "cpu")[0]),
                                          abs=1e-5)


@pytest.mark.slow
@pytest.mark.realmedia
def test_face_policy_whole_image_fallback_and_omissions_reported(hard_faces: dict, tiny_ckpt: Path, ray_local,
                                                                   tmp_path: Path, capsys: pytest.CaptureFixture,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Evaluation finds the faces the full-range detector alone misses (a close-up, a 64 px crop); with
    --face detect-or-whole a faceless image is scored whole, said in the stamp; a file outside the
    suite's layout and the small sample are reported."""
    root = tmp_path / "suite"
    for rel, image in (("real/closeup512.png", hard_faces["closeup512"]),
                       ("fake/Tight/tight64.png", hard_faces["tight64"]),
                       ("real/grey.png", np.full((96, 128, 3), 128, np.uint8)),
                       ("extra/left_out.png", hard_faces["tight64"])):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / rel), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    out = tmp_path / "eval"
    monkeypatch.setattr(sys, "argv", ["fiagen", "evaluate", "--suite", f"folder:{root}", "--ckpt", str(tiny_ckpt),
                                      "--out", str(out), "--frames", "1", "--face", "detect-or-whole", "--quiet"])
    with pytest.raises(SystemExit) as code:
        main()
    printed = capsys.readouterr().out
    assert code.value.code == 0, printed
    folder = out / suite_dirname(f"folder:{root}")
    frames, videos = read_scores(folder)
    face = frames.set_index("video")
    assert face.loc[["real/closeup512", "fake/Tight/tight64"], "finder"].tolist() == ["short_range"] * 2
    assert face.loc["real/closeup512", "x1"] - face.loc["real/closeup512", "x0"] > 400  # the face, not a part of it
    assert face.loc["real/grey", "finder"] == "whole" and np.isnan(face.loc["real/grey", "det_score"])
    assert face.loc["real/grey", ["x0", "y0", "x1", "y1"]].tolist() == [0, 0, 128, 96]
    assert videos.set_index("video")["frames_whole"].to_dict() == {"real/closeup512": 0, "fake/Tight/tight64": 0,
                                                                   "real/grey": 1}
    assert (videos["status"] == "ok").all() and set(videos["face_policy"]) == {"detect-or-whole"}
    report = json.loads((folder / "report.json").read_text())
    raw = report["conditions"]["raw"]
    assert raw["units_whole_image"] == 1 and raw["whole_image"] == ["real/grey"]
    assert raw["face_passes"] == {"full_range": {"runs": 3, "faces": 0}, "short_range": {"runs": 3, "faces": 2},
                                  "padded": {"runs": 1, "faces": 0}}
    assert report["stamp"]["face"] == "detect-or-whole (3 units)" and report["stamp"]["whole_image_units"] == "1 of 3"
    assert "face: detect-or-whole (3 units); whole_image_units: 1 of 3" in printed
    assert report["items_unlisted"] == 1 and report["unlisted"] == ["extra/left_out.png"]
    assert ("1 media files under its folders are not in its list and were not scored (first: "
            "extra/left_out.png") in printed
    table = pd.read_csv(folder / "table.csv")
    assert table["small_sample"].tolist() == ["yes", "yes"]  # 2 real vs 1 fake
    assert "fewer than 10 real or 10 fake units" in printed and "fewer than 10" in (folder / "table.md").read_text()
