"""`fiagen run PIPELINE.yaml`: the stages (precompute, train, bench) described in one file, run in order on
one Ray cluster, each with its own resources, skipping what is already complete.

    address: auto                # optional (or --address); default: a local Ray
    precompute: {src: ff++_c23, root: /data/FaceForensics++, out: out}
    train: {run: runs/b4, workers: 4, gpus_per_worker: 1}          # shards default: precompute's out
    bench: {suite: [cdf_v2, dfdc], root: /data}                    # ckpt default: train's run/best.pt

precompute runs Ray tasks (CPU) and reconstruction actors (a GPU each when the cluster has GPUs) and
rebuilds only missing shards; train runs through Ray Train on a cluster (`workers` workers with
`gpus_per_worker` GPUs each), is skipped when its last.pt has all its epochs and resumed when it has
fewer; bench scores in Ray tasks and an inference actor and reuses every score already on disk.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from fiagen.errors import FiagenError, message_line
from fiagen.settings import coerce

STAGES = ("precompute", "train", "bench")


class PipelineError(FiagenError):
    """A pipeline file that cannot be run as written."""


@dataclass
class StageOutcome:
    """What one stage did: ran, resumed or skipped, and a one-line summary."""

    stage: str
    status: str
    detail: str


def read_pipeline(path: Path) -> dict[str, Any]:
    """The pipeline file as a mapping with known top-level keys only."""
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise PipelineError(f"cannot read pipeline {path}: {message_line(err)}") from None
    if not isinstance(data, dict):
        raise PipelineError(f"pipeline {path} must be a mapping with keys {', '.join(STAGES)} and address")
    unknown = sorted(set(data) - set(STAGES) - {"address"})
    if unknown:
        raise PipelineError(f"pipeline {path}: unknown key(s) {', '.join(unknown)} (expected {', '.join(STAGES)}, "
                            f"address)")
    if not any(stage in data for stage in STAGES):
        raise PipelineError(f"pipeline {path} names no stage ({', '.join(STAGES)})")
    return data


def _settings(cls: type, section: Any, stage: str, **fixed: Any) -> Any:
    """A stage's config dataclass from its YAML section (keys with dashes or underscores) plus fixed values."""
    if not isinstance(section, dict):
        raise PipelineError(f"pipeline stage '{stage}' must be a mapping of option: value")
    names = {f.name for f in dataclasses.fields(cls)}
    values = {str(k).replace("-", "_"): v for k, v in section.items()}
    unknown = sorted(set(values) - names)
    if unknown:
        raise PipelineError(f"pipeline stage '{stage}': unknown option(s) {', '.join(unknown)} "
                            f"(see fiagen {stage} --help)")
    values = {k: coerce(cls, k, v) for k, v in values.items()}  # as a --config file's values
    values.update({k: v for k, v in fixed.items() if v is not None})
    return cls(**values)


def _precompute(section: dict[str, Any], address: str | None) -> tuple[StageOutcome, str]:
    from fiagen.pipeline.precompute import PrecomputeConfig, precompute

    cfg = _settings(PrecomputeConfig, section, "precompute", address=address)
    result = precompute(cfg)
    c = result.report["counts"]
    status = "complete" if result.shards_written == 0 else "ran"
    detail = (f"{c['frames_stored']} frames in {c['shards']} shards ({result.shards_written} built, "
              f"{result.shards_reused} complete already) -> {result.out}")
    return StageOutcome("precompute", status, detail), str(cfg.out)


def _train(section: dict[str, Any], address: str | None, shards: str | None) -> tuple[StageOutcome, str]:
    from fiagen.train.checkpoint import read_checkpoint
    from fiagen.train.config import TrainConfig, resolve_config

    values = {"shards": shards, **{str(k).replace("-", "_"): v for k, v in section.items()}}
    if address:
        values["address"] = address
    cfg: TrainConfig = resolve_config({k: v for k, v in values.items() if v is not None})
    last = Path(cfg.run) / "last.pt"
    if last.is_file():
        done = read_checkpoint(last)["info"]["epoch"]
        if done >= cfg.epochs:
            return StageOutcome("train", "complete", f"{last} has all {cfg.epochs} epochs"), str(cfg.run)
        cfg = dataclasses.replace(cfg, resume=True)
    from fiagen.train.entry import train as run_train

    result = run_train(cfg)
    auc = "n/a" if result.best_auc is None else f"{result.best_auc:.4f}"
    status = "resumed" if cfg.resume else "ran"
    return StageOutcome("train", status, f"{result.steps} steps, best val AUC {auc} -> {result.run}"), str(cfg.run)


def _bench(section: dict[str, Any], address: str | None, run: str | None) -> StageOutcome:
    from fiagen.evaluate.config import EvalConfig
    from fiagen.evaluate.runner import bench
    from fiagen.manifests.suites import parse_suites

    values = {str(k).replace("-", "_"): v for k, v in section.items()}
    suites = values.pop("suite", values.pop("suites", "all"))
    suites = [suites] if isinstance(suites, str) else list(suites)
    if "ckpt" not in values and run is not None:
        values["ckpt"] = str(Path(run) / "best.pt")
    skip = "all" in suites
    cfg = _settings(EvalConfig, values, "bench", address=address, suites=tuple(parse_suites(tuple(suites))),
                    skip_missing_suites=skip)
    result = bench(cfg)
    scored = sum(r.report["conditions"]["raw"]["videos_scored_now"] for r in result.suites)
    status = "complete" if scored == 0 else "ran"
    return StageOutcome("bench", status, f"{len(result.suites)} suites ({scored} videos scored now) -> {result.out}")


def run_pipeline(path: Path, address: str | None = None,
                 echo: Callable[[str], None] = print) -> list[StageOutcome]:
    """Run the stages a pipeline file names, in order, on the cluster at `address` (or the file's)."""
    data = read_pipeline(path)
    address = address or data.get("address")
    outcomes: list[StageOutcome] = []
    shards = run = None
    if "precompute" in data:
        outcome, shards = _precompute(data["precompute"], address)
        outcomes.append(outcome)
        echo(f"[precompute] {outcome.status}: {outcome.detail}")
    if "train" in data:
        outcome, run = _train(data["train"] or {}, address, shards)
        outcomes.append(outcome)
        echo(f"[train] {outcome.status}: {outcome.detail}")
    if "bench" in data:
        outcome = _bench(data["bench"] or {}, address, run)
        outcomes.append(outcome)
        echo(f"[bench] {outcome.status}: {outcome.detail}")
    return outcomes
