"""`fiagen run PIPELINE.yaml`: a pipeline file's stages in order on one Ray cluster, or with `variants:` and
`seeds:` every variant x seed and their table (docs/run.md, docs/variants.md)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fiagen.workflow.checks import check_plan, check_stages
from fiagen.workflow.pipeline_file import StageOutcome, pipeline_yaml, read_pipeline, stage_configs
from fiagen.workflow.plan import is_variants, plan_variants, plan_yaml
from fiagen.workflow.reference import compare, dry_run_notes, markdown, pipeline_reference, write_comparison
from fiagen.workflow.stages import run_bench, run_precompute, run_train
from fiagen.workflow.variants import run_variants


def dry_run(path: Path, address: str | None = None, step_seconds: float | None = None) -> str:
    """What `fiagen run --dry-run` prints: every stage's resolved config (with variants, every run), then the
    training's steps and GPU hours (at `step_seconds`, else as measured in the run folder) and the published
    figures the bench will be compared with."""
    data = read_pipeline(path)
    if is_variants(data):
        plan = plan_variants(data, address)
        check_plan(plan)  # what the real run checks first: the same line on the first failure
        return plan_yaml(plan)
    configs = stage_configs(data, address)
    check_stages(configs)
    return pipeline_yaml(configs) + dry_run_notes(data, configs, step_seconds)


def run_pipeline(path: Path, address: str | None = None,
                 echo: Callable[[str], None] = print) -> list[StageOutcome]:
    """Run the stages a pipeline file names, in order, on the cluster at `address` (or the file's); with
    `variants:` or `seeds:`, every variant x seed (fiagen.workflow.variants)."""
    data = read_pipeline(path)
    if is_variants(data):
        check_plan(plan_variants(data, address))  # every run's stages, before the first starts
        return run_variants(data, address, echo)
    run = {"precompute": run_precompute, "train": run_train, "bench": run_bench}
    outcomes: list[StageOutcome] = []
    configs = stage_configs(data, address)
    check_stages(configs)  # every stage (a typo'd suite, a missing root), before the first runs
    reference = pipeline_reference(data, configs)
    for stage, cfg in configs.items():
        outcome = run[stage](cfg)
        outcomes.append(outcome)
        echo(f"[{stage}] {outcome.status}: {outcome.detail}")
        if stage == "bench" and reference is not None:
            rows = compare(reference, outcome.tables or {})
            paths = write_comparison(Path(cfg.out), reference, rows)
            echo("\n" + markdown(reference, rows) + f"-> {paths[0]}")
    return outcomes
