"""The settings of `fiagen predict` and where its inputs are: files, folders (searched recursively for
media) and globs, found before anything heavy loads."""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

from fiagen.core.errors import FiagenError
from fiagen.core.media import is_media
from fiagen.core.settings import setting

FACE_CHOICES = ("detect", "detect-or-whole", "whole")


@dataclass(frozen=True)
class PredictConfig:
    """Every setting of `fiagen predict` (see its --help)."""

    inputs: tuple[str, ...] = setting((), "Videos, images, folders (searched recursively) or globs.", option=False)
    ckpt: str | None = setting(None, "Detector checkpoint. Default: the newest runs/*/best.pt.", file=True)
    model: str | None = setting(None, "An exported model (`fiagen export`: .onnx runs with onnxruntime, .ts with "
                                      "TorchScript) run instead of a checkpoint.", file=True)
    out: str | None = setting(None, "Folder for predictions.csv/.jsonl, faces.csv, timelines and renders; a rerun "
                                    "resumes. Default: nothing written.", output=True)
    frames: int = setting(32, "Frames per video, spread uniformly.", min=1)
    every: float | None = setting(None, "Seconds between sampled frames instead of --frames (a dense timeline).",
                                  min=0.01)
    threshold: float | None = setting(None, "P(fake) at or above which the verdict is fake. Default: the "
                                            "checkpoint's own (chosen on its validation split), else 0.5.",
                                      min=0, max=1)
    face: str = setting("detect", "What a frame's faces are: detect (the face finder; a frame without a face adds "
                                  "nothing), detect-or-whole (else the whole image), whole (no detection).",
                        choices=FACE_CHOICES)
    min_face_score: float = setting(0.5, "Face detector confidence threshold.", min=0, max=1)
    batch_size: int = setting(32, "Crops per forward pass.", min=1)
    device: str = setting("cpu", "Where the detector runs: cpu, cuda, cuda:1, ...")
    chunk: int = setting(64, "Inputs per appended score chunk (resume granularity).", min=1)
    render: bool = setting(False, "Write an annotated copy of each input under OUT/render/ (boxes coloured by "
                                  "score): MP4 for videos, PNG for images.", flag=True)
    json: bool = setting(False, "Print the rows as JSON lines to stdout instead of the table.", flag=True)
    overwrite: bool = setting(False, "Score again where --out holds scores made with other settings.", flag=True)
    quiet: bool = setting(False, "No progress bar.", flag=True)


def expand_inputs(specs: tuple[str, ...] | list[str]) -> list[Path]:
    """The input files, in the order given: a file as it is (media or not: predict says why it cannot be
    read), a folder's media files (recursively, sorted), a glob's matches (folders among them searched);
    a path or glob that matches nothing is kept (predict records it as not found). Each file once."""
    out: dict[Path, None] = {}
    for spec in specs:
        matches = [Path(m) for m in sorted(glob.glob(spec, recursive=True))] if glob.has_magic(spec) else [Path(spec)]
        if not matches:
            out[Path(spec)] = None
        for path in matches:
            found = sorted(p for p in path.rglob("*") if p.is_file() and is_media(p)) if path.is_dir() else []
            if found:
                out.update(dict.fromkeys(found))
            else:  # a file, or a folder without media (predict says so)
                out[path] = None
    if not out:
        raise FiagenError("no input given: name videos, images, folders or globs")
    return list(out)
