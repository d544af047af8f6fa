"""The scoring engine: what turns face crops into P(fake), swappable behind `Detector`.

Interface (agreed with the export / ONNX side; keep these names):

    InputSpec             what an engine expects and how crops are made: `size` (S), `mean`/`std` (RGB, on
                          [0,1] values; applied INSIDE the engine, callers never normalise), `channel_order`
                          ("RGB"), `crop_policy` (the text of the evaluation crop) and `margin` (0.125).
                          `as_dict()` / `InputSpec.from_dict(d)` round-trip it (e.g. through ONNX metadata).
    ScoringEngine         a Protocol:
        .spec             its InputSpec
        .card             the model card (a dict; {} when none): `threshold` (float or None) and
                          `threshold_source` (str: what the threshold was chosen on) are read by predict;
                          everything else (backbone, train_data, val_auc, ...) is shown as given
        .name             one word for the engine: "torch", "onnxruntime" or "torchscript"
        .device           where it runs: "cpu", "cuda", "CPUExecutionProvider", ...
        .score_crops(x)   x: uint8 (N, S, S, 3) RGB crops, or float32 (N, 3, S, S) RGB in [0,1];
                          -> float32 (N,) P(fake) = sigmoid(logit). N may be 0.
    ENGINES               file suffix -> "module:function"; the function is
                          `load(path: Path, device: str, batch_size: int) -> ScoringEngine`.
                          ".pt" -> fiagen.predict.torch_engine:load (this side);
                          ".onnx" -> fiagen.predict.onnx_engine:load (the export side writes that module);
                          ".ts" -> fiagen.predict.torchscript_engine:load (a TorchScript export).
    load_engine(path, device="cpu", batch_size=32)   dispatches on the suffix; an unknown suffix, a missing
                          file (`model_file` checks both) or a missing optional dependency is an EngineError
                          (one error line).
    as_model_input(x, size)   the float32 (N, 3, S, S) [0,1] array of either input form (uint8 / 255 exactly
                          as evaluation does); an engine that needs numpy input may use it.
"""

from __future__ import annotations

import importlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from fiagen.core.errors import FiagenError

CROP_POLICY = ("face box (face policy of fiagen.precompute.faces) + 12.5% of its width/height per side, "
               "clipped to the frame, resized to size x size (area when shrinking > 1.25x, else bilinear)")


class EngineError(FiagenError):
    """A model file that cannot be loaded as a scoring engine."""


@dataclass(frozen=True)
class InputSpec:
    """What a scoring engine takes: size x size RGB crops made by `crop_policy`, values in [0,1],
    normalised by (x - mean) / std inside the engine."""

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    channel_order: str = "RGB"
    margin: float = 0.125
    crop_policy: str = CROP_POLICY

    def as_dict(self) -> dict[str, Any]:
        """Plain values (lists for tuples), e.g. for JSON metadata."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> InputSpec:
        """The spec of `as_dict`'s output."""
        return cls(**{**d, "size": int(d["size"]), "mean": tuple(map(float, d["mean"])),
                      "std": tuple(map(float, d["std"]))})


@runtime_checkable
class ScoringEngine(Protocol):
    """Face crops -> P(fake); see the module docstring for the contract."""

    spec: InputSpec
    card: dict[str, Any]
    name: str
    device: str

    def score_crops(self, crops: np.ndarray) -> np.ndarray:
        """uint8 (N, S, S, 3) RGB or float32 (N, 3, S, S) [0,1] -> float32 (N,) P(fake)."""
        ...


ENGINES: dict[str, str] = {
    ".pt": "fiagen.predict.torch_engine:load",
    ".onnx": "fiagen.predict.onnx_engine:load",
    ".ts": "fiagen.predict.torchscript_engine:load",
}


def model_file(path: str | Path) -> Path:
    """`path`, if it is a model file fiagen reads (a suffix of ENGINES) and exists; else an EngineError."""
    p = Path(path)
    if p.suffix.lower() not in ENGINES:
        raise EngineError(f"{p}: not a model file fiagen reads (suffixes: {', '.join(sorted(ENGINES))})")
    if not p.is_file():
        raise EngineError(f"model not found: {p}")
    return p


def load_engine(path: str | Path, device: str = "cpu", batch_size: int = 32) -> ScoringEngine:
    """The scoring engine of a model file, chosen by its suffix (ENGINES)."""
    p = model_file(path)
    module, func = ENGINES[p.suffix.lower()].split(":")
    try:
        loader = getattr(importlib.import_module(module), func)
    except ImportError as err:
        raise EngineError(f"{p}: its engine needs {err.name or err}, which is not installed "
                          f"(pip install 'fiagen[onnx]' for .onnx files)") from None
    return loader(p, device, batch_size)


def as_model_input(crops: np.ndarray, size: int) -> np.ndarray:
    """float32 (N, 3, S, S) in [0,1] from uint8 (N, S, S, 3) crops (/ 255, as evaluation does) or from a
    float array already in that form; a wrong shape is an EngineError."""
    x = np.asarray(crops)
    if x.dtype == np.uint8 and x.ndim == 4 and x.shape[1:] == (size, size, 3):
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2)).astype(np.float32) / np.float32(255.0)
    if x.dtype != np.uint8 and x.ndim == 4 and x.shape[1:] == (3, size, size):
        return np.ascontiguousarray(x, dtype=np.float32)
    raise EngineError(f"crops must be uint8 (N, {size}, {size}, 3) or float (N, 3, {size}, {size}) in [0,1], "
                      f"got {x.dtype} {x.shape}")
