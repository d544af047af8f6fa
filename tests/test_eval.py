"""Evaluation pieces without Ray: metrics, aggregation, tables, perturbations, score store, GradCAM."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from skimage import data as skdata
from sklearn.metrics import accuracy_score, average_precision_score, roc_auc_score, roc_curve
from torch import nn

from fiagen.evaluate.explain import ExplainError, gradcam
from fiagen.evaluate.metrics import binary_metrics, eer
from fiagen.evaluate.perturb import PERTURBATIONS, PerturbError, parse_levels, parse_perturb
from fiagen.evaluate.store import ScoreStore, read_scores
from fiagen.evaluate.tables import (
    SMALL_SAMPLE_NOTE,
    frame_scores,
    robustness_table,
    suite_table,
    video_scores,
    write_table,
)


def test_metrics_equal_sklearn() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 500)
    scores = np.clip(rng.normal(0.35 + 0.3 * labels, 0.2), 0, 1)
    m = binary_metrics(labels, scores)
    assert m["auc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert m["ap"] == pytest.approx(average_precision_score(labels, scores), abs=1e-12)
    assert m["acc"] == pytest.approx(accuracy_score(labels, scores >= 0.5), abs=1e-12)
    fpr, tpr, _ = roc_curve(labels, scores)
    brute = fpr[np.argmin(np.abs((1 - tpr) - fpr))]  # the ROC point nearest the crossing
    assert m["eer"] == pytest.approx(brute, abs=0.01)
    assert 0.15 < m["eer"] < 0.35


def test_metrics_known_values() -> None:
    labels, scores = np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])
    m = binary_metrics(labels, scores)
    assert m["auc"] == 0.75 and m["eer"] == 0.5 and m["acc"] == 0.75
    assert eer(labels, np.array([0.1, 0.2, 0.8, 0.9])) == 0.0
    assert eer(labels, np.array([0.9, 0.8, 0.2, 0.1])) == 1.0
    one_class = binary_metrics(np.array([1, 1]), np.array([0.7, 0.2]))
    assert np.isnan(one_class["auc"]) and one_class["acc"] == 0.5


def faces_table() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Three videos: A (two frames, two faces in frame 0), B (one frame), C without any face."""
    rows = [("A", 0, 0, 0.2), ("A", 0, 1, 0.9), ("A", 1, 0, 0.4), ("B", 3, 0, 0.3)]
    meta = {"A": (1, "Deepfakes"), "B": (0, "real"), "C": (0, "real")}
    frames = pd.DataFrame([{"video": v, "frame": f, "face": k, "score": s, "label": meta[v][0], "method": meta[v][1],
                            "pool": "p", "family": ""} for v, f, k, s in rows])
    videos = pd.DataFrame([{"video": v, "label": lab, "method": m, "pool": "p", "family": ""}
                           for v, (lab, m) in meta.items()])
    return frames, videos


def test_aggregation_max_over_faces_then_mean_over_frames() -> None:
    frames, videos = faces_table()
    per_frame = frame_scores(frames)
    assert per_frame.set_index(["video", "frame"])["score"].to_dict() == {("A", 0): 0.9, ("A", 1): 0.4, ("B", 3): 0.3}
    scores = video_scores(frames, videos["video"])
    assert scores.to_dict() == pytest.approx({"A": 0.65, "B": 0.3, "C": 0.5})  # not mean over faces (0.5)


def test_suite_table_levels_and_methods() -> None:
    frames, videos = faces_table()
    table = suite_table(frames, videos, "video").set_index("method")
    assert list(table.index) == ["Deepfakes", "all"] and "family" not in table.columns
    # video level: A=0.65 (fake) vs B=0.3, C=0.5 (real) -> perfectly ranked
    assert table.loc["all", "video_auc"] == 1.0 and table.loc["all", "n_real"] == 2
    # frame level: fake frames 0.9, 0.4 vs real frame 0.3 (C has no frame)
    assert table.loc["all", "frame_auc"] == roc_auc_score([1, 1, 0], [0.9, 0.4, 0.3])
    assert table.loc["all", "acc"] == pytest.approx(accuracy_score([1, 0, 0], [1, 0, 1]))  # 0.5 counts as fake
    frame_level = suite_table(frames, videos, "frame").set_index("method")
    assert frame_level.loc["all", "acc"] == pytest.approx(accuracy_score([1, 1, 0], [1, 0, 0]))


