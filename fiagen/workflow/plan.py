"""Variants of the train stage side by side: `fiagen run PIPELINE.yaml` with `variants:` and `seeds:`.

    precompute: {src: folder:clips, out: work/shards}
    train: {run: work/runs, backbone: tf_efficientnet_lite0, size: 160, epochs: 4}
    bench: {suite: [folder:transfer/faceswap, folder:transfer/generated]}
    variants:
      - {name: full}
      - {name: sbi, ablation: sbi}
      - {name: no_rcr, lambdas: [1, 0, 0]}
    seeds: [0, 1]
    out: work/table            # default: the train section's run folder

Every variant x seed trains from the same precompute output into `<train.run>/<variant>/seed<N>` (the train
section with the variant's options over it; nested mappings merge key by key), is scored on the bench
section's suites into `<run>/eval`, and the table `OUT/variants.{md,csv,json}` puts the variants side by
side: per suite its frame and video AUC, their mean over the suites (`pseudo:` suites left out of the mean
when any other suite is scored), the best val AUC and the training time, each as the mean over the seeds
and the spread = half the range over the seeds ((max - min) / 2; 0 with one seed). Each run's last
val_breakdown row goes into `OUT/variants_breakdown.csv` (per seed and the seeds' mean), its whole
val_breakdown.csv into `OUT/breakdown/<variant>-seed<N>.csv`.

Everything is resolved and checked before any run starts. A rerun skips a run whose last.pt has all its
epochs (and resumes one with fewer) when its folder's key says it was trained with the same settings and
shards (fiagen.workflow.reuse; any other folder is refused before the first training), and skips scoring
a run whose scores were made from its current checkpoint with the same bench settings
(`<run>/eval/variant_scores.json`); scoring reuses every score already on disk. On a Ray cluster with GPUs
(`address`), the trainings that are left run at once as Ray tasks of one GPU each (runs with `train_workers`
1); otherwise one after another.
"""

from __future__ import annotations

import dataclasses
import json
import re
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fiagen.core.settings import ConfigError, from_mapping, key_name, plain, to_yaml, underscored
from fiagen.workflow.pipeline_file import PipelineError, bench_config, precompute_config, train_config

TABLE_NAME = "variants"
BREAKDOWN_TABLE = "variants_breakdown.csv"
BREAKDOWN_DIR = "breakdown"
# Train options a variant cannot set: the variants mechanism sets them for every run.
FIXED = {"run": "the run folder is <train.run>/<variant>/seed<N>", "shards": "every variant trains on the same "
         "precompute output", "seed": "seeds come from the top-level `seeds:`", "resume": "runs resume by themselves",
         "address": "the cluster is the pipeline's"}
# Bench settings that do not change a score (left out of the key that decides whether a run is scored again).
UNSCORED = ("address", "concurrency", "quiet", "overwrite", "chunk")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


@dataclass(frozen=True)
class VariantRun:
    """One variant x seed: its resolved train config and the options the variant sets."""

    variant: str
    seed: int
    train: Any
    changes: dict[str, Any]

    @property
    def label(self) -> str:
        return f"{self.variant}/seed{self.seed}"


@dataclass
class VariantsPlan:
    """Everything a variants pipeline will do, resolved and checked."""

    precompute: Any | None
    base: Any
    bench: Any | None
    variants: list[str]
    seeds: list[int]
    runs: list[VariantRun]
    out: Path
    address: str | None
    suites: dict[str, str]  # column label -> suite spec


def is_variants(data: Mapping[str, Any]) -> bool:
    """Whether a pipeline lists variants or seeds (the train stage runs once per variant x seed)."""
    return "variants" in data or "seeds" in data


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with `over`'s keys set over it; where both hold a mapping, merged key by key (dashes and
    underscores in keys are the same key)."""
    out = underscored(base)
    for key, value in over.items():
        key = key_name(key)
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def suite_label(spec: str) -> str:
    """A short column name for a suite: a folder-like suite's last path part (folder:x/faceswap -> faceswap),
    a pseudo: suite's `pseudo-<ablation>` (plus `-test` for the test split), else the suite's name."""
    if spec.startswith("pseudo:"):
        from fiagen.manifests.pseudo import parse_pseudo

        parsed = parse_pseudo(spec)
        return f"pseudo-{parsed.ablation}" + ("" if parsed.split == "val" else f"-{parsed.split}")
    if ":" in spec:
        stem = Path(spec.partition(":")[2].rstrip("/\\")).stem
        return re.sub(r"[^A-Za-z0-9_.+-]", "_", stem) or spec
    return spec


def suite_labels(specs: list[str]) -> dict[str, str]:
    """{label: spec}, labels unique (the suite's output folder name where two short labels clash)."""
    from fiagen.manifests.suites import suite_dirname

    short = [suite_label(s) for s in specs]
    return {(label if short.count(label) == 1 else suite_dirname(spec)): spec for label, spec in zip(short, specs,
                                                                                                   strict=True)}


def _error(where: str, message: str) -> Exception:
    return PipelineError(f"{where}: {message}")


def _seeds(data: Mapping[str, Any], default: int) -> list[int]:
    seeds = data.get("seeds", [default])
    seeds = [seeds] if isinstance(seeds, int) and not isinstance(seeds, bool) else seeds
    if (not isinstance(seeds, list) or not seeds
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)):
        raise _error("pipeline seeds", f"expected a list of integers >= 0, got {data.get('seeds')!r}")
    if len(set(seeds)) != len(seeds):
        raise _error("pipeline seeds", f"a seed is listed twice: {seeds}")
    return seeds


