"""Published figures beside a run's own (docs/paper.yaml's `reference:`): the comparison's values, the one-line
errors of a bad section, the GPU-hours estimate of --dry-run, and a small bench run that prints the table."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from fiagen.train.checkpoint import save_checkpoint
from fiagen.train.model import build_detector
from fiagen.workflow.pipeline_file import PipelineError, read_pipeline
from fiagen.workflow.reference import compare, estimate, markdown, parse_reference
from fiagen.workflow.run import dry_run, run_pipeline

REPO = Path(__file__).resolve().parents[1]


def _table(rows: dict[str, tuple[float, float]]) -> pd.DataFrame:
    return pd.DataFrame([{"method": m, "frame_auc": f, "video_auc": v} for m, (f, v) in rows.items()])


def test_the_comparison_takes_the_level_and_the_methods_the_figure_names() -> None:
    ref = parse_reference({"source": "paper", "suites": {
        "cdf_v2": {"auc": 94.1, "level": "video"},  # a percentage, as papers print it
        "df40": {"auc": 0.878, "level": "frame", "methods": ["uniface", "e4s"]}}}, ["cdf_v2", "df40"])
    tables = {"cdf_v2": _table({"all": (0.80, 0.90)}),
              "df40": _table({"uniface": (0.70, 0.99), "e4s": (0.90, 0.99), "fsgan": (0.10, 0.10), "all": (0.5, 0.5)})}
    rows = compare(ref, tables)
    assert [(r["suite"], r["published_auc"], r["this_run_auc"], r["difference"]) for r in rows] == [
        ("cdf_v2", 0.941, 0.9, -0.041), ("df40", 0.878, 0.8, -0.078)]
    text = markdown(ref, rows)
    assert "| cdf_v2 | video | 0.941 | 0.900 | -0.041 |" in text
    assert "| df40 (mean of 2 methods) | frame | 0.878 | 0.800 | -0.078 |" in text
    # a suite that was not scored, or lacks a named method, has no figure of its own: '-' rather than a guess
    rows = compare(ref, {"df40": _table({"uniface": (0.7, 0.9), "all": (0.5, 0.5)})})
    assert [r["this_run_auc"] for r in rows] == [None, None]
    assert "| cdf_v2 | video | 0.941 | - | - |" in markdown(ref, rows)


@pytest.mark.parametrize(("section", "message"), [
    ({"suites": {"cdfv2": 0.9}}, "suite(s) cdfv2 have a published figure but the bench stage does not score them"),
    ({"suites": {"cdf_v2": {"auc": 0.9, "level": "clip"}}}, "expected an AUC in [0, 1] (or a percentage) and a level"),
    ({"suites": {"cdf_v2": {"level": "video"}}}, "suite 'cdf_v2' needs an AUC"),
    ({"source": "x", "suites": {}, "table": 3}, "unknown key(s) table"),
    ([0.9], "expected a mapping with `source` and `suites"),
])
def test_a_bad_reference_section_is_one_line(section: object, message: str) -> None:
    with pytest.raises(PipelineError) as err:
        parse_reference(section, ["cdf_v2"])
    assert message in str(err.value) and "\n" not in str(err.value)


def test_paper_yaml_names_the_papers_figures() -> None:
    data = read_pipeline(REPO / "docs" / "paper.yaml")
    ref = parse_reference(data["reference"], data["bench"]["suite"])
    assert {f.suite: (f.auc, f.level) for f in ref.figures} == {
        "cdf_v2": (0.941, "video"), "dfdc": (0.732, "video"), "dfdcp": (0.866, "video"), "df40": (0.878, "frame")}
    assert data["train"]["backbone"] == "efficientnet_b4" and data["train"]["size"] == 380
    assert data["precompute"]["frames"] == 32


def test_the_estimate_counts_the_steps_of_the_run() -> None:
    class Train:
        run, epochs, batch_size, train_workers = "/nonexistent", 50, 12, 2

    est = estimate(Train(), 720, 32, 0.5)
    assert (est.frames, est.steps) == (23040, 50 * 960)  # 23,040 frames over 24 pairs a step
    assert est.gpu_hours == pytest.approx(50 * 960 * 0.5 / 3600)
    assert "GPU hours" in est.line(2) and f"{est.gpu_hours * 2:.1f}" in est.line(2)
    assert "pass --step-seconds" in estimate(Train(), 720, 32, None).line(1)


def test_dry_run_prints_the_estimate_and_the_figures(tmp_path: Path) -> None:
    clips = tmp_path / "clips"
    for k in range(5):
        (clips / "train").mkdir(parents=True, exist_ok=True)
        (clips / "train" / f"v{k}.mp4").write_bytes(b"")
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(yaml.safe_dump({
        "precompute": {"src": f"folder:{clips}", "out": str(tmp_path / "out"), "frames": 8},
        "train": {"run": str(tmp_path / "run"), "epochs": 3, "batch_size": 4, "backbone": "resnet10t"}}))
    text = dry_run(pipeline, step_seconds=2.0)
    assert "# estimate: 5 train videos x 8 frames = 40 frames, 30 steps x 2 s (given) = 0.0 GPU hours" in text


@pytest.mark.slow
@pytest.mark.realmedia
def test_a_bench_run_prints_the_published_figure_beside_its_own(test_data: Path, ray_local, tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    for src, dst in [(test_data / "real_images" / "skimage_astronaut.png", "real/a.png"),
                     (test_data / "ffpp_frames" / "ex_original.png", "real/b.png"),
                     (test_data / "ffpp_frames" / "ex_deepfakes.png", "fake/df.png"),
                     (test_data / "ffpp_frames" / "ex_neuraltextures.png", "fake/nt.png")]:
        (suite / dst).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, suite / dst)
    torch.manual_seed(0)
    det = build_detector("resnet10t", 64)
    torch.nn.init.normal_(det.net.get_classifier().weight, std=0.1)
    ckpt = save_checkpoint(tmp_path / "run" / "best.pt", det, epoch=1, val_auc=0.8, train_data="unit")
    spec, out = f"folder:{suite}", tmp_path / "eval"
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(yaml.safe_dump({
        "bench": {"suite": [spec], "ckpt": str(ckpt), "out": str(out), "frames": 2, "quiet": True},
        "reference": {"source": "a paper", "suites": {spec: {"auc": 0.75, "level": "frame"}}}}))
    lines: list[str] = []
    run_pipeline(pipeline, echo=lines.append)
    saved = json.loads((out / "reference.json").read_text())
    row = saved["rows"][0]
    tables = list(out.glob("*/table.csv"))
    ours = pd.read_csv(tables[0]).set_index("method").loc["all", "frame_auc"]
    assert row["published_auc"] == 0.75 and row["this_run_auc"] == pytest.approx(round(float(ours), 4))
    assert row["difference"] == pytest.approx(round(float(ours) - 0.75, 4))
    assert f"| {spec} | frame | 0.750 | {row['this_run_auc']:.3f} | {row['difference']:+.3f} |" in "\n".join(lines)
    assert saved["source"] == "a paper"
