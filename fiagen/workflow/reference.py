"""Published figures beside a run's own: a pipeline file's `reference:` section (docs/paper.yaml holds the
paper's), compared per suite with what the bench stage measured, and the GPU hours a pipeline's training
will take.

    reference:
      source: FIA-USA paper (Table 3: video AUC; Table 9a: DF40 frame AUC)
      suites:
        cdf_v2: {auc: 0.941, level: video}
        df40: {auc: 0.878, level: frame, methods: [uniface, e4s, facedancer, fsgan, inswap, simswap]}

A suite's own AUC is the `all` row of its table at the named level, or the mean over `methods` rows where
the published figure is a mean over methods.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fiagen.core.files import write_text
from fiagen.workflow.pipeline_file import PipelineError

LEVELS = ("frame", "video")
REFERENCE_NAME = "reference"


@dataclass(frozen=True)
class Figure:
    """One published AUC: the suite it is for, at which level, and over which methods (all when empty)."""

    suite: str
    auc: float
    level: str
    methods: tuple[str, ...] = ()


@dataclass(frozen=True)
class Reference:
    """The published figures a run is compared with, and where they come from."""

    source: str
    figures: tuple[Figure, ...] = field(default_factory=tuple)


def _figure(suite: str, value: Any, where: str) -> Figure:
    value = {"auc": value} if isinstance(value, (int, float)) and not isinstance(value, bool) else value
    if not isinstance(value, Mapping) or not isinstance(value.get("auc"), (int, float)):
        raise PipelineError(f"{where}: suite '{suite}' needs an AUC, e.g. {{auc: 0.941, level: video}}")
    auc = float(value["auc"])
    auc = auc / 100 if auc > 1 else auc  # papers print 94.1 as often as 0.941
    level = str(value.get("level", "video"))
    if not 0 <= auc <= 1 or level not in LEVELS:
        raise PipelineError(f"{where}: suite '{suite}': expected an AUC in [0, 1] (or a percentage) and a level "
                            f"in {', '.join(LEVELS)}, got auc {value['auc']!r}, level {level!r}")
    methods = value.get("methods", ())
    if isinstance(methods, str) or not all(isinstance(m, str) for m in methods):
        raise PipelineError(f"{where}: suite '{suite}': methods must be a list of the suite's method names")
    return Figure(suite, auc, level, tuple(methods))


def parse_reference(section: Any, suites: Sequence[str], where: str = "pipeline reference") -> Reference:
    """A `reference:` section checked against the bench suites it compares (every figure's suite is scored)."""
    if not isinstance(section, Mapping) or not isinstance(section.get("suites"), Mapping):
        raise PipelineError(f"{where}: expected a mapping with `source` and `suites: {{suite: {{auc, level}}}}`")
    unknown = sorted(set(section) - {"source", "suites"})
    if unknown:
        raise PipelineError(f"{where}: unknown key(s) {', '.join(unknown)} (expected source, suites)")
    figures = tuple(_figure(str(s), v, where) for s, v in section["suites"].items())
    missing = [f.suite for f in figures if f.suite not in suites]
    if missing:
        raise PipelineError(f"{where}: suite(s) {', '.join(missing)} have a published figure but the bench stage "
                            f"does not score them (its suites: {', '.join(suites) or 'none'})")
    return Reference(str(section.get("source", "published figures")), figures)


def _ours(figure: Figure, table: Any) -> float | None:
    """The run's AUC comparable to `figure`: the `all` row, or the mean over the figure's methods."""
    column = f"{figure.level}_auc"
    rows = table[table["method"].isin(figure.methods)] if figure.methods else table[table["method"] == "all"]
    values = [float(v) for v in rows[column] if v is not None and not math.isnan(float(v))]
    if not values or (figure.methods and len(values) < len(figure.methods)):
        return None
    return sum(values) / len(values)


def compare(reference: Reference, tables: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per published figure: the suite, level, the published AUC, this run's and the difference (ours - paper);
    `tables` maps a suite to its per-method table (None where the suite was not scored)."""
    rows = []
    for fig in reference.figures:
        table = tables.get(fig.suite)
        ours = None if table is None else _ours(fig, table)
        rows.append({"suite": fig.suite, "level": fig.level, "published_auc": round(fig.auc, 4),
                     "this_run_auc": None if ours is None else round(ours, 4),
                     "difference": None if ours is None else round(ours - fig.auc, 4),
                     "methods": list(fig.methods)})
    return rows


def markdown(reference: Reference, rows: list[dict[str, Any]]) -> str:
    """The comparison as a Markdown table (`-` where the run has no figure for a suite)."""
    def cell(value: float | None, sign: bool = False) -> str:
        return "-" if value is None else (f"{value:+.3f}" if sign else f"{value:.3f}")

    lines = [f"Published: {reference.source}", "", "| suite | level | published AUC | this run | difference |",
             "|---|---|---|---|---|"]
    for r in rows:
        over = f" (mean of {len(r['methods'])} methods)" if r["methods"] else ""
        lines.append(f"| {r['suite']}{over} | {r['level']} | {cell(r['published_auc'])} | "
                     f"{cell(r['this_run_auc'])} | {cell(r['difference'], sign=True)} |")
    return "\n".join(lines) + "\n"


def write_comparison(out: Path, reference: Reference, rows: list[dict[str, Any]]) -> list[Path]:
    """OUT/reference.md and OUT/reference.json (the rows and the source)."""
    md, js = Path(out) / f"{REFERENCE_NAME}.md", Path(out) / f"{REFERENCE_NAME}.json"
    write_text(md, markdown(reference, rows))
    write_text(js, json.dumps({"source": reference.source, "rows": rows}, indent=2) + "\n")
    return [md, js]


@dataclass(frozen=True)
class Estimate:
    """The training a pipeline asks for, in steps, and its GPU hours at `step_seconds` (None: not known)."""

    videos: int
    frames: int
    steps: int
    step_seconds: float | None
    basis: str

    @property
    def gpu_hours(self) -> float | None:
        """Steps x seconds per step x GPUs, in hours (training only: not AFFS, validation or scoring)."""
        return None if self.step_seconds is None else self.steps * self.step_seconds / 3600

    def line(self, gpus: int) -> str:
        """One comment line for `fiagen run --dry-run`."""
        work = f"{self.videos} train videos x {self.frames // max(self.videos, 1)} frames = {self.frames} frames, " \
               f"{self.steps} steps"
        if self.gpu_hours is None:
            return f"# estimate: {work}; GPU hours: pass --step-seconds S (a step's seconds on your GPU)\n"
        return (f"# estimate: {work} x {self.step_seconds:g} s ({self.basis}) = {self.gpu_hours * gpus:.1f} GPU "
                f"hours on {gpus} GPU(s) (training only)\n")


def measured_step_seconds(run: Path, pairs_per_step: int) -> float | None:
    """A step's seconds in a run folder's steps.csv: `pairs_per_step` over the median pairs/s (None without)."""
    import pandas as pd

    path = Path(run) / "steps.csv"
    if not path.is_file():
        return None
    rate = pd.read_csv(path).get("pairs_per_s")
    rate = None if rate is None else rate.dropna()
    return None if rate is None or rate.empty or rate.median() <= 0 else pairs_per_step / float(rate.median())


def estimate(train: Any, train_videos: int, frames: int, step_seconds: float | None) -> Estimate:
    """Steps of the train config `train` over `train_videos` x `frames`, timed by `step_seconds` or, without it,
    by the run folder's own steps.csv where one exists."""
    basis = "given"
    total = train_videos * frames
    per_step = train.batch_size * max(train.train_workers, 1)
    if step_seconds is None:
        step_seconds, basis = measured_step_seconds(Path(train.run), per_step), f"measured in {train.run}/steps.csv"
    steps = train.epochs * math.ceil(total / per_step)
    return Estimate(train_videos, total, steps, step_seconds, basis)


def pipeline_reference(data: Mapping[str, Any], configs: Mapping[str, Any]) -> Reference | None:
    """A plain pipeline's `reference:` section checked against its bench stage (None without one)."""
    if "reference" not in data:
        return None
    if "bench" not in configs:
        raise PipelineError("pipeline reference: published figures are compared with the bench stage's; add a "
                            "`bench:` section that scores their suites")
    return parse_reference(data["reference"], list(configs["bench"].suites))


def train_videos(precompute: Any) -> int | None:
    """How many train videos the precompute stage's source holds: FF++'s official split without its data, a
    folder source's train items where the folder exists (None where it cannot be known before the run)."""
    from fiagen.core.errors import FiagenError
    from fiagen.manifests.sources import ffpp_split_ids, resolve_source

    if precompute.src == "ff++_c23":
        return len(ffpp_split_ids()["train"])
    try:
        listing = resolve_source(precompute.src, precompute.root)
    except FiagenError:
        return None
    return sum(item.split == "train" for item in listing.items)


def dry_run_notes(data: Mapping[str, Any], configs: Mapping[str, Any], step_seconds: float | None) -> str:
    """The comment lines `fiagen run --dry-run` adds after the stages: the training's size and GPU hours, and
    the published figures the bench stage will be compared with."""
    text = ""
    reference = pipeline_reference(data, configs)
    if "train" in configs and "precompute" in configs:
        videos = train_videos(configs["precompute"])
        train = configs["train"]
        if videos:
            gpus = max(1, math.ceil(train.train_workers * train.gpus_per_worker))
            text += estimate(train, videos, configs["precompute"].frames, step_seconds).line(gpus)
    if reference is not None:
        text += f"# compared with: {reference.source}\n"
        text += "".join(f"#   {f.suite}: {f.auc:.3f} {f.level} AUC"
                        f"{f' (mean of {len(f.methods)} methods)' if f.methods else ''}\n" for f in reference.figures)
    return text
