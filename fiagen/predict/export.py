"""`fiagen export`: a checkpoint's inference path as one file that runs without the trainer.

What is exported: `InferenceNet`, the Detector alone (normalisation + timm classifier; no AFFS, no FPN),
taking float32 (N, 3, S, S) RGB crops in [0, 1] and returning (P(fake), logit), each (N,), for any N.
The input spec (size, mean/std, channel order, crop policy) and the model card travel in the file:
ONNX metadata_props, TorchScript extra files (the same keys, see fiagen.predict.onnx_engine). Every
export is checked before it is kept: the written file against torch on seeded random crops.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fiagen.core.errors import FiagenError, message_line
from fiagen.core.files import atomic_file
from fiagen.core.settings import setting
from fiagen.predict.engine import InputSpec
from fiagen.predict.onnx_engine import INPUT, OUTPUTS, metadata
from fiagen.predict.torchscript_engine import load_torchscript

FORMATS = {"onnx": ".onnx", "torchscript": ".ts"}
CHECK_CROPS = 5  # crops the written file is checked on (a batch size unlike the export example's 2)
TOLERANCE = 1e-4  # max |exported - torch| in fp32, on P(fake) and on the logit


class ExportError(FiagenError):
    """An export that cannot be made, or whose file does not score as torch does."""


@dataclass(frozen=True)
class ModelExportConfig:
    """Every setting of `fiagen export` (see its --help)."""

    ckpt: str | None = setting(None, "Detector checkpoint. Default: the newest runs/*/best.pt.", file=True)
    format: str = setting("onnx", "onnx (runs with onnxruntime: `fiagen predict --model FILE`) or torchscript.",
                          choices=tuple(FORMATS))
    out: str | None = setting(None, "The file to write. Default: the checkpoint's path with .onnx / .ts.", file=True)
    opset: int = setting(18, "ONNX opset.", min=18)


@dataclass
class Exported:
    """A written export: its path, format, and the largest |exported - torch| on the check crops."""

    path: Path
    format: str
    max_diff: float
    card: dict[str, Any]


def inference_net(detector: Any) -> Any:
    """The exported module: x (N, 3, S, S) in [0,1] -> (sigmoid(logit), logit)."""
    import torch

    class InferenceNet(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.detector = detector

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            logit = self.detector(x)
            return torch.sigmoid(logit), logit

    return InferenceNet().eval()


def _onnx(net: Any, example: Any, path: Path, meta: dict[str, str], opset: int) -> None:
    import torch

    try:
        import onnxruntime  # noqa: F401 - what checks the written file
        import onnxscript  # noqa: F401 - what torch.onnx's exporter needs
    except ImportError as err:
        raise ExportError(f"--format onnx needs {err.name}: pip install 'fiagen[onnx]'") from None
    batch = torch.export.Dim("batch", min=1, max=65536)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(net, (example,), None, dynamo=True, input_names=[INPUT], output_names=list(OUTPUTS),
                                    dynamic_shapes=({0: batch},), opset_version=opset, verbose=False)
    program.model.metadata_props.update(meta)
    program.save(str(path))


def _torchscript(net: Any, example: Any, path: Path, meta: dict[str, str]) -> None:
    import torch

    with warnings.catch_warnings():  # torch.jit is deprecated in torch >= 2.9, and still what TorchScript is
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(net, example)
        torch.jit.save(traced, str(path), _extra_files=meta)


def _scores(path: Path, fmt: str, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(P(fake), logit) of the written file for x."""
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        p, logit = session.run(list(OUTPUTS), {INPUT: x})
        return p, logit
    import torch

    module, _, _ = load_torchscript(path)
    with torch.inference_mode():
        p, logit = module(torch.from_numpy(x))
    return p.numpy(), logit.numpy()


def export_model(ckpt: str | Path, fmt: str, out: str | Path | None = None, opset: int = 18) -> Exported:
    """Export a checkpoint's inference path (see the module docstring) to `out` (written whole or not at
    all), checked against torch on CHECK_CROPS seeded random crops: ExportError above TOLERANCE."""
    import torch

    from fiagen.train.checkpoint import load_detector

    if fmt not in FORMATS:
        raise ExportError(f"--format {fmt!r}: one of {', '.join(FORMATS)}")
    path = Path(out) if out else Path(ckpt).with_suffix(FORMATS[fmt])
    detector, info = load_detector(ckpt)
    detector = detector.to(memory_format=torch.contiguous_format)
    spec = InputSpec(size=int(info["size"]), mean=tuple(detector.mean.reshape(-1).tolist()),
                     std=tuple(detector.std.reshape(-1).tolist()))
    net = inference_net(detector)
    g = torch.Generator().manual_seed(0)
    example = torch.rand(2, 3, spec.size, spec.size, generator=g)
    check = torch.rand(CHECK_CROPS, 3, spec.size, spec.size, generator=g)
    meta = metadata(spec, info["card"])
    with atomic_file(path) as tmp:
        try:
            if fmt == "onnx":
                _onnx(net, example, tmp, meta, opset)
            else:
                _torchscript(net, example, tmp, meta)
        except ExportError:
            raise
        except Exception as err:  # noqa: BLE001 - an exporter failure is one line naming the backbone
            raise ExportError(f"cannot export {info['backbone']} to {fmt}: {message_line(err)}") from None
        with torch.inference_mode():
            want_p, want_logit = (t.numpy() for t in net(check))
        got_p, got_logit = _scores(tmp, fmt, check.numpy())
        diff = float(max(np.abs(got_p - want_p).max(), np.abs(got_logit - want_logit).max()))
        if not diff <= TOLERANCE:
            raise ExportError(f"the {fmt} export of {ckpt} differs from torch by {diff:.3g} (> {TOLERANCE:g}); "
                              f"nothing written")
    return Exported(path, fmt, diff, info["card"])
