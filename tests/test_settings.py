"""Stage settings from one mechanism (fiagen.core.settings): each stage's printed config (--dry-run) is a
--config file that resolves to the same config, and command-line options override the file."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from fiagen.cli.main import cli
from fiagen.core.settings import ConfigError, coerce
from fiagen.precompute.config import PrecomputeConfig

# Per stage: options that differ from the defaults in every kind of field (text, number, comma list, switch).
STAGES = {
    "precompute": ["--src", "folder:TMP/videos", "--out", "TMP/out", "--splits", "val,test", "--frames", "4",
                   "--limit", "2", "--compression", "gzip", "--concurrency", "2", "--quiet"],
    "train": ["--shards", "TMP/out", "--epochs", "3", "--lambdas", "1,2,0.5", "--no-affs", "--loader-workers", "0",
              "--train-workers", "2"],
    "evaluate": ["--suite", "folder:TMP/set", "--ckpt", "TMP/run/best.pt", "--perturb", "blur,jpeg", "--levels", "1,3",
                 "--face", "whole", "--min-face-score", "0.25", "--quiet"],
    "bench": ["--suite", "folder:TMP/set", "--suite", "pseudo:TMP/out:sbi", "--ckpt", "TMP/run/best.pt", "--level",
              "frame", "--limit", "5"],
    "preview": ["--shards", "TMP/out", "-n", "4", "--ablation", "sbi", "--no-affine", "--eval"],
    "generate": ["--shards", "TMP/out", "--export", "TMP/pairs", "--format", "deepfakebench", "--loader-workers", "2"],
    "inspect": ["--shards", "TMP/out", "--draw", "3", "--to", "TMP/drawn"],
    "explain": ["--ckpt", "TMP/run/best.pt", "--input", "TMP/a.mp4", "--out", "TMP/cam", "--frames", "2"],
    "demo": ["--out", "TMP/demo", "--backbone", "resnet10t", "--pretrained", "none", "--epochs", "2", "--lr", "0.1",
             "--quiet"],
}


def dry_run(args: list[str]) -> str:
    result = CliRunner().invoke(cli, [*args, "--dry-run"])
    assert result.exit_code == 0, result.output
    return result.stdout


def inputs(tmp: Path) -> Path:
    """What the dry-runs above check (fiagen.workflow.checks): a source folder, a precompute output (a
    manifest with val frames), a folder suite, a checkpoint file in torch's zip format, a video."""
    import zipfile

    import pandas as pd

    for name in ("videos/a.mp4", "set/real/a.png", "set/fake/b.png", "a.mp4"):
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / name).write_bytes(b"x")
    (tmp / "out").mkdir(exist_ok=True)
    pd.DataFrame({"shard": ["shards/val/00000.h5"], "split": ["val"], "video_id": ["v"],
                  "frame_index": [0]}).to_parquet(tmp / "out" / "manifest.parquet")
    (tmp / "run").mkdir(exist_ok=True)
    with zipfile.ZipFile(tmp / "run" / "best.pt", "w") as zf:
        zf.writestr("best/data.pkl", b"")
    return tmp


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_the_printed_config_round_trips_through_config(stage: str, tmp_path: Path) -> None:
    inputs(tmp_path)
    printed = dry_run([stage, *(a.replace("TMP", str(tmp_path)) for a in STAGES[stage])])
    (tmp_path / "c.yaml").write_text(printed)
    assert dry_run([stage, "--config", str(tmp_path / "c.yaml")]) == printed


def test_command_line_options_override_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(f"frames: 4\nsplits: [val]\nsrc: 'folder:{inputs(tmp_path) / 'videos'}'\n")
    printed = dry_run(["precompute", "--config", str(tmp_path / "c.yaml"), "--frames", "8"])
    assert "frames: 8\n" in printed and "splits: [val]\n" in printed


def test_config_values_are_typed_and_checked(tmp_path: Path) -> None:
    assert coerce(PrecomputeConfig, "splits", "val, test") == ("val", "test")
    assert coerce(PrecomputeConfig, "splits", ["train"]) == ("train",)
    assert coerce(PrecomputeConfig, "limit", None) is None and coerce(PrecomputeConfig, "frames", "4") == 4
    with pytest.raises(ConfigError, match="frames: expected int"):
        coerce(PrecomputeConfig, "frames", 2.5)
    with pytest.raises(ConfigError, match="frames: expected a number in"):
        coerce(PrecomputeConfig, "frames", 0)  # as --frames 0 is refused
    with pytest.raises(ConfigError, match="splits: expected train or val or test"):
        coerce(PrecomputeConfig, "splits", "val,tset")
    (tmp_path / "bad.yaml").write_text("frame: 4\n")
    result = CliRunner().invoke(cli, ["precompute", "--config", str(tmp_path / "bad.yaml"), "--dry-run"])
    assert "unknown key 'frame' (see fiagen precompute --help)" in str(result.exception)


