"""GradCAM (Selvaraju et al. 2017) on the evaluation crops, with plain torch hooks.

pytorch-grad-cam is not used: installing it pulls opencv-python-headless and numpy 2, which break
mediapipe. The target layer is the last module that runs in the forward pass with a spatial output
larger than 1x1, i.e. the final feature map before global pooling (timm EfficientNet: `bn2` after
`conv_head`; ResNet: `layer4`), or the module named by `layer`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fiagen.core.errors import FiagenError
from fiagen.core.media import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from fiagen.evaluate.plots import cam_plot
from fiagen.evaluate.scoring import video_crops
from fiagen.manifests.suites.listing import EvalItem
from fiagen.precompute.faces import FaceLandmarker


class ExplainError(FiagenError):
    """An input that cannot be explained (missing, unreadable, no face) or an unknown layer."""


@dataclass
class CamResult:
    """Per crop: the class-activation map in [0, 1] at crop size, P(fake), and the layer used."""

    cams: np.ndarray
    probs: np.ndarray
    layer: str


def gradcam(model: nn.Module, x: torch.Tensor, layer: str | None = None) -> CamResult:
    """GradCAM of the "fake" logit for a batch x (B, 3, S, S) in [0, 1]."""
    modules = dict(model.named_modules())
    if layer is not None and layer not in modules:
        convs = [n for n, m in modules.items() if isinstance(m, nn.Conv2d)][-5:]
        raise ExplainError(f"model has no layer {layer!r}; the last convolutions are {', '.join(convs)}")
    watched = {layer: modules[layer]} if layer else {n: m for n, m in modules.items() if n}
    seen: list[tuple[str, torch.Tensor]] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out, name=name: seen.append((name, out)))
             for name, m in watched.items()]
    try:
        with torch.enable_grad():
            logits = model(x).reshape(-1)
            spatial = [(n, a) for n, a in seen
                       if isinstance(a, torch.Tensor) and a.dim() == 4 and a.shape[-1] > 1 and a.shape[-2] > 1]
            if not spatial:
                raise ExplainError(f"no module with a spatial output ran in the forward pass"
                                   f"{f' at {layer}' if layer else ''}")
            name, act = spatial[-1]
            (grad,) = torch.autograd.grad(logits.sum(), act)
    finally:
        for h in hooks:
            h.remove()
    weights = grad.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * act).sum(dim=1, keepdim=True))
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    flat = cam.flatten(1)
    lo, hi = flat.min(1).values[:, None, None], flat.max(1).values[:, None, None]
    cam = (cam - lo) / (hi - lo).clamp_min(1e-8)
    return CamResult(cam.detach().cpu().numpy(), torch.sigmoid(logits).detach().cpu().numpy(), name)


def explain(ckpt: str | Path, source: str | Path, out: str | Path, frames: int = 8, layer: str | None = None,
            min_face_score: float = 0.5, device: str | None = None) -> dict[str, Any]:
    """GradCAM overlays for every face of `frames` sampled frames of a video (or of one image), on
    `device` (default: CUDA when available, else CPU).

    Writes OUT/<stem>_f<frame>_k<face>.png (crop | overlay with a colour bar, titled with the file, frame,
    face and P(fake); fiagen.evaluate.plots.cam_plot) and OUT/explain.json; returns that record.
    """
    from fiagen.train.checkpoint import load_detector

    path = Path(source)
    if not path.exists():
        raise ExplainError(f"--input {path}: no such file")
    if not path.is_file() or path.suffix.lower() not in VIDEO_SUFFIXES | IMAGE_SUFFIXES:
        raise ExplainError(f"{path} is not a video ({', '.join(sorted(VIDEO_SUFFIXES))}) or image file")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model, info = load_detector(ckpt, device=device)
    with FaceLandmarker(min_face_score) as faces:
        res = video_crops(EvalItem(path.stem, path, -1, ""), frames, int(info["size"]), faces)
    if res.failure:
        raise ExplainError(f"{path}: {res.failure}")
    if not len(res.crops):
        raise ExplainError(f"{path}: no face found in {res.frames_sampled} sampled frames")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(0, len(res.crops), 16):
        batch = torch.from_numpy(res.crops[i:i + 16]).to(device).permute(0, 3, 1, 2).float().div(255.0)
        cam = gradcam(model, batch, layer)
        for j in range(len(batch)):
            k = i + j
            name = f"{path.stem}_f{int(res.frame[k]):05d}_k{int(res.face[k])}.png"
            cam_plot(res.crops[k], cam.cams[j], f"{path.name}  frame {int(res.frame[k])}  face {int(res.face[k])}  "
                     f"P(fake) = {float(cam.probs[j]):.3f}", out / name)
            records.append({"file": name, "frame": int(res.frame[k]), "face": int(res.face[k]),
                            "box": [float(v) for v in res.boxes[k]], "score": float(cam.probs[j]),
                            "layer": cam.layer})
    per_frame = {}
    for r in records:
        per_frame[r["frame"]] = max(per_frame.get(r["frame"], 0.0), r["score"])
    record = {"input": str(path), "checkpoint": str(ckpt), "frames_sampled": res.frames_sampled,
              "video_score": float(np.mean(list(per_frame.values()))), "crops": records}
    (out / "explain.json").write_text(json.dumps(record, indent=2) + "\n")
    return record
