"""The evaluation stage: suites -> Ray tasks (decode, detect, crop) -> a Ray actor (the detector) ->
chunked score files -> tables, ROC curves, robustness.

Outputs under OUT/<suite>/ (OUT defaults to <checkpoint folder>/eval):
    frames.parquet/, videos.parquet/   the scores (see fiagen.evaluate.store), appended in chunks
    config.json                        what the scores depend on; a rerun with the same settings resumes
    table.csv / .md / .tex, roc.png    per-method metrics, stamped; ROC curves
    report.json                        counts, missing files, videos without a face, failures, timings
    perturb/<name>-<level>/            the same score files under each perturbation
    robustness.csv / .md / .tex / .png R_AUC per perturbation and level
and, for several suites, OUT/bench.csv / .md / .tex (the `all` row of each) and OUT/bench.json (each suite
scored, skipped or failed, with the reason).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import ray

from fiagen.cluster.session import ray_session
from fiagen.core.files import write_text
from fiagen.core.outputs import hold_folder
from fiagen.core.settings import ConfigError
from fiagen.evaluate.config import FACE_STAMP, BenchResult, EvalConfig, SuiteResult
from fiagen.evaluate.dispatch import scorer_actor
from fiagen.evaluate.inputs import EvalInputs, check_perturb, find_inputs
from fiagen.evaluate.pseudo import evaluate_pseudo
from fiagen.evaluate.render import render, render_bench
from fiagen.evaluate.suite import NothingScored, evaluate_suite
from fiagen.evaluate.tables import summary_row, write_table
from fiagen.manifests.pseudo import is_pseudo
from fiagen.manifests.roots import SourceError
from fiagen.train.checkpoint import checkpoint_info

__all__ = ["EvalConfig", "bench", "evaluate", "render", "render_bench"]

BENCH_SCHEMA = "fiagen.bench/1"
log = logging.getLogger(__name__)


def bench(cfg: EvalConfig, inputs: EvalInputs | None = None) -> BenchResult:
    """Evaluate every suite of `cfg.suites` with one checkpoint; writes OUT/<suite>/ and OUT/bench.*,
    holding OUT (fiagen.core.outputs.hold_folder) for the whole run.

    A suite whose dataset cannot be found is an error, or, with `skip_missing_suites` (--suite all),
    a skipped suite with its reason. Of several suites, one where every video fails is recorded as failed
    (its reason in OUT/bench.json and the result) and the others are scored; an error when none scores.
    `inputs`: what `find_inputs` already found for `cfg`.
    """
    inputs = inputs or find_inputs(cfg.suites, cfg.root, cfg.ckpt, cfg.skip_missing_suites, cfg.allow_outside_root)
    ckpt, listings = inputs.ckpt, inputs.listings
    out = Path(cfg.out) if cfg.out else ckpt.parent / "eval"
    result = BenchResult(out, skipped=dict(inputs.skipped))
    check_perturb(cfg, listings)
    info = checkpoint_info(ckpt)
    with hold_folder(out):
        with ray_session(cfg.address, cfg.concurrency) as concurrency:
            scorer = scorer_actor(ckpt, cfg.batch_size)
            try:
                for spec, listing in listings.items():
                    run = evaluate_pseudo if is_pseudo(spec) else evaluate_suite
                    try:
                        result.suites.append(run(spec, listing, cfg, info, scorer, concurrency, out))
                    except NothingScored as err:
                        if len(listings) == 1:
                            raise
                        result.failed[spec] = str(err)
                        log.warning("%s", err)
            finally:
                ray.kill(scorer)
        if not result.suites:
            raise SourceError(f"nothing scored in any of the {len(listings)} suites (first: "
                              f"{next(iter(result.failed.values()))})")
        rows = [{"suite": r.name, "level": r.stamp["level"], **{k: r.stamp[k] for k in FACE_STAMP if k in r.stamp},
                 **{k: v for k, v in summary_row(r.table).items() if k not in ("method", "family")}}
                for r in result.suites]
        result.summary = pd.DataFrame(rows)
        if len(result.suites) > 1:
            stamp = {k: v for k, v in result.suites[0].stamp.items() if k not in ("level", *FACE_STAMP)}
            write_table(result.summary, stamp, out / "bench", "all suites, `all` rows (level per suite)")
        if len(listings) + len(result.skipped) > 1:
            _write_outcomes(result)
    return result


def _write_outcomes(result: BenchResult) -> None:
    """OUT/bench.json: each suite's outcome (scored, with its folder; skipped or failed, with the reason)."""
    record = {"schema": BENCH_SCHEMA, "scored": {r.name: str(r.folder) for r in result.suites},
              "skipped": result.skipped, "failed": result.failed}
    write_text(result.out / "bench.json", json.dumps(record, indent=2) + "\n")


def evaluate(cfg: EvalConfig, inputs: EvalInputs | None = None) -> SuiteResult:
    """Evaluate the one suite of `cfg.suites` (several: use `bench`, which scores them all); `inputs` as for
    `bench`."""
    if len(cfg.suites) != 1:
        raise ConfigError(f"evaluate scores one suite, got {len(cfg.suites)} ({', '.join(cfg.suites) or 'none'}); "
                          f"use bench (`fiagen bench`) for several")
    one = EvalConfig(**{**asdict(cfg), "skip_missing_suites": False})
    return bench(one, inputs).suites[0]
