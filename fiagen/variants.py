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
epochs (and resumes one with fewer), and skips scoring a run whose scores were made from its current
checkpoint with the same bench settings (`<run>/eval/variant_scores.json`); scoring reuses every score
already on disk. On a Ray cluster with GPUs (`address`), the trainings that are left run at once as Ray
tasks of one GPU each (runs with `train_workers` 1); otherwise one after another.
"""

from __future__ import annotations

import dataclasses
import json
import re
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fiagen.files import write_text
from fiagen.settings import ConfigError, from_mapping, plain, to_yaml
from fiagen.variant_table import BREAKDOWN_DIR, BREAKDOWN_TABLE, TABLE_NAME, num, write_tables

SCORES_NAME = "variant_scores.json"
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
    def norm(key: Any) -> str:
        return str(key).replace("-", "_")

    out = {norm(k): v for k, v in base.items()}
    for key, value in over.items():
        key = norm(key)
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
    from fiagen.workflow import PipelineError

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
        out.append((name, {str(key).replace("-", "_"): v for key, v in item.items() if key != "name"}))
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
    from fiagen.workflow import _bench_config, _precompute_config, _train_config

    address = address or data.get("address")
    if "train" not in data:
        raise _error("pipeline", "`variants:` and `seeds:` vary the train stage; add a `train:` section")
    precompute = _precompute_config(data["precompute"], address) if "precompute" in data else None
    shards = str(Path(precompute.out).resolve()) if precompute is not None else None
    section = data["train"] or {}
    if not isinstance(section, Mapping):
        raise _error("pipeline stage 'train'", "must be a mapping of option: value")
    base = _train_config(section, address, shards)
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
        bench = _bench_config(dict(section), address, None)
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


# --- running -------------------------------------------------------------------------------------------------


def _trained(cfg: Any) -> bool:
    from fiagen.train.checkpoint import read_checkpoint

    last = Path(cfg.run) / "last.pt"
    return last.is_file() and read_checkpoint(last)["info"]["epoch"] >= cfg.epochs


def _train_task(cfg: Any) -> Any:
    """One training in a Ray task (the GPU Ray gave it; one process, no Ray Train)."""
    from fiagen.workflow import _train

    return _train(dataclasses.replace(cfg, address=None))


def _train_parallel(runs: list[VariantRun], gpus: float, echo: Callable[[str], None]) -> dict[str, Any]:
    """Train `runs` at once as Ray tasks of `gpus` GPUs each on the running Ray; {label: StageOutcome}."""
    import ray

    task = ray.remote(_train_task).options(num_gpus=gpus, num_cpus=1, max_retries=0)
    refs = {task.remote(r.train): r for r in runs}
    done: dict[str, Any] = {}
    pending = list(refs)
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        run = refs[ready[0]]
        outcome = ray.get(ready[0])
        done[run.label] = dataclasses.replace(outcome, stage=f"train {run.label}")
        echo(f"[train {run.label}] {outcome.status}: {outcome.detail}")
    return done


def _checkpoint(run: Path) -> Path:
    best = run / "best.pt"
    return best if best.is_file() else run / "last.pt"


def _score_key(cfg: Any) -> dict[str, Any]:
    ckpt = Path(cfg.ckpt)
    stat = ckpt.stat()
    return {"bench": {k: v for k, v in plain(cfg).items() if k not in UNSCORED},
            "checkpoint": {"path": str(ckpt), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}}


def _score(run: VariantRun, bench_cfg: Any, labels: dict[str, str]) -> tuple[Any, dict[str, Any]]:
    """Score one run on the bench suites (skipped when its scores are those of its current checkpoint);
    (outcome, {label: {frame_auc, video_auc, n_real, n_fake, level}})."""
    from fiagen.evaluate.runner import bench
    from fiagen.evaluate.tables import summary_row
    from fiagen.workflow import StageOutcome

    folder = Path(run.train.run)
    cfg = dataclasses.replace(bench_cfg, ckpt=str(_checkpoint(folder)), out=str(folder / "eval"))
    key = _score_key(cfg)
    record = folder / "eval" / SCORES_NAME
    if record.is_file():
        saved = json.loads(record.read_text())
        if saved.get("key") == key:
            return StageOutcome(f"bench {run.label}", "complete", f"scores of {cfg.ckpt} on disk -> {record}"), \
                saved["suites"]
    result = bench(cfg)
    spec_label = {spec: label for label, spec in labels.items()}
    suites: dict[str, Any] = {}
    for r in result.suites:
        row = summary_row(r.table)
        suites[spec_label.get(r.name, r.name)] = {
            "suite": r.name, "level": r.stamp.get("level"), "frame_auc": num(row.get("frame_auc")),
            "video_auc": num(row.get("video_auc")), "n_real": int(row["n_real"]), "n_fake": int(row["n_fake"])}
    write_text(record, json.dumps({"key": key, "suites": suites}, indent=2) + "\n")
    scored = sum(r.report["conditions"]["raw"]["videos_scored_now"] for r in result.suites)
    status = "complete" if scored == 0 else "ran"
    return StageOutcome(f"bench {run.label}", status, f"{len(result.suites)} suites ({scored} videos scored now) "
                                                       f"-> {result.out}"), suites


def run_variants(data: Mapping[str, Any], address: str | None = None, echo: Callable[[str], None] = print,
                 plan: VariantsPlan | None = None) -> list[Any]:
    """Run a variants pipeline: precompute once, every variant x seed trained and scored (finished ones
    reused), then the side-by-side table. Returns every stage's outcome, the table's last."""
    from fiagen.outputs import hold_folder
    from fiagen.workflow import StageOutcome, _precompute, _train

    plan = plan or plan_variants(data, address)
    outcomes: list[Any] = []

    def note(outcome: Any) -> None:
        outcomes.append(outcome)
        echo(f"[{outcome.stage}] {outcome.status}: {outcome.detail}")

    if plan.precompute is not None:
        note(_precompute(plan.precompute))
    with hold_folder(plan.out):
        trained = _parallel_trainings(plan, echo)
        scores: dict[str, dict[str, Any]] = {}
        for run in plan.runs:
            note(trained.get(run.label) or dataclasses.replace(_train(run.train), stage=f"train {run.label}"))
            if plan.bench is not None:
                outcome, scores[run.label] = _score(run, plan.bench, plan.suites)
                note(outcome)
        paths = write_tables(plan, scores)
    note(StageOutcome("variants", "ran", f"{len(plan.variants)} variants x {len(plan.seeds)} seeds -> "
                                         f"{', '.join(str(p) for p in paths)}"))
    return outcomes


def _parallel_trainings(plan: VariantsPlan, echo: Callable[[str], None]) -> dict[str, Any]:
    """On a cluster (`address`) with GPUs, the unfinished single-process trainings as Ray tasks at once;
    {} where they run one after another (locally, without GPUs, or with Ray Train workers)."""
    todo = [r for r in plan.runs if not _trained(r.train)]
    if not plan.address or len(todo) < 2 or any(r.train.train_workers > 1 for r in todo):
        return {}
    import ray

    from fiagen.pipeline.cluster import ray_session

    with ray_session(plan.address, None):
        if ray.cluster_resources().get("GPU", 0) < 1:
            return {}
        return _train_parallel(todo, max(1.0, max(r.train.gpus_per_worker for r in todo)), echo)
