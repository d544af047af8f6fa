"""`fiagen predict` and `fiagen.Detector`: the same scores as evaluate, tracks, awkward inputs, outputs, resume."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from fiagen.predict.tracks import assign_tracks


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A resnet10t at 64 px whose head gives scores that differ from face to face."""
    import torch

    from fiagen.train.checkpoint import save_checkpoint
    from fiagen.train.model import build_detector

    torch.manual_seed(1)
    model = build_detector("resnet10t", 64)
    torch.nn.init.uniform_(model.net.get_classifier().weight, -0.3, 0.3)
    return save_checkpoint(tmp_path_factory.mktemp("predict_run") / "best.pt", model, epoch=2, val_auc=0.8,
                           train_data="unit")


@pytest.fixture(scope="module")
def media(test_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder suite mixing media: real/ a clip and a photo, fake/ a clip cut at 60% of its bytes (its
    container lists 175 frames, 102 decode) and an FF++ Deepfakes frame."""
    root = tmp_path_factory.mktemp("media")
    (root / "real").mkdir()
    (root / "fake").mkdir()
    (root / "real" / "clip.mp4").symlink_to(test_data / "real_videos" / "liveportrait_d18.mp4")
    (root / "real" / "astronaut.png").symlink_to(test_data / "real_images" / "skimage_astronaut.png")
    data = (test_data / "real_videos" / "liveportrait_d20.mp4").read_bytes()
    (root / "fake" / "cut.mp4").write_bytes(data[:int(len(data) * 0.6)])
    (root / "fake" / "df.png").symlink_to(test_data / "ffpp_frames" / "ex_deepfakes.png")
    return root


def test_tracks_follow_two_people_and_a_newcomer() -> None:
    left, right = np.array([10, 10, 50, 60.0]), np.array([200, 12, 240, 62.0])
    frames = [0, 0, 5, 5, 9, 9, 9]
    boxes = np.stack([right, left, left + 3, right - 4, right + 6, np.array([400, 300, 440, 350.0]), left + 5])
    assert assign_tracks(frames, boxes).tolist() == [0, 1, 1, 0, 0, 2, 1]  # ids in order of first appearance
    # a face far from every track starts a new one even when a track is free
    assert assign_tracks([0, 1], np.stack([left, left + 300])).tolist() == [0, 1]


@pytest.mark.slow
@pytest.mark.realmedia
def test_predict_scores_equal_evaluate_scores(media: Path, ckpt: Path, ray_local, tmp_path: Path) -> None:
    from fiagen.evaluate.runner import EvalConfig, evaluate
    from fiagen.evaluate.store import read_scores
    from fiagen.predict.detector import Detector

    result = evaluate(EvalConfig(suites=(f"folder:{media}",), ckpt=str(ckpt), out=str(tmp_path / "eval"), frames=4,
                                 quiet=True))
    frames, videos = read_scores(result.folder)
    assert (videos["status"] == "ok").all(), videos["reason"].tolist()
    with Detector.load(ckpt, frames=4) as det:
        for row in videos.itertuples():
            got = det.predict(row.path)
            assert got.status == "ok" and got.frames_sampled == row.frames_sampled
            assert got.score == pytest.approx(row.score, rel=1e-5, abs=1e-6), row.path
            assert len(got.frames) == row.frames_with_face and len(got.faces) == row.faces
            theirs = frames[frames["video"] == row.video].sort_values(["frame", "x0"])
            assert [f.frame for f in got.faces] == theirs["frame"].tolist()
            np.testing.assert_allclose([f.score for f in got.faces], theirs["score"], rtol=1e-5, atol=1e-6)
    cut = videos.set_index("video").loc["fake/cut"]
    assert cut["frames_shortfall"] == 73  # the container lies; both score the frames that decode


@pytest.mark.realmedia
def test_two_faces_get_two_tracks_and_score_crops_matches(test_data: Path, ckpt: Path) -> None:
    import torch

    from fiagen.generate.crop import eval_crop
    from fiagen.predict.detector import Detector

    astronaut = cv2.cvtColor(cv2.imread(str(test_data / "real_images" / "skimage_astronaut.png")), cv2.COLOR_BGR2RGB)
    half = astronaut[:300, 100:400]
    pair = np.concatenate([half, cv2.flip(half, 1)], axis=1)  # two people side by side
    with Detector.load(ckpt) as det:
        got = det.predict(pair)
        assert got.kind == "array" and got.status == "ok" and len(got.faces) == 2 and len(got.tracks) == 2
        left, right = sorted(got.faces, key=lambda f: f.box[0])
        assert (left.track, right.track) == (0, 1) and left.box[2] < 300 < right.box[0]
        crops = np.stack([eval_crop(pair, f.box, det.size) for f in (left, right)])
        np.testing.assert_allclose(det.score_crops(crops), [left.score, right.score], rtol=1e-6)
        assert [t.score for t in got.tracks] == pytest.approx([left.score, right.score])
        assert got.score == pytest.approx(max(left.score, right.score))
        # float crops in [0,1] (N, 3, S, S) and crops of another size take the same path
        as_float = crops.transpose(0, 3, 1, 2).astype(np.float32) / 255.0
        np.testing.assert_allclose(det.score_crops(as_float), [left.score, right.score], rtol=1e-5)
        np.testing.assert_allclose(det.score_crops(torch.from_numpy(as_float)), det.score_crops(as_float))
        big = [eval_crop(pair, f.box, 2 * det.size) for f in (left, right)]
        assert det.score_crops(big).shape == (2,)


@pytest.mark.realmedia
def test_every_gives_a_dense_timeline(media: Path, ckpt: Path) -> None:
    from fiagen.predict.detector import Detector

    with Detector.load(ckpt, every=2.5) as det:  # the clip lasts 7.2 s at 30 fps
        got = det.predict(media / "real" / "clip.mp4")
    assert got.frames_sampled == 3 and got.fps == 30.0 and got.duration == pytest.approx(7.2)
    assert [fr.time for fr in got.frames] == pytest.approx([0.0, 3.6, 7.1667], abs=1e-3)


def _mixed(media: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "inbox"
    (folder / "nested").mkdir(parents=True)
    for name in ("real/clip.mp4", "real/astronaut.png", "fake/cut.mp4"):
        (folder / "nested" / Path(name).name).symlink_to(media / name)
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not a video")
    cv2.imwrite(str(folder / "grey.png"), np.full((96, 128, 3), 120, np.uint8))
    (folder / "notes.txt").write_text("skipped: not media")  # a folder's non-media files are not inputs
    return folder


@pytest.mark.slow
@pytest.mark.realmedia
def test_cli_on_a_mixed_folder_writes_everything_exits_1_and_resumes(
        media: Path, ckpt: Path, tmp_path: Path, fiagen_main, monkeypatch: pytest.MonkeyPatch) -> None:
    folder, out = _mixed(media, tmp_path), tmp_path / "out"
    code, stdout, stderr = fiagen_main(["predict", "--ckpt", str(ckpt), "--frames", "3", "--out", str(out),
                                        "--render", "--chunk", "2", "-q", str(folder)])
    assert code == 1 and len(list((out / "scores" / "videos.parquet").glob("part-*.parquet"))) == 3  # 2 + 2 + 1
    assert re.search(r"error: 2 of 5 inputs not scored: .*broken\.mp4 \(failed: cannot open video", stderr)
    assert "grey.png (no_face: no face found in 1 sampled frame(s))" in stderr
    assert "threshold: 0.5 (default 0.5, not calibrated" in stdout and "detector: resnet10t @ 64 px" in stdout
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert {r["schema"] for r in rows} == {"fiagen.predictions/1"}
    by = {Path(r["input"]).name: r for r in rows}
    assert set(by) == {"clip.mp4", "astronaut.png", "cut.mp4", "broken.mp4", "grey.png"}
    assert [by[n]["status"] for n in ("clip.mp4", "astronaut.png", "cut.mp4", "broken.mp4", "grey.png")] == \
        ["ok", "ok", "ok", "failed", "no_face"]
    assert by["broken.mp4"]["score"] is None and by["broken.mp4"]["verdict"] == "failed"
    assert "container lists 175 frames, the stream ended after 102" in by["cut.mp4"]["note"]
    for r in (by["clip.mp4"], by["astronaut.png"], by["cut.mp4"]):
        assert r["verdict"] == ("fake" if r["score"] >= 0.5 else "real") and r["threshold"] == 0.5
    # the table: most suspicious first, then the inputs without a score
    table = [line for line in stdout.splitlines() if line.split(" ")[0] in ("fake", "real", "failed", "no_face")]
    scored = sorted((r for r in rows if r["score"] is not None), key=lambda r: -r["score"])
    assert len(table) == 5 and all(f" {r['input']}" in line for r, line in zip(scored, table, strict=False))
    faces = pd.read_csv(out / "faces.csv")
    assert len(faces) == sum(r["faces"] for r in rows) and set(faces["input"]) == {r["input"] for r in scored}
    clip = faces[faces["input"] == by["clip.mp4"]["input"]]
    assert clip["time_s"].tolist() == pytest.approx([0.0, 3.6, 7.1667], abs=1e-3)
    assert clip["score"].max() == pytest.approx(json.loads(by["clip.mp4"]["track_scores"])[0]["peak"], abs=1e-4)
    csv = pd.read_csv(out / "predictions.csv")
    assert csv["input"].tolist() == [r["input"] for r in rows]
    timelines = sorted(p.name.split("-")[0] for p in (out / "timelines").glob("*.png"))
    assert timelines == ["clip", "cut"] and all(cv2.imread(str(p)) is not None for p in (out / "timelines").iterdir())
    video = cv2.VideoCapture(str(next((out / "render").glob("clip-*.mp4"))))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 216  # every frame of the 7.2 s clip, annotated
    assert cv2.imread(str(next((out / "render").glob("astronaut-*.png")))).shape == (512, 512, 3)

    # a rerun resumes: nothing is scored again, the same rows come out (here as JSON lines)
    from fiagen.predict.detector import Detector

    monkeypatch.setattr(Detector, "predict", lambda self, source: pytest.fail(f"scored again: {source}"))
    code, stdout, _ = fiagen_main(["predict", "--ckpt", str(ckpt), "--frames", "3", "--out", str(out), "--json",
                                   "-q", str(folder)])
    assert code == 1 and [json.loads(line) for line in stdout.splitlines()] == rows
    code, _, stderr = fiagen_main(["predict", "--ckpt", str(ckpt), "--frames", "4", "--out", str(out), str(folder)])
    assert code == 2 and "holds predictions made with other settings (frames differ)" in stderr


def test_cli_argument_errors_are_one_line(ckpt: Path, tmp_path: Path, fiagen_main) -> None:
    code, _, stderr = fiagen_main(["predict", "--ckpt", str(tmp_path / "model.bin"), str(tmp_path)])
    assert code == 2 and stderr.strip().endswith("model.bin: not a model file fiagen reads (suffixes: .onnx, .pt, .ts)")
    code, _, stderr = fiagen_main(["predict", "--ckpt", str(ckpt)])
    assert code == 2 and "no input given" in stderr


@pytest.mark.realmedia
def test_docs_python_example_runs(media: Path, ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture) -> None:
    text = (Path(__file__).parents[1] / "docs" / "predict.md").read_text()
    example = re.search(r"## Python API.*?```python\n(.*?)```", text, re.S).group(1)
    (tmp_path / "runs" / "demo").mkdir(parents=True)
    (tmp_path / "runs" / "demo" / "best.pt").symlink_to(ckpt)
    (tmp_path / "clip.mp4").symlink_to(media / "real" / "clip.mp4")
    monkeypatch.chdir(tmp_path)
    exec(compile(example, "docs/predict.md", "exec"), {})
    printed = capsys.readouterr().out
    assert re.search(r"clip\.mp4: P\(fake\) 0\.\d{4} over 8 frames, 8 faces, 1 tracks", printed), printed


@pytest.mark.realmedia
def test_demo_ends_with_two_held_out_predictions(test_data: Path, ckpt: Path, tmp_path: Path) -> None:
    from fiagen.predict.detector import Detector
    from fiagen.workflow.demo import predict_heldout

    suite = tmp_path / "heldout"
    for sub, src in (("real", "real_images/skimage_astronaut.png"), ("fake/fia-usa", "ffpp_frames/ex_deepfakes.png")):
        (suite / sub).mkdir(parents=True)
        (suite / sub / "0000.png").symlink_to(test_data / src)
    lines = predict_heldout(ckpt, suite)
    with Detector.load(ckpt) as det:
        scores = [det.predict(suite / sub / "0000.png").score for sub in ("real", "fake/fia-usa")]
    assert len(lines) == 2 and lines[0].startswith("predict heldout/real/0000.png (held-out real): ")
    assert lines[1].startswith("predict heldout/fake/fia-usa/0000.png (held-out fake): ")
    for line, score in zip(lines, scores, strict=True):
        assert f"{'fake' if score >= 0.5 else 'real'}, P(fake) {score:.4f}, 1 face(s); threshold 0.5 (default" in line
