"""The three stages of `fiagen run` as calls that skip what is complete: precompute rebuilds only missing
shards, train is skipped when its last.pt has all its epochs and resumed when it has fewer, both only under the
key it was trained with (fiagen.workflow.reuse), bench reuses every score already on disk. Each returns a
StageOutcome."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from fiagen.workflow.pipeline_file import StageOutcome
from fiagen.workflow.reuse import COMPLETE, RESUME, decide, write_key


def run_precompute(cfg: Any) -> StageOutcome:
    """Precompute, or nothing where every shard is complete."""
    from fiagen.precompute.entry import precompute

    result = precompute(cfg)
    c = result.report["counts"]
    status = "complete" if result.shards_written == 0 else "ran"
    detail = (f"{c['frames_stored']} frames in {c['shards']} shards ({result.shards_written} built, "
              f"{result.shards_reused} complete already) -> {result.out}")
    return StageOutcome("precompute", status, detail)


def run_train(cfg: Any, where: str = "pipeline stage 'train'") -> StageOutcome:
    """Train, resume a run with fewer epochs than asked, or nothing where last.pt has them all, each under the
    run's key (a run made under another is refused: reuse.StaleRun, its line starting with `where`)."""
    action = decide(cfg, where)
    if action == COMPLETE:
        return StageOutcome("train", "complete", f"{Path(cfg.run) / 'last.pt'} has all {cfg.epochs} epochs")
    from fiagen.train.config import check_run_folder
    from fiagen.train.entry import train as run_train_entry

    cfg = dataclasses.replace(cfg, resume=action == RESUME)
    check_run_folder(cfg, lock=True)  # not held by another run before its key is written
    write_key(cfg)

    result = run_train_entry(cfg)
    auc = "n/a" if result.best_auc is None else f"{result.best_auc:.4f}"
    status = "resumed" if cfg.resume else "ran"
    return StageOutcome("train", status, f"{result.steps} steps, best val AUC {auc} -> {result.run}")


def run_bench(cfg: Any) -> StageOutcome:
    """Bench every suite, reusing the scores on disk."""
    from fiagen.evaluate.runner import bench

    result = bench(cfg)
    scored = sum(r.report["conditions"]["raw"]["videos_scored_now"] for r in result.suites)
    status = "complete" if scored == 0 else "ran"
    return StageOutcome("bench", status, f"{len(result.suites)} suites ({scored} videos scored now)"
                                         f"{failed_note(result)} -> {result.out}",
                        tables={r.name: r.table for r in result.suites})


def failed_note(result: Any) -> str:
    """', N failed (SUITE, ...; see OUT/bench.json)' for a bench result with suites that scored nothing."""
    if not result.failed:
        return ""
    return f", {len(result.failed)} failed ({', '.join(result.failed)}; see {result.out / 'bench.json'})"
