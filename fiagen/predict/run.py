"""`fiagen predict`: every input through `Detector.predict`, rows kept in chunks under --out (a rerun
resumes: inputs already committed are not scored again), then the files, the timelines, the renders and
the table. An input that cannot be scored is a row with its reason; the others go on."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fiagen.core import stop
from fiagen.core.files import sha256_file
from fiagen.core.outputs import claim_output, hold_folder
from fiagen.core.progress import stage_progress
from fiagen.evaluate.config import EvalMismatch
from fiagen.evaluate.store import FRAMES_NAME, VIDEOS_NAME, ScoreStore
from fiagen.precompute.faces import PASSES
from fiagen.predict.config import PredictConfig
from fiagen.predict.detector import Detector
from fiagen.predict.engine import ScoringEngine
from fiagen.predict.outputs import slug, timeline, write_rows
from fiagen.predict.render import render_image, render_video
from fiagen.predict.result import Prediction
from fiagen.predict.rows import FACE_SCHEMA, INPUT_SCHEMA, input_row, prediction_rows
from fiagen.train.card import card_line

DEFAULT_THRESHOLD = 0.5


@dataclass
class PredictRun:
    """The rows (one per input, in the order found), the threshold and what it was chosen on, the
    detector's line and the files written."""

    rows: list[dict[str, Any]]
    threshold: float
    threshold_source: str
    detector: str
    written: list[Path] = field(default_factory=list)

    @property
    def failed(self) -> list[dict[str, Any]]:
        """The rows of the inputs that were not scored."""
        return [r for r in self.rows if r["status"] != "ok"]


def choose_threshold(given: float | None, card: dict[str, Any]) -> tuple[float, str]:
    """(threshold, what it was chosen on): --threshold, else the card's (from its validation split), else
    0.5, said to be uncalibrated."""
    if given is not None:
        return given, "given with --threshold"
    if card.get("threshold") is not None:
        return float(card["threshold"]), str(card.get("threshold_source") or "the checkpoint's validation split")
    return DEFAULT_THRESHOLD, "default 0.5, not calibrated: the model stores no threshold chosen on validation data"


def describe(engine: ScoringEngine, path: Path) -> str:
    """One line naming the detector (its model card's line), the engine and the file."""
    return f"{card_line(engine.card)}; {engine.name} on {engine.device} ({path})"


def _claim(out: Path, model: Path, cfg: PredictConfig, size: int) -> ScoreStore:
    scores = out / "scores"
    fingerprint = {"model_sha256": sha256_file(model), "size": size, "frames": cfg.frames, "every": cfg.every,
                   "face": cfg.face, "min_face_score": cfg.min_face_score, "face_passes": list(PASSES)}
    claim_output(scores, fingerprint, cfg.overwrite, (FRAMES_NAME, VIDEOS_NAME), lambda changed: EvalMismatch(
        f"{out} holds predictions made with other settings ({', '.join(changed)} differ); use another --out or "
        f"pass --overwrite to score again"))
    return ScoreStore(scores, FACE_SCHEMA, INPUT_SCHEMA)


def _predicted(detector: Detector, paths: list[Path], quiet: bool) -> Iterator[tuple[Path, Prediction]]:
    """Each input with its Prediction, under a progress bar; a signal stops at the next input."""
    with stop.safe_points(), stage_progress(quiet, unit="inputs") as bar:
        task = bar.add_task("predict", total=len(paths), rate="")
        for path in paths:
            yield path, detector.predict(path)
            bar.advance(task)
            if stop.requested() is not None:
                raise stop.Stopped(stop.requested())


def _score(detector: Detector, paths: list[Path], store: ScoreStore, cfg: PredictConfig) -> None:
    """Score the inputs the store lacks, committing a chunk every `cfg.chunk` inputs (and when stopped)."""
    done = store.done()
    try:
        for path, prediction in _predicted(detector, [p for p in paths if str(p) not in done], cfg.quiet):
            store.add(*prediction_rows(prediction, str(path)))
            if store.pending >= cfg.chunk:
                store.flush()
    finally:
        store.flush()


def _extras(rows: list[dict[str, Any]], faces: Any, out: Path, threshold: float, render: bool) -> list[Path]:
    """Timelines of the videos with a face; with `render`, the annotated copies."""
    written, by_input = [], dict(tuple(faces.groupby("video")))
    for row in rows:
        mine = by_input.get(row["input"])
        if row["status"] != "ok" or mine is None:
            continue
        name = slug(row["input"])
        if row["kind"] == "video":
            written.append(timeline(mine, row["input"], threshold, out / "timelines" / f"{name}.png"))
        if render and row["kind"] == "video":
            written.append(render_video(Path(row["input"]), mine, row["fps"], out / "render" / f"{name}.mp4"))
        elif render and row["kind"] == "image":
            written.append(render_image(Path(row["input"]), mine, out / "render" / f"{name}.png"))
    return written


def run_predict(cfg: PredictConfig, paths: list[Path], model: Path) -> PredictRun:
    """Predict every input of `paths` with the model file `model` (a checkpoint or an exported model)."""
    with ExitStack() as stack:
        detector = stack.enter_context(Detector.load(model, cfg.device, frames=cfg.frames, every=cfg.every,
                                                     face=cfg.face, min_face_score=cfg.min_face_score,
                                                     batch_size=cfg.batch_size))
        threshold, source = choose_threshold(cfg.threshold, detector.engine.card)
        line = describe(detector.engine, model)
        out = stack.enter_context(hold_folder(cfg.out)) if cfg.out else None
        if out is None:  # no --out: the input rows stay in memory, the face rows are not kept
            rows = [prediction_rows(p, str(path))[1] for path, p in _predicted(detector, paths, cfg.quiet)]
            return PredictRun([input_row(r, threshold, source, line) for r in rows], threshold, source, line)
        store = _claim(out, model, cfg, detector.size)
        _score(detector, paths, store, cfg)
        stored = store.videos().drop_duplicates("video", keep="last").set_index("video", drop=False)
        rows = [input_row(stored.loc[str(p)].to_dict(), threshold, source, line) for p in paths]
        faces = store.frames()
        faces = faces[faces["video"].isin([str(p) for p in paths])]
        written = write_rows(rows, faces, out)
        written += _extras(rows, faces, out, threshold, cfg.render)
        return PredictRun(rows, threshold, source, line, written)
