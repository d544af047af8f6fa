"""Checkpoints: plain data (tensors, numbers, strings, lists, dicts), read with torch.load(weights_only=True).

Layout (format "fiagen.detector", version 1):
    info        {"size", "backbone", "train_data", "epoch", "step", "val_auc", "fiagen_version"}
    detector    Detector state dict (timm classifier "net.*", normalisation "mean"/"std")
    fpn         {"channels": int or None, "selection": kept channels per level or None, "state": FPN state dict}
    affs        AFFS selection with every channel's score, or None
    config      the resolved TrainConfig as a dict, or None
    training    optimizer, scheduler, RNG states and counters for an exact resume (last.pt only), or None
Files are written to a temporary name and renamed, so a killed run never leaves half a checkpoint.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from fiagen import __version__
from fiagen.errors import FiagenError
from fiagen.train.model import Detector, TrainNet, build_detector

FORMAT = "fiagen.detector"
VERSION = 1


class CheckpointError(FiagenError):
    """A checkpoint that is missing, unreadable, or not a fiagen detector."""


def save_checkpoint(path: str | Path, model: Detector | TrainNet, *, epoch: int = 0, step: int = 0,
                    val_auc: float | None = None, train_data: str = "none", affs: dict[str, Any] | None = None,
                    config: dict[str, Any] | None = None, training: dict[str, Any] | None = None) -> Path:
    """Write `model` (a Detector, or a TrainNet with its AFFS selection and FPN) to `path` atomically."""
    net = model.module if hasattr(model, "module") else model  # a DDP wrapper
    detector = net.detector if isinstance(net, TrainNet) else net
    fpn = {"channels": None, "selection": None, "state": {}}
    if isinstance(net, TrainNet):
        fpn["selection"] = net.selection()
        if net.fpn is not None:
            fpn["channels"] = net.fpn.channels
            fpn["state"] = {k: v.detach().cpu() for k, v in net.fpn.state_dict().items()}
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "info": {"size": int(detector.size), "backbone": detector.backbone, "train_data": str(train_data),
                 "epoch": int(epoch), "step": int(step), "val_auc": None if val_auc is None else float(val_auc),
                 "fiagen_version": __version__},
        "detector": {k: v.detach().cpu() for k, v in detector.state_dict().items()},
        "fpn": fpn,
        "affs": affs,
        "config": config,
        "training": training,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The raw checkpoint dict (weights_only=True), checked to be a fiagen detector."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint not found: {p}")
    try:
        data = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file is one user error
        raise CheckpointError(f"cannot read checkpoint {p}: {type(err).__name__}: {err}".splitlines()[0]) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{p} is not a fiagen detector checkpoint")
    if data.get("version") != VERSION:
        raise CheckpointError(f"{p} has checkpoint version {data.get('version')}, this fiagen reads {VERSION}")
    return data


def detector_from(data: dict[str, Any]) -> Detector:
    """The Detector of a checkpoint dict (random init, then its weights; nothing downloads)."""
    info = data["info"]
    detector = build_detector(info["backbone"], info["size"])
    try:
        detector.load_state_dict(data["detector"])
    except RuntimeError as err:
        raise CheckpointError(f"checkpoint weights do not fit {info['backbone']}: {str(err).splitlines()[0]}") from None
    return detector


def train_net_from(data: dict[str, Any]) -> TrainNet:
    """The TrainNet (detector, AFFS selection, FPN) of a checkpoint dict."""
    fpn = data["fpn"]
    net = TrainNet(detector_from(data), fpn["selection"], fpn["channels"])
    if net.fpn is not None:
        net.fpn.load_state_dict(fpn["state"])
    return net


def load_detector(path: str | Path, device: str | torch.device = "cpu") -> tuple[Detector, dict[str, Any]]:
    """(Detector in eval mode on `device`, info) from a checkpoint; model(x in [0,1]) -> logits (B,)."""
    data = read_checkpoint(path)
    detector = detector_from(data).to(device).eval()
    return detector, {**data["info"], "path": str(path)}