def _variants(data: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """[(name, options)] of the pipeline's `variants:` (default: one variant `default`, the train section)."""
    listed = data.get("variants", [{"name": "default"}])
    if not isinstance(listed, list) or not listed:
        raise _error("pipeline variants", "expected a list of mappings, each with a `name` and the train options "
                                          "it changes, e.g. [{name: full}, {name: sbi, ablation: sbi}]")
    out: list[tuple[str, dict[str, Any]]] = []
    for k, item in enumerate(listed):
        if not isinstance(item, Mapping) or "name" not in item:
            raise _error(f"pipeline variant #{k + 1}", f"expected a mapping with a `name` (and the train options "
                                                       f"it changes), got {item!r}")
        name = str(item["name"])
        if not NAME.match(name):
            raise _error(f"pipeline variant '{name}'", "a name is a folder name: letters, digits, _ . + - only")
        if name in (n for n, _ in out):
            raise _error(f"pipeline variant '{name}'", "listed twice")
        out.append((name, underscored({key: v for key, v in item.items() if key != "name"})))
    return out


def _check_options(name: str, options: dict[str, Any]) -> None:
    """One error line naming the variant and the key for a key a variant cannot set or train does not have."""
    from fiagen.train.config import TrainConfig

    where = f"pipeline variant '{name}'"
    for key in options:
        if key in FIXED:
            raise _error(where, f"option '{key}' cannot be set per variant ({FIXED[key]})")
    plain_options = {k: v for k, v in options.items() if not isinstance(v, Mapping)}
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    for key, value in options.items():
        if isinstance(value, Mapping) and key not in fields:
            raise _error(where, f"unknown option {key!r} (see fiagen train --help)")
    try:
        from_mapping(TrainConfig, plain_options, where, "train", noun="option")
    except ConfigError as err:
        raise _error(where, str(err).removeprefix(f"{where}: ")) from None


def plan_variants(data: Mapping[str, Any], address: str | None = None) -> VariantsPlan:
    """Every run of a variants pipeline resolved and checked (no run starts before all are)."""
    from fiagen.train.config import resolve_config

    address = address or data.get("address")
    if "train" not in data:
        raise _error("pipeline", "`variants:` and `seeds:` vary the train stage; add a `train:` section")
    precompute = precompute_config(data["precompute"], address) if "precompute" in data else None
    shards = str(Path(precompute.out).resolve()) if precompute is not None else None
    section = data["train"] or {}
    if not isinstance(section, Mapping):
        raise _error("pipeline stage 'train'", "must be a mapping of option: value")
    base = train_config(section, address, shards)
    shards = str(Path(base.shards).resolve())
    root = Path(base.run).resolve()
    seeds = _seeds(data, base.seed)
    runs: list[VariantRun] = []
    variants = _variants(data)
    for name, options in variants:
        _check_options(name, options)
        merged = deep_merge(section, options)
        where = f"pipeline variant '{name}'"
        try:
            values = from_mapping(type(base), merged, where, "train", noun="option")
        except ConfigError as err:
            raise _error(where, str(err).removeprefix(f"{where}: ")) from None
        for seed in seeds:
            values.update(shards=shards, seed=seed, run=str(root / name / f"seed{seed}"), resume=False)
            if address:
                values["address"] = address
            try:
                cfg = resolve_config(values)
            except ConfigError as err:
                raise _error(where, str(err)) from None
            runs.append(VariantRun(name, seed, cfg, options))
    bench, suites = None, {}
    if "bench" in data:
        section = data["bench"] or {}
        if not isinstance(section, Mapping):
            raise _error("pipeline stage 'bench'", "must be a mapping of option: value")
        for key in ("ckpt", "out"):
            if key in section:
                raise _error("pipeline stage 'bench'", f"'{key}' is set per run with variants (each run's "
                                                        f"best.pt, scored into <run>/eval)")
        bench = bench_config(dict(section), address, None)
        bench = dataclasses.replace(bench, overwrite=True)  # a run trained further is scored again
        suites = suite_labels(list(bench.suites))
    out = data.get("out")
    out = Path(out).resolve() if out else root
    return VariantsPlan(precompute, base, bench, [n for n, _ in variants], seeds, runs, out, address, suites)


def plan_yaml(plan: VariantsPlan) -> str:
    """What `fiagen run --dry-run` prints for a variants pipeline: the stages, then every run."""
    text = ""
    if plan.precompute is not None:
        text += "precompute:\n" + textwrap.indent(to_yaml(plain(plan.precompute)), "  ")
    base = plain(plan.base)
    text += "train:  # every run: these, then its variant's options, its seed and its run folder\n"
    text += textwrap.indent(to_yaml(base), "  ")
    if plan.bench is not None:
        bench = {k: v for k, v in plain(plan.bench).items() if k not in ("ckpt", "out")}
        text += "bench:  # every run's best.pt (last.pt without a val split), scored into <run>/eval\n"
        text += textwrap.indent(to_yaml(bench), "  ")
    text += f"runs:  # {len(plan.variants)} variants x {len(plan.seeds)} seeds = {len(plan.runs)} runs\n"
    for run in plan.runs:
        changed = {k: v for k, v in plain(run.train).items() if k not in ("run", "seed") and base.get(k) != v}
        extra = "".join(f", {k}: {json.dumps(v)}" for k, v in changed.items())
        text += f"  - {{variant: {run.variant}, seed: {run.seed}, run: {run.train.run}{extra}}}\n"
    return text + f"out: {plan.out}  # {TABLE_NAME}.md, .csv, .json, {BREAKDOWN_TABLE}, {BREAKDOWN_DIR}/\n"
