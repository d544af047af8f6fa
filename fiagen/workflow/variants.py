"""A variants run (fiagen.workflow.plan) carried out: precompute once, every variant x seed trained (at once
as Ray tasks on a cluster with GPUs) and scored, finished ones reused, then the side-by-side table."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from fiagen.core.files import write_text
from fiagen.core.settings import plain
from fiagen.workflow.pipeline_file import StageOutcome
from fiagen.workflow.plan import UNSCORED, VariantRun, VariantsPlan, plan_variants
from fiagen.workflow.reuse import COMPLETE, StaleRun, decide
from fiagen.workflow.stages import failed_note, run_precompute, run_train
from fiagen.workflow.table import num, write_tables

SCORES_NAME = "variant_scores.json"


def _train_task(cfg: Any, flag: Any) -> Any:
    """One training in a Ray task (the GPU Ray gave it; one process, no Ray Train); a stop relayed on `flag`
    (fiagen.cluster.relay) ends it at its next step with last.pt there: outcome "stopped"."""
    from fiagen.cluster.relay import listening
    from fiagen.core import stop

    with listening(flag):
        try:
            return run_train(dataclasses.replace(cfg, address=None))
        except stop.Stopped as stopped:
            return StageOutcome("train", "stopped", f"{stopped} -> {cfg.run}")


def _train_parallel(runs: list[VariantRun], gpus: float, echo: Callable[[str], None]) -> dict[str, Any]:
    """Train `runs` at once as Ray tasks of `gpus` GPUs each on the running Ray; {label: StageOutcome}. A
    signal stops every training at its next step (the finished ones are kept), then raises Stopped."""
    import ray

    from fiagen.cluster.relay import POLL_S, new_flag, relay
    from fiagen.core import stop

    flag, relayed = new_flag(), []
    task = ray.remote(_train_task).options(num_gpus=gpus, num_cpus=1, max_retries=0)
    refs = {task.remote(r.train, flag): r for r in runs}
    done: dict[str, Any] = {}
    pending = list(refs)
    with stop.safe_points():
        while pending:
            ready, pending = ray.wait(pending, num_returns=1, timeout=POLL_S)
            relay(flag, relayed)
            for ref in ready:
                run, outcome = refs[ref], ray.get(ref)
                done[run.label] = dataclasses.replace(outcome, stage=f"train {run.label}")
                echo(f"[train {run.label}] {outcome.status}: {outcome.detail}")
    if relayed:
        finished = sum(o.status != "stopped" for o in done.values())
        raise stop.Stopped(relayed[0], f"with {finished} of {len(runs)} trainings finished")
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
    for spec, reason in result.failed.items():  # no AUC: blank in the table, the reason kept here
        suites[spec_label.get(spec, spec)] = {"suite": spec, "failed": reason}
    write_text(record, json.dumps({"key": key, "suites": suites}, indent=2) + "\n")
    scored = sum(r.report["conditions"]["raw"]["videos_scored_now"] for r in result.suites)
    status = "complete" if scored == 0 else "ran"
    return StageOutcome(f"bench {run.label}", status, f"{len(result.suites)} suites ({scored} videos scored now)"
                                                       f"{failed_note(result)} -> {result.out}"), suites


def run_variants(data: Mapping[str, Any], address: str | None = None, echo: Callable[[str], None] = print,
                 plan: VariantsPlan | None = None) -> list[Any]:
    """Run a variants pipeline: precompute once, every variant x seed trained and scored (finished ones
    reused), then the side-by-side table. Returns every stage's outcome, the table's last."""
    from fiagen.core.outputs import hold_folder

    plan = plan or plan_variants(data, address)
    outcomes: list[Any] = []

    def note(outcome: Any) -> None:
        outcomes.append(outcome)
        echo(f"[{outcome.stage}] {outcome.status}: {outcome.detail}")

    if plan.precompute is not None:
        note(run_precompute(plan.precompute))
    with hold_folder(plan.out):
        trained = _parallel_trainings(plan, _to_train(plan), echo)
        scores: dict[str, dict[str, Any]] = {}
        for run in plan.runs:
            note(trained.get(run.label) or dataclasses.replace(run_train(run.train, _where(run)),
                                                               stage=f"train {run.label}"))
            if plan.bench is not None:
                outcome, scores[run.label] = _score(run, plan.bench, plan.suites)
                note(outcome)
        paths = write_tables(plan, scores)
    note(StageOutcome("variants", "ran", f"{len(plan.variants)} variants x {len(plan.seeds)} seeds -> "
                                         f"{', '.join(str(p) for p in paths)}"))
    return outcomes


def _where(run: VariantRun) -> str:
    return f"pipeline variant '{run.variant}' seed {run.seed}"


def _to_train(plan: VariantsPlan) -> list[VariantRun]:
    """The runs to train or resume, once every run's folder is checked against its key (fiagen.workflow.reuse):
    a folder made under another key stops the pipeline before any training, in one line."""
    todo, stale = [], []
    for run in plan.runs:
        try:
            if decide(run.train, _where(run)) != COMPLETE:
                todo.append(run)
        except StaleRun as err:
            stale.append(err)
    if stale:
        more = f" (and {len(stale) - 1} more runs like it)" if len(stale) > 1 else ""
        raise StaleRun(f"{stale[0]}{more}")
    return todo


def _parallel_trainings(plan: VariantsPlan, todo: list[VariantRun], echo: Callable[[str], None]) -> dict[str, Any]:
    """On a cluster (`address`) with GPUs, the trainings `todo` (single-process ones) as Ray tasks at once;
    {} where they run one after another (locally, without GPUs, or with Ray Train workers)."""
    if not plan.address or len(todo) < 2 or any(r.train.train_workers > 1 for r in todo):
        return {}
    import ray

    from fiagen.cluster.session import ray_session

    with ray_session(plan.address, None):
        if ray.cluster_resources().get("GPU", 0) < 1:
            return {}
        return _train_parallel(todo, max(1.0, max(r.train.gpus_per_worker for r in todo)), echo)