def test_an_old_option_spelling_still_works_with_a_deprecation_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["generate", "--shards", str(inputs(tmp_path) / "out"), "--export",
                                      str(tmp_path / "p"), "--workers", "3", "--dry-run"])
    assert result.exit_code == 0 and "loader_workers: 3\n" in result.stdout
    assert "--workers is deprecated" in result.stderr and "use --loader-workers" in result.stderr


@pytest.mark.parametrize("stage, new", [("precompute", "concurrency"), ("evaluate", "concurrency"),
                                        ("bench", "concurrency"), ("demo", "concurrency"), ("train", "train_workers")])
def test_each_meaning_of_workers_has_its_own_word(stage: str, new: str, tmp_path: Path) -> None:
    """Ray tasks at once: --concurrency; Ray Train workers: --train-workers; DataLoader processes:
    --loader-workers. --workers (and a `workers:` key) still mean what they meant, with a deprecation line."""
    inputs(tmp_path)
    args = {"evaluate": ["--suite", f"folder:{tmp_path / 'set'}"], "train": ["--shards", str(tmp_path / "out")],
            "precompute": ["--src", f"folder:{tmp_path / 'videos'}"], "demo": []}.get(stage, [])
    args += ["--ckpt", str(tmp_path / "run" / "best.pt")] if stage in ("evaluate", "bench") else []
    args += ["--suite", f"folder:{tmp_path / 'set'}"] if stage == "bench" else []
    helptext = CliRunner().invoke(cli, [stage, "--help"]).output
    assert f"--{new.replace('_', '-')} " in helptext and "--workers" not in helptext
    result = CliRunner().invoke(cli, [stage, *args, "--workers", "3", "--dry-run"])
    assert result.exit_code == 0 and f"\n{new}: 3\n" in "\n" + result.stdout, result.output
    assert f"--workers is deprecated and goes in the next release; use --{new.replace('_', '-')}" in result.stderr
    (tmp_path / "c.yaml").write_text("workers: 2\n")
    result = CliRunner().invoke(cli, [stage, *args, "--config", str(tmp_path / "c.yaml"), "--dry-run"])
    assert result.exit_code == 0 and f"\n{new}: 2\n" in "\n" + result.stdout, result.output
    assert f"key 'workers' is deprecated and goes in the next release; use '{new}'" in result.stderr


def test_a_pipeline_file_takes_old_keys_too(tmp_path: Path) -> None:
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(f"precompute: {{src: 'folder:{inputs(tmp_path) / 'videos'}', out: {tmp_path / 'new'}, "
                        f"workers: 3}}\ntrain: {{workers: 2}}\n")
    result = CliRunner().invoke(cli, ["run", str(pipeline), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "  concurrency: 3\n" in result.stdout and "  train_workers: 2\n" in result.stdout
    assert "pipeline stage 'train': key 'workers' is deprecated" in result.stderr


def test_seed_has_one_meaning_in_every_command() -> None:
    for stage in ("train", "preview", "generate", "evaluate", "bench", "inspect", "demo"):
        helptext = " ".join(CliRunner().invoke(cli, [stage, "--help"]).output.split()).replace("- ", "-")
        assert "--seed INTEGER RANGE Root seed of this command's random choices:" in helptext, stage
        assert "The same seed draws the same pseudo-fakes in train, preview, generate and evaluate pseudo:" in helptext


def test_inspect_still_takes_the_folder_as_a_positional_argument(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["inspect", str(inputs(tmp_path) / "out"), "--dry-run"])
    assert result.exit_code == 0 and f"shards: {tmp_path / 'out'}\n" in result.stdout
    assert "use `fiagen inspect --shards OUT`" in result.stderr


def test_a_required_setting_may_come_from_the_config_file(tmp_path: Path) -> None:
    assert CliRunner().invoke(cli, ["preview", "--dry-run"]).exit_code == 2  # no --shards anywhere
    (tmp_path / "c.yaml").write_text(f"shards: {inputs(tmp_path) / 'out'}\n")
    assert f"shards: {tmp_path / 'out'}\n" in dry_run(["preview", "--config", str(tmp_path / "c.yaml")])


def test_a_pipeline_printed_by_run_dry_run_resolves_to_itself(tmp_path: Path) -> None:
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(f"precompute: {{src: 'folder:{inputs(tmp_path) / 'videos'}', out: {tmp_path / 'out'}, "
                        f"frames: 4}}\ntrain: {{epochs: 2, train_workers: 2}}\n"
                        f"bench: {{suite: [all, 'folder:{tmp_path / 'set'}'], perturb: blur}}\n")
    printed = dry_run(["run", str(pipeline)])
    assert f"  shards: {tmp_path / 'out'}\n" in printed  # train reads what precompute writes
    assert "  ckpt: runs/out-efficientnet_b4/best.pt\n" in printed and "  skip_missing_suites: true\n" in printed
    (tmp_path / "again.yaml").write_text(printed)
    assert dry_run(["run", str(tmp_path / "again.yaml")]) == printed