def test_suite_table_pools_and_families() -> None:
    rows, vids = [], []
    for vid, label, method, pool, family, score in (
            ("f1", 1, "simswap_ff", "ff", "FS", 0.9), ("f2", 1, "mj", "mj", "EFS", 0.2),
            ("r1", 0, "real", "ff", "", 0.1), ("r2", 0, "real", "mj", "", 0.6)):
        rows.append({"video": vid, "frame": 0, "face": 0, "score": score, "label": label, "method": method,
                     "pool": pool, "family": family})
        vids.append({"video": vid, "label": label, "method": method, "pool": pool, "family": family})
    table = suite_table(pd.DataFrame(rows), pd.DataFrame(vids), "frame").set_index("method")
    # each method against its own pool's reals only
    assert table.loc["simswap_ff", "frame_auc"] == 1.0 and table.loc["simswap_ff", "n_real"] == 1
    assert table.loc["mj", "frame_auc"] == 0.0
    assert table.loc["[FS]", "n_fake"] == 1 and table.loc["all", "n_real"] == 2


def test_tables_written_with_stamp(tmp_path) -> None:
    frames, videos = faces_table()
    stamp = {"level": "video", "frames_per_video": 32, "checkpoint": "runs/x/best.pt", "training_data": "ff++_c23"}
    paths = write_table(suite_table(frames, videos, "video"), stamp, tmp_path / "table", "demo_suite")
    csv = pd.read_csv(paths["csv"])
    assert set(csv["frames_per_video"]) == {32} and set(csv["training_data"]) == {"ff++_c23"}
    assert csv.set_index("method").loc["all", "video_auc"] == 1.0
    tex = paths["tex"].read_text()
    assert "frames\\_per\\_video: 32" in tex and "demo\\_suite" in tex and "\\begin{tabular}" in tex
    md = paths["md"].read_text()
    assert "level: video" in md and "| all |" in md
    rob = robustness_table({"blur": {1: 0.9, 5: 0.6}}, 0.8).set_index("level")
    assert rob.loc[1, "r_auc"] == pytest.approx(0.125) and rob.loc[5, "r_auc"] == pytest.approx(-0.25)



def test_rows_with_fewer_than_10_real_or_fake_units_are_flagged(tmp_path) -> None:
    def table(n_real: int, n_fake: int) -> pd.DataFrame:
        vids = [{"video": f"r{k}", "label": 0, "method": "real", "pool": "p", "family": ""} for k in range(n_real)]
        vids += [{"video": f"f{k}", "label": 1, "method": "DF", "pool": "p", "family": ""} for k in range(n_fake)]
        frames = pd.DataFrame([{**v, "frame": 0, "face": 0, "score": 0.2 + 0.6 * v["label"]} for v in vids])
        return suite_table(frames, pd.DataFrame(vids), "video")

    one_vs_one = table(1, 1)
    assert one_vs_one.set_index("method")["small_sample"].to_dict() == {"DF": "yes", "all": "yes"}
    assert one_vs_one.set_index("method").loc["all", "video_auc"] == 1.0  # a perfect, meaningless AUC
    paths = write_table(one_vs_one, {"level": "video"}, tmp_path / "table", "one_vs_one")
    assert pd.read_csv(paths["csv"])["small_sample"].tolist() == ["yes", "yes"]
    md = paths["md"].read_text()
    assert "| small_sample |" in md.splitlines()[4] and md.rstrip().endswith(SMALL_SAMPLE_NOTE)
    assert "small\\_sample = yes: fewer than 10 real or 10 fake units" in paths["tex"].read_text()
    assert table(10, 9).set_index("method").loc["all", "small_sample"] == "yes"
    enough = table(10, 10)
    assert enough["small_sample"].tolist() == ["", ""]
    paths = write_table(enough, {"level": "video"}, tmp_path / "enough", "enough")
    assert SMALL_SAMPLE_NOTE not in paths["md"].read_text() and "fewer than" not in paths["tex"].read_text()

@pytest.fixture(scope="module")
def face_image() -> np.ndarray:
    return np.ascontiguousarray(skdata.astronaut()[:256, 96:352])


def laplacian_var(img: np.ndarray) -> float:
    return float(cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var())


def sweep(name: str, img: np.ndarray, measure) -> list[float]:
    return [measure(PERTURBATIONS[name].apply(img, lv, np.random.default_rng(1))) for lv in range(1, 6)]


def strictly(values: list[float], falling: bool) -> bool:
    pairs = list(zip(values, values[1:], strict=False))
    return all(a > b for a, b in pairs) if falling else all(a < b for a, b in pairs)


def chroma(img: np.ndarray) -> float:
    return float(np.abs(cv2.cvtColor(img, cv2.COLOR_RGB2YCrCb)[..., 1:].astype(float) - 128).mean())


def grey_pixels(img: np.ndarray) -> int:
    return int((img == 128).all(axis=2).sum())


