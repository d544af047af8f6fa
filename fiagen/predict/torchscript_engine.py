"""The TorchScript scoring engine: a detector exported by `fiagen export --format torchscript` (.ts), run by
torch.jit without fiagen's model code. The file holds the same inference path and metadata as an ONNX
export (fiagen.predict.onnx_engine): (N, 3, S, S) float32 RGB crops in [0, 1] -> (P(fake), logit), the input
spec and the model card as extra files."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from fiagen.core.errors import message_line
from fiagen.predict.engine import EngineError, InputSpec, as_model_input
from fiagen.predict.onnx_engine import META_KEYS, read_metadata


def load_torchscript(path: str | Path, device: str = "cpu") -> tuple[Any, InputSpec, dict[str, Any]]:
    """(module, input spec, model card) of an exported TorchScript file, the module on `device`; a file
    that is not one is an EngineError."""
    import torch

    extra = dict.fromkeys(META_KEYS, "")
    try:
        with warnings.catch_warnings():  # torch.jit is deprecated in torch >= 2.9, and still what TorchScript is
            warnings.simplefilter("ignore")
            module = torch.jit.load(str(path), map_location=device, _extra_files=extra)
    except (RuntimeError, ValueError) as err:
        raise EngineError(f"cannot read {path} as a TorchScript model ({message_line(err)})") from None
    spec, card = read_metadata({k: v.decode() if isinstance(v, bytes) else v for k, v in extra.items()}, Path(path))
    return module.eval(), spec, card


class TorchScriptEngine:
    """An exported TorchScript detector on `device`; P(fake) of crops in batches of `batch_size`."""

    name = "torchscript"

    def __init__(self, module: Any, spec: InputSpec, card: dict[str, Any], device: str, batch_size: int) -> None:
        self.module, self.spec, self.card, self.device, self.batch_size = module, spec, card, device, batch_size

    def score_crops(self, crops: np.ndarray) -> np.ndarray:
        """uint8 (N, S, S, 3) RGB or float32 (N, 3, S, S) [0,1] -> float32 (N,) P(fake)."""
        import torch

        x = as_model_input(crops, self.spec.size)
        out = []
        with torch.inference_mode():
            for i in range(0, len(x), self.batch_size):
                p_fake, _ = self.module(torch.from_numpy(x[i:i + self.batch_size]).to(self.device))
                out.append(p_fake.reshape(-1).float().cpu().numpy())
        return np.concatenate(out).astype(np.float32) if out else np.zeros(0, np.float32)


def load(path: Path, device: str = "cpu", batch_size: int = 32) -> TorchScriptEngine:
    """The engine of an exported .ts file on `device` (cpu, cuda, cuda:N)."""
    module, spec, card = load_torchscript(path, device)
    return TorchScriptEngine(module, spec, card, device, batch_size)
