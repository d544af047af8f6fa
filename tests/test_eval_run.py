"""The evaluation stage end to end on a suite of the shared real media with a tiny checkpoint (Ray tasks +
actor): scores, no-face and failed videos, an interrupted run that resumes, perturbations via bench, a config
naming two suites."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import roc_auc_score

from fiagen.cli.main import main
from fiagen.core.settings import ConfigError
from fiagen.evaluate.runner import EvalConfig, evaluate, render
from fiagen.evaluate.scoring import predict
from fiagen.evaluate.store import ScoreStore, read_scores
from fiagen.generate.crop import eval_crop
from fiagen.manifests.suites import suite_dirname
from fiagen.precompute.faces import FaceLandmarker
from fiagen.precompute.video import read_frames
from fiagen.train.checkpoint import load_detector


def link(src: Path, dst: Path, copy: bool = False) -> None:
    """A link to `src`, or a copy (what a CSV lists: a link out of the CSV's folder is refused)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst) if copy else dst.symlink_to(src.resolve())


@pytest.fixture(scope="module")
def suite(test_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """real/: the seven shared clips, an FF++ frame and a corrupt mp4; fake/<method>/: the FF++ frame as
    Deepfakes and NeuralTextures, and a grey video without a face."""
    root = tmp_path_factory.mktemp("suite")
    for clip in sorted((test_data / "real_videos").glob("*.mp4")):
        link(clip, root / "real" / clip.name)
    link(test_data / "ffpp_frames" / "ex_original.png", root / "real" / "ffpp_original.png")
    (root / "real" / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not a video")
    link(test_data / "ffpp_frames" / "ex_deepfakes.png", root / "fake" / "Deepfakes" / "df.png")
    link(test_data / "ffpp_frames" / "ex_neuraltextures.png", root / "fake" / "NeuralTextures" / "nt.png")
    (root / "fake" / "Blank").mkdir(parents=True)
    writer = cv2.VideoWriter(str(root / "fake" / "Blank" / "grey.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 25, (160, 120))
    for k in range(12):
        writer.write(np.full((120, 160, 3), 100 + 5 * k, np.uint8))
    writer.release()
    return root


@pytest.mark.slow
@pytest.mark.realmedia
def test_interrupted_run_resumes_and_scores_are_right(suite: Path, tiny_ckpt: Path, ray_local, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "eval"
    cfg = EvalConfig(suites=(f"folder:{suite}",), ckpt=str(tiny_ckpt), out=str(out), frames=4, chunk=3, quiet=True)
    real_flush = ScoreStore.flush
    calls = []

    def crash_on_second_chunk(self: ScoreStore) -> None:
        if self.pending and calls:
            raise KeyboardInterrupt("killed")
        calls.append(self.pending)
        real_flush(self)

    monkeypatch.setattr(ScoreStore, "flush", crash_on_second_chunk)
    monkeypatch.setattr("fiagen.evaluate.dispatch.FLUSH_SECONDS", 1e9)  # chunks by count alone, on a busy machine too
    with pytest.raises(KeyboardInterrupt):
        evaluate(cfg)
    monkeypatch.setattr(ScoreStore, "flush", real_flush)
    folder = out / suite_dirname(f"folder:{suite}")
    clips = sorted(p.stem for p in (suite / "real").glob("liveportrait_*.mp4"))
    assert len(clips) == 7
    first_part = folder / "videos.parquet" / "part-00000.parquet"
    first_videos = set(pd.read_parquet(first_part)["video"])
    assert len(first_videos) == calls[0] >= 3
    first_bytes, first_mtime = first_part.read_bytes(), first_part.stat().st_mtime_ns

    result = evaluate(cfg)
    raw = result.report["conditions"]["raw"]
    assert raw["videos"] == 12 and raw["videos_reused"] == len(first_videos)
    assert raw["videos_scored_now"] == 12 - len(first_videos)
    assert first_part.read_bytes() == first_bytes and first_part.stat().st_mtime_ns == first_mtime
    later = pd.concat(pd.read_parquet(p) for p in sorted((folder / "videos.parquet").glob("part-*.parquet"))[1:])
    assert not set(later["video"]) & first_videos  # nothing finished was scored again

    frames, videos = read_scores(folder)
    assert videos["video"].is_unique and len(videos) == 12
    v = videos.set_index("video")
    assert v.loc["fake/Blank/grey", "status"] == "no_face" and v.loc["fake/Blank/grey", "score"] == 0.5
    assert v.loc["fake/Blank/grey", "frames_sampled"] == 4 and v.loc["fake/Blank/grey", "faces"] == 0
    assert raw["no_face"] == ["fake/Blank/grey"] and raw["videos_no_face"] == 1
    assert v.loc["real/broken", "status"] == "failed" and v.loc["real/broken", "reason"]
    assert raw["failures"][0]["video"] == "real/broken"
    for clip in clips:
        assert v.loc[f"real/{clip}", "frames_sampled"] == 4 and v.loc[f"real/{clip}", "status"] == "ok"
    assert v.loc["fake/Deepfakes/df", "frames_sampled"] == 1

    # video score = mean over frames of the max over faces, as recomputed from frames.parquet
    per_frame = frames.groupby(["video", "frame"])["score"].max().groupby("video").mean()
    ok = v[v["status"] == "ok"]
    assert np.allclose(ok["score"], per_frame.loc[ok.index], atol=1e-6)

    # one stored score recomputed by hand: the frame, its detected face, the evaluation crop, the model
    row = frames[frames["video"] == f"real/{clips[0]}"].iloc[-1]
    _, frame = next(read_frames(suite / "real" / f"{clips[0]}.mp4", np.array([row["frame"]])))
    with FaceLandmarker() as faces:
        det = faces.detect(frame)[int(row["face"])]
    assert np.allclose(det.box, row[["x0", "y0", "x1", "y1"]].astype(float), atol=1e-3)
    model, info = load_detector(tiny_ckpt)
    expected = predict(model, eval_crop(frame, det.box, info["size"])[None], 1, "cpu")[0]
    assert row["score"] == pytest.approx(float(expected), abs=1e-5)

    table = result.table.set_index("method")
    assert list(table.index) == ["Blank", "Deepfakes", "NeuralTextures", "all"]
    assert table.loc["all", "video_auc"] == pytest.approx(roc_auc_score(v["label"], v["score"]))
    assert table.loc["all", "n_real"] == 9 and table.loc["all", "n_fake"] == 3
    csv = pd.read_csv(folder / "table.csv")
    assert set(csv["frames_per_video"]) == {4} and set(csv["checkpoint"]) == {str(tiny_ckpt)}
    assert set(csv["training_data"]) == {"ff++_c23"} and set(csv["level"]) == {"video"}
    assert (folder / "roc.png").read_bytes()[:4] == b"\x89PNG"
    text = render(result)
    assert "1 without a face" in text and "1 failed" in text and "| all |" in text


@pytest.mark.slow
@pytest.mark.realmedia
def test_bench_perturbations_via_cli(suite: Path, tiny_ckpt: Path, ray_local, tmp_path: Path,
                                     capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    images = tmp_path / "images"
    for rel in ("real/ffpp_original.png", "fake/Deepfakes/df.png", "fake/NeuralTextures/nt.png"):
        link(suite / rel, images / rel, copy=True)
    csv = tmp_path / "list.csv"
    csv.write_text(f"{images}/real/ffpp_original.png,0\n{images}/fake/Deepfakes/df.png,1,Deepfakes\n")
    out = tmp_path / "eval"
    monkeypatch.setattr(sys, "argv", ["fiagen", "bench", "--suite", f"folder:{images}", "--suite", f"folder:{csv}",
                                      "--ckpt", str(tiny_ckpt), "--out", str(out), "--perturb", "blur,contrast",
                                      "--levels", "1,5", "--quiet"])
    with pytest.raises(SystemExit) as code:
        main()
    printed = capsys.readouterr().out
    assert code.value.code == 0, printed
    assert "## summary" in printed and "R_AUC" in printed
    summary = pd.read_csv(out / "bench.csv")
    assert summary["suite"].tolist() == [f"folder:{images}", f"folder:{csv}"]
    folder = out / suite_dirname(f"folder:{images}")
    rob = pd.read_csv(folder / "robustness.csv")
    assert sorted(zip(rob["perturbation"], rob["level"], strict=False)) == [("blur", 1), ("blur", 5), ("contrast", 1),
                                                              ("contrast", 5)]
    raw_auc = pd.read_csv(folder / "table.csv").set_index("method").loc["all", "video_auc"]
    assert np.allclose(rob["r_auc"], (rob["auc"] - raw_auc) / raw_auc)
    assert (folder / "robustness.png").read_bytes()[:4] == b"\x89PNG"
    raw, _ = read_scores(folder)
    blurred, _ = read_scores(folder / "perturb" / "blur-5")
    both = raw.merge(blurred, on=["video", "frame", "face"], suffixes=("", "_blur"))
    assert len(both) == len(raw) == 3
    assert np.allclose(both[["x0", "y0", "x1", "y1"]], both[["x0_blur", "y0_blur", "x1_blur", "y1_blur"]])  # same faces
    assert not np.allclose(both["score"], both["score_blur"])  # scored on blurred pixels


@pytest.mark.realmedia
def test_evaluate_config_with_two_suites_scores_both(suite: Path, tiny_ckpt: Path, ray_local, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """`fiagen evaluate --config f.yaml` whose `suites` lists two scores both (as bench), never only the first."""
    images = tmp_path / "images"
    for rel in ("real/ffpp_original.png", "fake/Deepfakes/df.png", "fake/NeuralTextures/nt.png"):
        link(suite / rel, images / rel, copy=True)
    csv = tmp_path / "list.csv"
    csv.write_text(f"{images}/real/ffpp_original.png,0\n{images}/fake/Deepfakes/df.png,1,Deepfakes\n")
    suites = [f"folder:{images}", f"folder:{csv}"]
    config = tmp_path / "eval.yaml"
    config.write_text(json.dumps({"suites": suites, "ckpt": str(tiny_ckpt), "out": str(tmp_path / "eval"),
                                  "concurrency": 1}))  # JSON is YAML
    monkeypatch.setattr(sys, "argv", ["fiagen", "evaluate", "--config", str(config), "--dry-run"])
    with pytest.raises(SystemExit) as code:
        main()
    assert code.value.code == 0 and yaml.safe_load(capsys.readouterr().out)["suites"] == suites
    monkeypatch.setattr(sys, "argv", ["fiagen", "evaluate", "--config", str(config), "--quiet"])
    with pytest.raises(SystemExit) as code:
        main()
    printed = capsys.readouterr().out
    assert code.value.code == 0, printed
    for spec in suites:
        assert (tmp_path / "eval" / suite_dirname(spec) / "table.csv").is_file(), spec
        assert spec in printed
    assert pd.read_csv(tmp_path / "eval" / "bench.csv")["suite"].tolist() == suites and "## summary" in printed
    with pytest.raises(ConfigError, match="evaluate scores one suite, got 2 .* use bench"):
        evaluate(EvalConfig(suites=tuple(suites), ckpt=str(tiny_ckpt), out=str(tmp_path / "again")))
