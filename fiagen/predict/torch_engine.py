"""The torch scoring engine: a fiagen checkpoint (.pt) run as evaluation runs it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fiagen.predict.engine import InputSpec, as_model_input


class TorchEngine:
    """A checkpoint's Detector on `device`; `score_crops` is evaluation's `predict` for uint8 crops, so
    the scores are evaluation's bit for bit."""

    name = "torch"

    def __init__(self, model: Any, info: dict[str, Any], device: str, batch_size: int) -> None:
        self.model, self.info, self.device, self.batch_size = model, info, device, batch_size
        self.spec = InputSpec(size=int(info["size"]), mean=tuple(model.mean.reshape(-1).tolist()),
                              std=tuple(model.std.reshape(-1).tolist()))
        card = info.get("card")
        self.card: dict[str, Any] = dict(card) if isinstance(card, dict) else {
            k: info.get(k) for k in ("backbone", "size", "train_data", "epoch", "val_auc", "fiagen_version")}

    def score_crops(self, crops: np.ndarray) -> np.ndarray:
        """uint8 (N, S, S, 3) RGB or float32 (N, 3, S, S) [0,1] -> float32 (N,) P(fake)."""
        import torch

        from fiagen.evaluate.scoring import predict

        x = np.asarray(crops)
        if x.dtype == np.uint8:
            as_model_input(x[:0], self.spec.size)  # checks the shape
            return predict(self.model, x, self.batch_size, self.device).astype(np.float32)
        x = as_model_input(x, self.spec.size)
        out = []
        with torch.inference_mode():
            for i in range(0, len(x), self.batch_size):
                batch = torch.from_numpy(x[i:i + self.batch_size]).to(self.device)
                out.append(torch.sigmoid(self.model(batch).reshape(-1).float()).cpu().numpy())
        return np.concatenate(out).astype(np.float32) if out else np.zeros(0, np.float32)


def load(path: Path, device: str = "cpu", batch_size: int = 32) -> TorchEngine:
    """The engine of a fiagen checkpoint (read with weights_only=True, its digest checked)."""
    from fiagen.train.checkpoint import load_detector

    model, info = load_detector(path, device=device)
    return TorchEngine(model, info, device, batch_size)
