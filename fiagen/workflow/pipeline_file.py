"""A `fiagen run PIPELINE.yaml` file read and checked: the stages (precompute, train, bench) described in one
file, run in order on one Ray cluster, each with its own resources, skipping what is already complete.

    address: auto                # optional (or --address); default: a local Ray
    precompute: {src: ff++_c23, root: /data/FaceForensics++, out: out}
    train: {run: runs/b4, train_workers: 4, gpus_per_worker: 1}    # shards default: precompute's out
    bench: {suite: [cdf_v2, dfdc], root: /data}                    # ckpt default: train's run/best.pt

precompute runs Ray tasks (CPU) and reconstruction actors (a GPU each when the cluster has GPUs) and
rebuilds only missing shards; train runs through Ray Train on a cluster (`train_workers` workers with
`gpus_per_worker` GPUs each), is skipped when its last.pt has all its epochs and resumed when it has
fewer, under the key it was trained with (fiagen.workflow.reuse); bench scores in Ray tasks and an
inference actor and reuses every score already on disk.

`variants:` and `seeds:` (fiagen.workflow.plan, docs/variants.md) run the train and bench stages once per
variant x seed from the same precompute output and write a side-by-side table.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fiagen.core.errors import FiagenError, message_line
from fiagen.core.settings import ConfigError, coerce, from_mapping, plain, to_yaml, underscored

STAGES = ("precompute", "train", "bench")
VARIANT_KEYS = ("variants", "seeds", "out")  # fiagen.workflow.variants: the train stage once per variant x seed


class PipelineError(FiagenError):
    """A pipeline file that cannot be run as written."""


@dataclass
class StageOutcome:
    """What one stage did: ran, resumed or skipped, and a one-line summary."""

    stage: str
    status: str
    detail: str
    tables: dict[str, Any] | None = None  # bench: {suite: its per-method table}


def read_pipeline(path: Path) -> dict[str, Any]:
    """The pipeline file as a mapping with known top-level keys only."""
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise PipelineError(f"cannot read pipeline {path}: {message_line(err)}") from None
    if not isinstance(data, dict):
        raise PipelineError(f"pipeline {path} must be a mapping with keys {', '.join(STAGES)} and address")
    unknown = sorted(set(data) - set(STAGES) - {"address", "reference"} - set(VARIANT_KEYS))
    if unknown:
        raise PipelineError(f"pipeline {path}: unknown key(s) {', '.join(unknown)} (expected {', '.join(STAGES)}, "
                            f"address, reference, {', '.join(VARIANT_KEYS)})")
    if "out" in data and "variants" not in data and "seeds" not in data:
        raise PipelineError(f"pipeline {path}: `out` is where the variants table goes; it needs `variants:` or "
                            f"`seeds:` (see docs/variants.md)")
    if not any(stage in data for stage in STAGES):
        raise PipelineError(f"pipeline {path} names no stage ({', '.join(STAGES)})")
    return data


def _values(cls: type, section: Any, stage: str) -> dict[str, Any]:
    """The typed settings of `cls` in a stage's YAML section (as a --config file's, old spellings included)."""
    if not isinstance(section, dict):
        raise PipelineError(f"pipeline stage '{stage}' must be a mapping of option: value")
    try:
        return from_mapping(cls, section, f"pipeline stage '{stage}'", stage, noun="option")
    except ConfigError as err:
        raise PipelineError(str(err)) from None


def _settings(cls: type, section: Any, stage: str, **fixed: Any) -> Any:
    """A stage's config dataclass from its YAML section plus fixed values."""
    values = _values(cls, section, stage)
    values.update({k: v for k, v in fixed.items() if v is not None})
    return cls(**values)


def precompute_config(section: Any, address: str | None) -> Any:
    """The precompute stage's PrecomputeConfig."""
    from fiagen.precompute.config import PrecomputeConfig

    return _settings(PrecomputeConfig, section, "precompute", address=address)


def train_config(section: Any, address: str | None, shards: str | None) -> Any:
    """The train stage's resolved TrainConfig (shards: precompute's out unless the section names them)."""
    from fiagen.train.config import TrainConfig, resolve_config

    values = {"shards": shards, **_values(TrainConfig, section, "train")}
    if address:
        values["address"] = address
    return resolve_config({k: v for k, v in values.items() if v is not None})


def bench_config(section: Any, address: str | None, run: str | None) -> Any:
    """The bench stage's EvalConfig (ckpt: the train run's best.pt unless the section names one)."""
    from fiagen.evaluate.config import EvalConfig
    from fiagen.manifests.suites import parse_suites

    values = underscored(section)
    suites = values.pop("suite", values.pop("suites", "all"))
    suites = [suites] if isinstance(suites, str) else list(suites)
    if "ckpt" not in values and run is not None:
        values["ckpt"] = str(Path(run) / "best.pt")
    skip = "all" in suites or bool(coerce(EvalConfig, "skip_missing_suites", values.pop("skip_missing_suites", False)))
    return _settings(EvalConfig, values, "bench", address=address, suites=tuple(parse_suites(tuple(suites))),
                     skip_missing_suites=skip)


def stage_configs(data: dict[str, Any], address: str | None = None) -> dict[str, Any]:
    """The resolved config of each stage a pipeline names, in order (all checked before any stage runs):
    train's shards default to precompute's out, bench's checkpoint to train's run/best.pt."""
    address = address or data.get("address")
    configs: dict[str, Any] = {}
    if "precompute" in data:
        configs["precompute"] = precompute_config(data["precompute"], address)
    if "train" in data:
        shards = str(configs["precompute"].out) if "precompute" in configs else None
        configs["train"] = train_config(data["train"] or {}, address, shards)
    if "bench" in data:
        run = str(configs["train"].run) if "train" in configs else None
        configs["bench"] = bench_config(data["bench"] or {}, address, run)
    return configs


def pipeline_yaml(configs: dict[str, Any]) -> str:
    """The resolved stages as YAML, one block per stage (what `fiagen run --dry-run` prints)."""
    return "".join(f"{stage}:\n" + textwrap.indent(to_yaml(plain(cfg)), "  ") for stage, cfg in configs.items())