def test_perturbations_monotone_in_level(face_image: np.ndarray) -> None:
    img = face_image

    def jpeg_bytes(level: int) -> int:
        quality = PERTURBATIONS["jpeg"].params[level - 1]
        return len(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])[1])

    def error(out: np.ndarray) -> float:
        return float(np.abs(out.astype(float) - img).mean())

    assert strictly([jpeg_bytes(lv) for lv in range(1, 6)], falling=True)
    assert strictly(sweep("jpeg", img, error), falling=False)
    assert strictly(sweep("blur", img, laplacian_var), falling=True)
    assert strictly(sweep("pixelate", img, laplacian_var), falling=True)
    assert strictly(sweep("contrast", img, lambda out: float(out.mean())), falling=True)
    assert strictly(sweep("saturation", img, chroma), falling=True) and sweep("saturation", img, chroma)[-1] < 1.0
    assert strictly(sweep("noise", img, error), falling=False)
    assert strictly(sweep("block", img, grey_pixels), falling=False)
    assert 14 * 64 < sweep("block", img, grey_pixels)[0] <= 16 * 64  # 16 grey 8x8 blocks on 256 px (may overlap)
    a = PERTURBATIONS["noise"].apply(img, 3, np.random.default_rng(7))
    b = PERTURBATIONS["noise"].apply(img, 3, np.random.default_rng(7))
    assert np.array_equal(a, b) and a.dtype == np.uint8 and a.shape == img.shape


def test_perturbation_options() -> None:
    assert parse_perturb("blur, jpeg") == ("blur", "jpeg") and parse_perturb("") == ()
    assert parse_levels("1-5") == (1, 2, 3, 4, 5) and parse_levels("5,1,3") == (1, 3, 5)
    with pytest.raises(PerturbError, match="H.264"):
        parse_perturb("blur,compression")
    with pytest.raises(PerturbError, match="unknown perturbation sharpen"):
        parse_perturb("sharpen")
    for bad in ("0-3", "6", "a-b"):
        with pytest.raises(PerturbError):
            parse_levels(bad)


def video_row(vid: str) -> dict:
    return {"video": vid, "path": f"/x/{vid}.mp4", "label": 0, "method": "real", "pool": "p", "family": "",
            "frames_sampled": 4, "frames_with_face": 1, "faces": 1, "score": 0.25, "status": "ok", "reason": ""}


def frame_row(vid: str) -> dict:
    return {"video": vid, "frame": 0, "face": 0, "score": 0.25, "label": 0, "method": "real", "pool": "p",
            "family": "", "x0": 1.0, "y0": 2.0, "x1": 3.0, "y1": 4.0, "det_score": 0.9}


def test_store_chunks_and_crash_recovery(tmp_path) -> None:
    store = ScoreStore(tmp_path)
    store.add([frame_row("a")], video_row("a"))
    store.add([], {**video_row("b"), "faces": 0, "status": "no_face", "score": 0.5})
    store.flush()
    store.add([frame_row("c")], video_row("c"))
    store.flush()
    assert store.done() == {"a", "b", "c"}
    assert sorted(p.name for p in (tmp_path / "frames.parquet").iterdir()) == ["part-00000.parquet",
                                                                            "part-00001.parquet"]
    # A run killed between writing a chunk's frames part and its videos part: the orphan goes on reopen.
    pq.write_table(pq.read_table(tmp_path / "frames.parquet" / "part-00001.parquet"),
                   tmp_path / "frames.parquet" / "part-00002.parquet")
    reopened = ScoreStore(tmp_path)
    assert not (tmp_path / "frames.parquet" / "part-00002.parquet").exists()
    frames, videos = read_scores(tmp_path)
    assert frames["video"].tolist() == ["a", "c"] and videos["video"].tolist() == ["a", "b", "c"]
    assert pd.read_parquet(tmp_path / "frames.parquet")["score"].tolist() == pytest.approx([0.25, 0.25])
    reopened.add([frame_row("d")], video_row("d"))
    reopened.flush()
    assert (tmp_path / "videos.parquet" / "part-00002.parquet").exists()


class BrightSpot(nn.Module):
    """conv -> relu -> global average -> positive linear: the logit grows with bright regions."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        nn.init.constant_(self.conv.weight, 0.1)
        nn.init.constant_(self.conv.bias, -0.2)
        self.fc = nn.Linear(4, 1)
        nn.init.constant_(self.fc.weight, 1.0)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3))).squeeze(1)


def test_gradcam_highlights_what_drives_the_logit() -> None:
    x = torch.zeros(1, 3, 32, 32)
    x[:, :, 4:12, 20:28] = 1.0  # a bright square top right
    model = BrightSpot()
    cam = gradcam(model, x)
    assert cam.layer == "conv" and cam.cams.shape == (1, 32, 32)
    assert cam.cams.min() >= 0 and cam.cams.max() == pytest.approx(1.0)
    inside = cam.cams[0, 4:12, 20:28].mean()
    outside = np.delete(cam.cams[0].ravel(), np.ravel_multi_index(np.mgrid[4:12, 20:28].reshape(2, -1), (32, 32)))
    assert inside > 0.8 and outside.mean() < 0.2
    assert cam.probs[0] == pytest.approx(torch.sigmoid(model(x))[0].item())
    with pytest.raises(ExplainError, match="no layer 'head'"):
        gradcam(model, x, layer="head")
