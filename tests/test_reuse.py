"""`fiagen run` reuses a run folder only under the key of what decides the run (fiagen.workflow.reuse): changed
options, other shards, an old folder without a key and an `epochs` change of a finished run are refused in one
line that says what changed and what to do; raising `epochs` of a run stopped before its learning rate decays
resumes it exactly. Tiny scale: test_efficientnet from scratch at 64 px, batch 2 (5 steps an epoch) on the astronaut
shards (tests/conftest.py's fia_shards)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import yaml

from fiagen.precompute.index import write_manifest
from fiagen.train.checkpoint import read_checkpoint
from fiagen.train.resume import lr_factor
from fiagen.workflow.reuse import KEY_NAME, StaleRun
from fiagen.workflow.run import run_pipeline

TRAIN = {"backbone": "test_efficientnet", "pretrained": "none", "size": 64, "epochs": 1, "batch_size": 2,
         "affs_batches": 1, "loader_workers": 0, "lambdas": [1, 0, 0], "quiet": True}


def _pipeline(tmp_path: Path, shards: Path, variant: dict | None = None, **train) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "variants.yaml"
    path.write_text(yaml.safe_dump({"train": {"shards": str(shards), "run": str(tmp_path / "runs"), **TRAIN, **train},
                                    "variants": [{"name": "full", **(variant or {})}], "seeds": [0]}))
    return path


def _train_statuses(path: Path) -> list[str]:
    return [o.status for o in run_pipeline(path, echo=lambda _: None) if o.stage.startswith("train")]


def _refused(path: Path, *parts: str) -> str:
    with pytest.raises(StaleRun) as err:
        run_pipeline(path, echo=lambda line: pytest.fail(f"ran: {line}"))
    line = str(err.value)
    assert "\n" not in line and "--resume" not in line  # nobody passed --resume
    assert line.startswith("pipeline variant 'full' seed 0: ") and "move " in line and "another `run`" in line
    for part in parts:
        assert part in line, line
    return line


def _steps(run: Path) -> list[dict[str, str]]:
    with (run / "steps.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slow
def test_a_run_is_reused_only_under_the_key_it_was_trained_with(fia_shards: Path, tmp_path: Path) -> None:
    assert _train_statuses(_pipeline(tmp_path, fia_shards)) == ["ran"]
    run = tmp_path / "runs" / "full" / "seed0"
    key = json.loads((run / KEY_NAME).read_text())
    assert key["settings"]["lr"] == 0.001 and "run" not in key["settings"] and len(key["digest"]) == 64
    stamp = (run / "last.pt").stat().st_mtime_ns

    moved = tmp_path / "moved_shards"  # the same content elsewhere, and quiet/loader_workers: still this run
    shutil.copytree(fia_shards, moved)
    assert _train_statuses(_pipeline(tmp_path, moved, loader_workers=1, quiet=False)) == ["complete"]

    _refused(_pipeline(tmp_path, fia_shards, {"lr": 0.002}), "trained with other settings (lr 0.001 -> 0.002)")
    _refused(_pipeline(tmp_path, fia_shards, decay_from=0.5), "(decay_from 0.75 -> 0.5)")
    _refused(_pipeline(tmp_path, fia_shards, {"generate": {"t_source_p": 1.0}}), "generate.t_source_p 0.5 -> 1.0")
    fewer = tmp_path / "fewer_shards"  # a precompute output without its val shard: other content
    shutil.copytree(fia_shards, fewer)
    write_manifest(fewer, [("shards/train/00000.h5", _sha(fia_shards))])
    _refused(_pipeline(tmp_path, fewer), "the shards' content")
    _refused(_pipeline(tmp_path, fia_shards, epochs=2), "is a finished 1-epoch run", "not a 2-epoch one")
    assert (run / "last.pt").stat().st_mtime_ns == stamp and read_checkpoint(run / "last.pt")["info"]["epoch"] == 1

    (run / KEY_NAME).unlink()  # e.g. trained by `fiagen train` into that folder: what it was made with is unknown
    _refused(_pipeline(tmp_path, fia_shards), f"without a readable {KEY_NAME}")
    assert (run / "last.pt").stat().st_mtime_ns == stamp


def _sha(shards: Path) -> str:
    import pandas as pd

    manifest = pd.read_parquet(shards / "manifest.parquet")
    return str(manifest.loc[manifest["split"] == "train", "shard_sha256"].iloc[0])


def _killed_after(path: Path, steps: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the pipeline and kill its training after `steps` more steps (last.pt holds them: save_every 2)."""
    import fiagen.train.loop as loop

    calls = {"n": 0}
    real = loop.sam_step

    def dies(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > steps:
            raise RuntimeError("killed")
        return real(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(loop, "sam_step", dies)
        with pytest.raises(RuntimeError, match="killed"):
            run_pipeline(path, echo=lambda _: None)


@pytest.mark.slow
def test_epochs_raised_resume_a_run_only_before_its_learning_rate_decays(fia_shards: Path, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "runs" / "full" / "seed0"
    _killed_after(_pipeline(tmp_path, fia_shards, epochs=2, save_every=2), 2, monkeypatch)  # 2 of 10 steps
    # before step 7, where its decay begins: raised to 3 epochs, it is the 3-epoch run (killed again at step 12)
    _killed_after(_pipeline(tmp_path, fia_shards, epochs=3, save_every=2), 10, monkeypatch)
    assert json.loads((run / KEY_NAME).read_text())["settings"]["epochs"] == 3
    assert read_checkpoint(run / "last.pt")["training"]["step"] == 12
    # 12 of 15 steps: its learning rate has begun to decay (from step 11), so 4 epochs are refused
    _refused(_pipeline(tmp_path, fia_shards, epochs=4, save_every=2), "unfinished 3-epoch run", "has begun")
    _refused(_pipeline(tmp_path, fia_shards, epochs=3, save_every=2, batch_size=4), "batch_size 2 -> 4")
    assert _train_statuses(_pipeline(tmp_path, fia_shards, epochs=3, save_every=2)) == ["resumed"]
    steps = _steps(run)
    assert [int(r["step"]) for r in steps] == list(range(1, 16))
    # every step at the 3-epoch schedule's learning rate: 0.001 for 11 steps, then down to 0
    assert [float(r["lr"]) for r in steps] == pytest.approx([0.001 * lr_factor(k, 15, 0.75) for k in range(15)])
    assert float(steps[10]["lr"]) == 0.001 and float(steps[-1]["lr"]) == pytest.approx(0.00025)
