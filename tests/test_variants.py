"""`fiagen run` with `variants:` and `seeds:`: every variant x seed trained from one precompute output,
scored on the same suites, one side-by-side table; a rerun trains and scores nothing; bad variants are
refused before anything runs. Tiny scale: resnet10t from scratch at 64 px, one epoch of 3 steps on the
astronaut shards (tests/conftest.py's fia_shards), a folder suite of 4 astronaut images and the pseudo:
suite of the same shards."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from fiagen.cli.main import cli
from fiagen.workflow.pipeline_file import PipelineError, read_pipeline
from fiagen.workflow.plan import deep_merge, plan_variants, plan_yaml, suite_label
from fiagen.workflow.run import dry_run, run_pipeline
from fiagen.workflow.variants import _parallel_trainings, _train_parallel


@pytest.fixture
def image_suite(astronaut_face, tmp_path: Path) -> Path:
    """PATH/real/ (the astronaut, mirrored) and PATH/fake/ (colour-shifted, blurred) at 256 px."""
    image = astronaut_face[0]
    suite = tmp_path / "faces"
    shifted = np.clip(image.astype(np.int16) + np.array([30, -20, 10], np.int16), 0, 255).astype(np.uint8)
    for sub, name, img in (("real", "a", image), ("real", "b", image[:, ::-1]), ("fake", "c", shifted),
                           ("fake", "d", cv2.GaussianBlur(image, (7, 7), 3))):
        (suite / sub).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(suite / sub / f"{name}.png"), cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2BGR))
    return suite


def _pipeline(tmp_path: Path, shards: Path, suite: Path, **extra) -> Path:
    path = tmp_path / "variants.yaml"
    path.write_text(yaml.safe_dump({
        "train": {"shards": str(shards), "run": str(tmp_path / "runs"), "backbone": "resnet10t", "pretrained": "none",
                  "size": 64, "epochs": 1, "batch_size": 4, "affs_batches": 1, "loader_workers": 0, "quiet": True},
        "bench": {"suite": [f"folder:{suite}", f"pseudo:{shards}:sbi"], "frames": 1, "quiet": True},
        "variants": [{"name": "full"}, {"name": "sbi_bce", "ablation": "sbi", "lambdas": [1, 0, 0]}],
        "seeds": [0],
        **extra,
    }))
    return path


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slow
def test_two_variants_side_by_side_and_a_rerun_does_nothing(fia_shards: Path, image_suite: Path, ray_local,
                                                            tmp_path: Path) -> None:
    pipeline = _pipeline(tmp_path, fia_shards, image_suite, out=str(tmp_path / "table"))
    printed = dry_run(pipeline)
    runs = [line for line in printed.splitlines() if line.startswith("  - {variant:")]
    assert len(runs) == 2 and "ablation: \"sbi\"" in runs[1] and str(tmp_path / "runs" / "sbi_bce" / "seed0") in runs[1]
    assert CliRunner().invoke(cli, ["run", str(pipeline), "--dry-run"]).stdout == printed

    lines: list[str] = []
    first = run_pipeline(pipeline, echo=lines.append)
    assert [(o.stage, o.status) for o in first] == [
        ("train full/seed0", "ran"), ("bench full/seed0", "ran"), ("train sbi_bce/seed0", "ran"),
        ("bench sbi_bce/seed0", "ran"), ("variants", "ran")]
    out = tmp_path / "table"
    table = json.loads((out / "variants.json").read_text())
    assert list(table["suites"]) == ["faces", "pseudo-sbi"] and table["mean_over"] == ["faces"]
    rows = {r["variant"]: r for r in table["rows"]}
    assert list(rows) == ["full", "sbi_bce"]
    for row in rows.values():
        for label in ("faces", "pseudo-sbi"):
            for metric in ("frame_auc", "video_auc"):
                assert 0.0 <= row[f"{label}_{metric}"] <= 1.0 and row[f"{label}_{metric}_spread"] == 0
        assert row["mean_video_auc"] == row["faces_video_auc"]
        assert 0.0 <= row["best_val_auc"] <= 1.0 and row["train_seconds"] > 0 and row["runs"] == 1
    # the csv and markdown say the same
    for got in _csv(out / "variants.csv"):
        want = rows[got["variant"]]
        assert set(got) == set(table["columns"])
        for key, value in got.items():
            if isinstance(want[key], float):
                assert math.isclose(float(value), want[key])
    md = (out / "variants.md").read_text()
    assert "| variant | seeds | faces frame | faces video | pseudo-sbi frame | pseudo-sbi video |" in md
    for name, row in rows.items():
        line = next(x for x in md.splitlines() if x.startswith(f"| {name} |"))
        assert f"{row['faces_video_auc']:.3f}" in line and f"{row['pseudo-sbi_frame_auc']:.3f}" in line
    # each run's own outputs, and the breakdowns beside the table
    assert (tmp_path / "runs" / "sbi_bce" / "seed0" / "eval" / "variant_scores.json").is_file()
    assert sorted(p.name for p in (out / "breakdown").iterdir()) == ["full-seed0.csv", "sbi_bce-seed0.csv"]
    breakdown = _csv(out / "variants_breakdown.csv")
    assert [r["variant"] for r in breakdown] == ["full", "sbi_bce"]
    assert float(breakdown[1]["mask:hull81"]) >= 0 and not breakdown[1]["mask:rect4"]  # sbi: hull masks only

    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").rglob("*") if p.suffix in (".pt", ".parquet")}
    second = run_pipeline(pipeline, echo=lines.append)
    assert [(o.stage, o.status) for o in second][:-1] == [
        ("train full/seed0", "complete"), ("bench full/seed0", "complete"), ("train sbi_bce/seed0", "complete"),
        ("bench sbi_bce/seed0", "complete")]
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert json.loads((out / "variants.json").read_text())["rows"] == table["rows"]
    # a run whose scores were left unrecorded (killed while scoring) is scored from the scores on disk
    (tmp_path / "runs" / "full" / "seed0" / "eval" / "variant_scores.json").unlink()
    third = run_pipeline(pipeline, echo=lines.append)
    assert [(o.stage, o.status) for o in third][:2] == [("train full/seed0", "complete"),
                                                        ("bench full/seed0", "complete")]
    assert "(0 videos scored now)" in third[1].detail
    assert json.loads((out / "variants.json").read_text())["rows"] == table["rows"]


def test_bad_variants_are_refused_before_anything_runs(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    path = _pipeline(tmp_path, tmp_path / "shards", suite)
    data = yaml.safe_load(path.read_text())

    def refused(match: str, **change) -> None:
        path.write_text(yaml.safe_dump({**data, **change}))
        with pytest.raises(PipelineError, match=match) as err:
            run_pipeline(path, echo=lambda line: pytest.fail(f"ran: {line}"))
        assert "\n" not in str(err.value)

    refused(r"variant 'sbi': unknown option 'ablaton'",
            variants=[{"name": "full"}, {"name": "sbi", "ablaton": "sbi"}])
    refused(r"variant 'odd': .*ablation must be one of", variants=[{"name": "full"}, {"name": "odd", "ablation": "x"}])
    refused(r"variant 'lr': .*'seed' cannot be set per variant", variants=[{"name": "lr", "seed": 3}])
    refused(r"variant 'full': listed twice", variants=[{"name": "full"}, {"name": "full", "size": 96}])
    refused(r"variant #1: expected a mapping", variants=["sbi"])
    refused(r"seeds: expected a list", seeds="zero")
    refused(r"stage 'bench': 'ckpt' is set per run", bench={"suite": ["ff++"], "ckpt": "x.pt"})
    assert not (tmp_path / "runs").exists()
    path.write_text(yaml.safe_dump({"train": data["train"], "out": "x"}))
    with pytest.raises(PipelineError, match="`out` is where the variants table goes"):
        run_pipeline(path)


def test_nested_options_merge_key_by_key_and_suites_get_short_labels(tmp_path: Path) -> None:
    assert deep_merge({"a": 1, "generate": {"x": 1, "y": 2}, "lambdas": [1, 2, 3]},
                      {"generate": {"y": 5}, "lambdas": [1, 0, 0], "batch-size": 4}) == \
        {"a": 1, "generate": {"x": 1, "y": 5}, "lambdas": [1, 0, 0], "batch_size": 4}
    assert suite_label("folder:../shared/data/transfer/faceswap/") == "faceswap"
    assert suite_label(f"pseudo:{tmp_path}:sbi") == "pseudo-sbi"
    assert suite_label(f"pseudo:{tmp_path}") == "pseudo-full"
    assert suite_label("cdf_v2") == "cdf_v2"


def test_the_table6a_example_resolves_to_every_row_and_seed() -> None:
    # the plan `fiagen run --dry-run` prints once the FF++ and test data pass its checks (fiagen.workflow.checks)
    printed = plan_yaml(plan_variants(read_pipeline(Path(__file__).resolve().parents[1] / "docs" / "table6a.yaml")))
    runs = [line for line in printed.splitlines() if line.startswith("  - {variant:")]
    assert len(runs) == 9 * 3
    names = list(dict.fromkeys(line.split("variant: ")[1].split(",")[0] for line in runs))
    assert names == ["full", "no_mtms", "no_sr", "no_ae", "no_fia_usa", "no_pcr", "no_icr", "no_rcr", "no_affs"]
    changes = {line.split("variant: ")[1].split(",")[0]: line.split("seed0")[1] for line in runs if "seed: 0" in line}
    assert changes["full"] == "}" and changes["no_fia_usa"] == ', ablation: "sbi"}'
    assert changes["no_rcr"] == ", lambdas: [1.0, 0.0, 0.0]}" and changes["no_affs"] == ", affs: false}"


@pytest.mark.slow
def test_trainings_can_run_at_once_as_ray_tasks(fia_shards: Path, image_suite: Path, ray_local, tmp_path: Path) -> None:
    """What a cluster with GPUs gets (a Ray task per training, here without GPUs); locally they run one by one."""
    plan = plan_variants(yaml.safe_load(_pipeline(tmp_path, fia_shards, image_suite).read_text()))
    assert _parallel_trainings(plan, plan.runs, print) == {}  # no address: one after another
    done = _train_parallel(plan.runs, 0, lambda _: None)
    assert {k: o.status for k, o in done.items()} == {"full/seed0": "ran", "sbi_bce/seed0": "ran"}
    for run in plan.runs:
        assert (Path(run.train.run) / "last.pt").is_file()
