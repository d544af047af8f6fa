"""Every stage of a pipeline file checked before the first stage runs (what `fiagen run` and its --dry-run
do first): each stage's own checks (fiagen.precompute.config.check_precompute, fiagen.train.config.check_train,
fiagen.evaluate.inputs), except for what an earlier stage of the same file makes: train's shards when the
file precomputes them, bench's checkpoint when the file trains it, a pseudo: suite of the shards it makes."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from fiagen.core.outputs import preflight_output
from fiagen.evaluate.inputs import check_perturb, checkpoint_file, default_checkpoint, find_listings, say_found
from fiagen.manifests.pseudo import is_pseudo, parse_pseudo
from fiagen.precompute.config import check_precompute
from fiagen.train.config import check_shards

log = logging.getLogger(__name__)


def _same(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    return os.path.abspath(Path(a).expanduser()) == os.path.abspath(Path(b).expanduser())


def check_train_stage(cfg: Any, shards_made: bool) -> None:
    """The run folder (writable, not held; a finished or started run is resumed, not refused), the shards."""
    preflight_output(cfg.run, "--run")
    if not shards_made:
        check_shards(cfg)


def check_suites(cfg: Any, shards_made: str | None) -> dict[str, Any]:
    """Every suite of a bench config: its name, dataset folder, index file and something to score (a
    pseudo: suite of the shards the pipeline makes: its grammar only); the listings found."""
    later = [s for s in cfg.suites if is_pseudo(s) and shards_made and _same(parse_pseudo(s).shards, shards_made)]
    now = [s for s in cfg.suites if s not in later]
    return find_listings(now, cfg.root, cfg.skip_missing_suites, cfg.allow_outside_root)[0] if now else {}


def check_bench_stage(cfg: Any, ckpt_made: bool, shards_made: str | None) -> dict[str, Any]:
    """The suites (their listings are returned), the checkpoint unless the pipeline trains it, the output folder."""
    found = check_suites(cfg, shards_made)
    check_perturb(cfg, cfg.suites)
    ckpt = Path(cfg.ckpt) if cfg.ckpt else default_checkpoint()
    if not ckpt_made:
        checkpoint_file(ckpt, read=True)
    preflight_output(Path(cfg.out) if cfg.out else ckpt.parent / "eval", "--out")
    return found


def check_stages(configs: dict[str, Any]) -> None:
    """The checks of every stage of a pipeline (fiagen.workflow.pipeline_file.stage_configs), in order; the
    first failure is its one error line, before any stage runs; then an info line per dataset folder taken."""
    shards = str(configs["precompute"].out) if "precompute" in configs else None
    source = check_precompute(configs["precompute"], say=False) if shards is not None else None
    if "train" in configs:
        check_train_stage(configs["train"], shards_made=shards is not None and _same(configs["train"].shards, shards))
    found = {}
    if "bench" in configs:
        trained = "train" in configs and _same(Path(configs["train"].run) / "best.pt", configs["bench"].ckpt or "")
        found = check_bench_stage(configs["bench"], trained, shards)
    _say(configs.get("precompute"), source, found)


def check_plan(plan: Any) -> None:
    """The checks of a variants plan (fiagen.workflow.plan.VariantsPlan): precompute, every run's train stage,
    and bench's suites (its checkpoints are the runs')."""
    shards = str(plan.precompute.out) if plan.precompute is not None else None
    source = check_precompute(plan.precompute, say=False) if shards is not None else None
    for run in plan.runs:
        check_train_stage(run.train, shards_made=shards is not None and _same(run.train.shards, shards))
    found = check_suites(plan.bench, shards) if plan.bench is not None else {}
    preflight_output(plan.out, "out")
    _say(plan.precompute, source, found)


def _say(precompute: Any, source: Any, found: dict[str, Any]) -> None:
    if source is not None and precompute.src == "ff++_c23":  # found by its folder names
        log.info("%s: data from %s", precompute.src, source.root)
    say_found(found)
