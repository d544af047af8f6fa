"""benchmarks/bench_transfer.py: every setting that decides the shards and runs names their folders, and the
clips layout is rebuilt exactly when --held-out changes (issue 29, defect 3)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import yaml

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_transfer.py"


@pytest.fixture(scope="module")
def bench():
    """The script as a module, loaded from its path."""
    spec = importlib.util.spec_from_file_location("bench_transfer", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A stand-in for the shared data: the 4 real clips the layout links and a transfer suite of each kind
    (empty files; a dry run opens none)."""
    root = tmp_path / "data"
    suites = [f"transfer/{kind}/{label}/x.mp4" for kind in ("faceswap", "talking_head", "reenactment", "generated")
              for label in ("real", "fake")]
    for name in ("ffpp_train_real/519.mp4", "real_videos/liveportrait_d19.mp4", "real_videos/a.mp4",
                 "real_videos_more/liveportrait_d9.mp4", *suites):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")
    return root


def dry_run(bench, monkeypatch, data: Path, work: Path, *extra: str) -> dict:
    """The pipeline a --dry-run writes for these options."""
    argv = ["bench_transfer.py", "--data", str(data), "--work", str(work), "--variants", "full", "--seeds", "0",
            "--steps", "4", "--size", "64", "--dry-run", *extra]
    monkeypatch.setattr(sys, "argv", argv)
    bench.main()
    written = sorted(work.glob("*/pipeline.yaml"), key=lambda p: p.stat().st_mtime_ns)
    return yaml.safe_load(written[-1].read_text())


def layout(clips: Path) -> dict[str, list[str]]:
    return {split: sorted(p.name for p in (clips / split).iterdir()) for split in ("train", "val")}


def test_folder_names_hold_fit_steps_and_held_out(bench, monkeypatch, data, tmp_path, capsys):
    work = tmp_path / "work"
    default = dry_run(bench, monkeypatch, data, work)
    # The default setting keeps the folder names the earlier runs were made under.
    assert Path(default["out"]).name == "tf_efficientnet_lite0-64px-4steps-b12-lr0.01"
    assert Path(default["precompute"]["out"]).name == "shards-f24-fit150"
    assert default["precompute"]["src"] == f"folder:{work / 'clips'}"
    fit = dry_run(bench, monkeypatch, data, work, "--fit-steps", "20")
    assert Path(fit["out"]).name == "tf_efficientnet_lite0-64px-4steps-b12-lr0.01-fit20"
    assert Path(fit["precompute"]["out"]).name == "shards-f24-fit20"
    other = dry_run(bench, monkeypatch, data, work, "--held-out", "a")
    names = {Path(p["out"]).name for p in (default, fit, other)}
    shards = {Path(p["precompute"]["out"]).name for p in (default, fit, other)}
    sources = {p["precompute"]["src"] for p in (default, fit, other)}
    assert len(names) == 3 and len(shards) == 3 and len(sources) == 2
    assert Path(other["out"]).name.startswith("tf_efficientnet_lite0-64px-4steps-b12-lr0.01-val-")
    # The order of --held-out does not make another setting.
    again = dry_run(bench, monkeypatch, data, work, "--held-out", "liveportrait_d9,liveportrait_d19")
    assert again["out"] == default["out"]


def test_layout_is_rebuilt_exactly(bench, data, tmp_path):
    clips = tmp_path / "clips"
    assert bench.source_layout(data, clips, ["liveportrait_d19", "liveportrait_d9"]) == 2
    assert layout(clips) == {"train": ["519.mp4", "a.mp4"], "val": ["liveportrait_d19.mp4", "liveportrait_d9.mp4"]}
    assert bench.source_layout(data, clips, ["a"]) == 3
    assert layout(clips) == {"train": ["519.mp4", "liveportrait_d19.mp4", "liveportrait_d9.mp4"], "val": ["a.mp4"]}
    assert (clips / "val" / "a.mp4").resolve() == (data / "real_videos" / "a.mp4").resolve()
    # A link left pointing at another data folder is replaced, a file that is not a link is left alone.
    (clips / "train" / "519.mp4").unlink()
    (clips / "train" / "519.mp4").symlink_to(tmp_path / "elsewhere.mp4")
    (clips / "train" / "notes.txt").write_text("mine")
    bench.source_layout(data, clips, ["a"])
    assert (clips / "train" / "519.mp4").resolve() == (data / "ffpp_train_real" / "519.mp4").resolve()
    assert (clips / "train" / "notes.txt").read_text() == "mine"
