"""The onnxruntime scoring engine: a detector exported by `fiagen export --format onnx`, run without torch.

An exported file holds the inference path only: input `crops`, float32 (N, 3, S, S) RGB in [0, 1]; outputs
`p_fake` = sigmoid(`logit`) and `logit`, each (N,); the normalisation is inside. Its metadata_props say how
to feed it: `fiagen.input_spec` (JSON of `InputSpec`: size, mean, std, channel order, crop policy),
`fiagen.card` (JSON of the checkpoint's model card) and `fiagen.format` (FORMAT_TAG).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from fiagen.core.errors import message_line
from fiagen.predict.engine import EngineError, InputSpec, as_model_input

INPUT = "crops"
OUTPUTS = ("p_fake", "logit")
META_FORMAT, META_SPEC, META_CARD, META_IO = "fiagen.format", "fiagen.input_spec", "fiagen.card", "fiagen.io"
META_KEYS = (META_FORMAT, META_SPEC, META_CARD, META_IO)
FORMAT_TAG = "fiagen.detector-export/1"
IO_TEXT = (f"input {INPUT}: float32 (N, 3, S, S) RGB in [0, 1] (uint8 / 255), normalised inside; outputs "
           f"{OUTPUTS[0]} = sigmoid({OUTPUTS[1]}) and {OUTPUTS[1]}, float32 (N,)")


def metadata(spec: InputSpec, card: dict[str, Any]) -> dict[str, str]:
    """The metadata an exported file carries (ONNX metadata_props, TorchScript extra files)."""
    return {META_FORMAT: FORMAT_TAG, META_SPEC: json.dumps(spec.as_dict()), META_CARD: json.dumps(card),
            META_IO: IO_TEXT}


def read_metadata(meta: dict[str, str], path: Path) -> tuple[InputSpec, dict[str, Any]]:
    """(input spec, model card) from an exported file's metadata; EngineError when it is not fiagen's."""
    if meta.get(META_FORMAT) != FORMAT_TAG or META_SPEC not in meta:
        raise EngineError(f"{path} is not a detector exported by `fiagen export` (no {META_FORMAT} "
                          f"{FORMAT_TAG} in its metadata)")
    return InputSpec.from_dict(json.loads(meta[META_SPEC])), json.loads(meta.get(META_CARD, "{}"))


class OnnxEngine:
    """An exported detector in an onnxruntime session; P(fake) of crops in batches of `batch_size`."""

    name = "onnxruntime"

    def __init__(self, session: Any, spec: InputSpec, card: dict[str, Any], batch_size: int) -> None:
        self.session, self.spec, self.card, self.batch_size = session, spec, card, batch_size
        self.device = session.get_providers()[0]

    def score_crops(self, crops: np.ndarray) -> np.ndarray:
        """uint8 (N, S, S, 3) RGB or float32 (N, 3, S, S) [0,1] -> float32 (N,) P(fake)."""
        x = as_model_input(crops, self.spec.size)
        out = [self.session.run([OUTPUTS[0]], {INPUT: x[i:i + self.batch_size]})[0].reshape(-1)
               for i in range(0, len(x), self.batch_size)]
        return np.concatenate(out).astype(np.float32) if out else np.zeros(0, np.float32)


def providers(device: str) -> list[str]:
    """onnxruntime's execution providers for a device name: cpu, or cuda / cuda:N (CUDA, then CPU)."""
    import onnxruntime

    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device.startswith("cuda"):
        if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            raise EngineError(f"--device {device}: this onnxruntime has no CUDA provider (install onnxruntime-gpu "
                              f"in its place)")
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    raise EngineError(f"--device {device}: the onnxruntime engine runs on cpu or cuda")


def load(path: Path, device: str = "cpu", batch_size: int = 32) -> OnnxEngine:
    """The engine of an exported .onnx file on `device` (cpu, cuda, cuda:N)."""
    import onnxruntime

    chosen = providers(device)
    options = {"device_id": int(device.split(":")[1])} if device.startswith("cuda:") else {}
    try:
        session = onnxruntime.InferenceSession(str(path), providers=chosen,
                                               provider_options=[options, {}] if len(chosen) == 2 else None)
    except Exception as err:  # noqa: BLE001 - onnxruntime's InvalidProtobuf, Fail, ... for a bad file
        raise EngineError(f"cannot read {path} as an ONNX model: {message_line(err)}") from None
    spec, card = read_metadata(session.get_modelmeta().custom_metadata_map, path)
    return OnnxEngine(session, spec, card, batch_size)
