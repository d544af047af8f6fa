"""Checkpoints: plain data (tensors, numbers, strings, lists, dicts), read with torch.load(weights_only=True).

Layout (format "fiagen.detector", version 2):
    info        {"size", "backbone", "weights" (the init), "train_data", "epoch", "step", "val_auc", "fiagen_version"}
    detector    Detector state dict (timm classifier "net.*", normalisation "mean"/"std")
    fpn         {"channels": int or None, "selection": kept channels per level or None, "state": FPN state dict}
    affs        AFFS selection with every channel's score, or None
    config      the resolved TrainConfig as a dict, or None
    card        the model card (fiagen.train.card); absent in files written before cards, whose card is then
                built from info and config (`card_of`)
    training    optimizer, scheduler, RNG states and counters for an exact resume (last.pt only), or None
    digest      sha256 over all of the above (`payload_digest`), checked on every read: a file changed
                after it was written is one error line, never silently loaded
Files are written whole or not at all (fiagen.core.files), so a killed run or a full disk never leaves half a
checkpoint.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path
from typing import Any

import torch

from fiagen.core.errors import FiagenError, message_line
from fiagen.core.files import load_plain, sha256_file, write_bytes
from fiagen.core.version import __version__
from fiagen.train.card import card_of, make_card
from fiagen.train.model import Detector, TrainNet, build_detector

FORMAT = "fiagen.detector"
VERSION = 2


class CheckpointError(FiagenError):
    """A checkpoint that is missing, unreadable, or not a fiagen detector."""


class CheckpointDamaged(CheckpointError):
    """A checkpoint whose contents no longer match the digest saved in it."""


def payload_digest(payload: Any) -> str:
    """sha256 over a checkpoint's contents: every tensor's dtype, shape and bytes, every other value's
    type and repr, dict entries in key order."""
    digest = hashlib.sha256()

    def feed(obj: Any) -> None:
        if isinstance(obj, torch.Tensor):
            t = obj.detach().cpu().contiguous()
            digest.update(f"T{t.dtype}{tuple(t.shape)}".encode())
            digest.update(t.reshape(-1).view(torch.uint8).numpy())
        elif isinstance(obj, dict):
            digest.update(b"{")
            for key in sorted(obj, key=repr):
                feed(key)
                feed(obj[key])
            digest.update(b"}")
        elif isinstance(obj, (list, tuple)):
            digest.update(b"[" if isinstance(obj, list) else b"(")
            for value in obj:
                feed(value)
            digest.update(b"]")
        else:
            digest.update(f"{type(obj).__name__}:{obj!r};".encode())

    feed(payload)
    return digest.hexdigest()


def _plain(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict on the CPU in the standard (NCHW-contiguous) layout, whatever memory format the model
    trained in, so that other tools (safetensors' save_file, say) take the tensors as they are."""
    return {k: v.detach().cpu().contiguous() for k, v in state.items()}


def save_checkpoint(path: str | Path, model: Detector | TrainNet, *, epoch: int = 0, step: int = 0,
                    val_auc: float | None = None, train_data: str = "none", affs: dict[str, Any] | None = None,
                    config: dict[str, Any] | None = None, training: dict[str, Any] | None = None,
                    facts: dict[str, Any] | None = None, threshold: dict[str, Any] | None = None) -> Path:
    """Write `model` (a Detector, or a TrainNet with its AFFS selection and FPN) to `path` atomically, with
    its model card (`facts`: the training data's `data_facts`; `threshold`: the validation's `choose_threshold`)."""
    net = model.module if hasattr(model, "module") else model  # a DDP wrapper
    detector = net.detector if isinstance(net, TrainNet) else net
    fpn = {"channels": None, "selection": None, "state": {}}
    if isinstance(net, TrainNet):
        fpn["selection"] = net.selection()
        if net.fpn is not None:
            fpn["channels"] = net.fpn.channels
            fpn["state"] = _plain(net.fpn.state_dict())
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "info": {"size": int(detector.size), "backbone": detector.backbone, "weights": detector.weights,
                 "train_data": str(train_data),
                 "epoch": int(epoch), "step": int(step), "val_auc": None if val_auc is None else float(val_auc),
                 "fiagen_version": __version__},
        "detector": _plain(detector.state_dict()),
        "fpn": fpn,
        "affs": affs,
        "config": config,
        "training": training,
    }
    payload["card"] = make_card(payload["info"], config, detector.mean.reshape(-1).tolist(),
                                detector.std.reshape(-1).tolist(), facts, threshold)
    payload["digest"] = payload_digest(payload)
    buffer = io.BytesIO()  # serialised in memory: a full disk is then a plain ENOSPC of the atomic write
    torch.save(payload, buffer)
    return write_bytes(path, buffer.getbuffer())


ZIP_MAGIC = b"PK\x03\x04"


def zip_damage(path: Path) -> str | None:
    """Why a torch file in zip format (what torch.save writes) is damaged, found before anything of it is
    unpickled: cut short (its zip directory cannot be read), or a record whose bytes fail the CRC-32
    written with it. None when it is intact, or not a zip file (a raw pickle: torch.load judges it)."""
    with open(path, "rb") as fh:
        if fh.read(4) != ZIP_MAGIC:
            return None
    try:
        with zipfile.ZipFile(path) as zf:
            for entry in zf.infolist():
                if entry.CRC == 0 and entry.file_size:  # saved without CRC-32s (torch's compute_crc32 off)
                    continue
                with zf.open(entry) as member:  # zipfile checks the CRC-32 at the end of each record
                    while member.read(1 << 20):
                        pass
    except zipfile.BadZipFile as err:
        if "CRC" in str(err):
            return f"its record {entry.filename.split('/')[-1]} does not match the CRC-32 saved with it"
        return "it is cut short or corrupted: its zip directory cannot be read"
    except (OSError, EOFError, ValueError) as err:  # a record cut short, a bad local header, ...
        return f"it is cut short or corrupted: {message_line(err)}"
    return None


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The raw checkpoint dict (weights_only=True), checked to be a fiagen detector: intact (its zip
    records' CRC-32s before anything is unpickled, then the digest saved in it), plain data."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint not found: {p}")
    with open(p, "rb") as fh:
        if fh.read(4) != ZIP_MAGIC:  # a raw pickle, a config file, ...: never unpickled
            raise CheckpointError(f"{p} is not a fiagen checkpoint (not torch's zip format; fiagen train writes "
                                  f"RUN/best.pt and RUN/last.pt)")
    damage = zip_damage(p)
    if damage is not None:
        raise CheckpointDamaged(f"{p} is damaged: {damage}; the file changed after it was written, or was not "
                                f"copied whole")
    try:
        data = load_plain(p)
    except Exception as err:  # noqa: BLE001 - a damaged file: RuntimeError, KeyError, struct.error, ...
        raise CheckpointError(f"cannot read checkpoint {p}: {message_line(err)}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{p} is not a fiagen detector checkpoint")
    if data.get("version") != VERSION:
        raise CheckpointError(f"{p} has checkpoint version {data.get('version')}, this fiagen reads {VERSION}")
    if data.pop("digest", None) != payload_digest(data):
        raise CheckpointDamaged(f"{p} is damaged: its contents do not match the digest saved in it (the file "
                                f"changed after it was written)")
    return data


def checkpoint_info(path: Path) -> dict[str, Any]:
    """The checkpoint's info (size, backbone, train_data, epoch, val_auc), its path and its file's sha256
    (what an evaluation is stamped with)."""
    info = dict(read_checkpoint(path)["info"])
    return {**info, "path": str(path), "sha256": sha256_file(path)}


def full_disk_advice(run: Path) -> str:
    """How to go on after a full disk stopped a run: where RUN/last.pt resumes from, or that nothing can."""
    try:
        info = read_checkpoint(run / "last.pt")["info"]
    except CheckpointError as err:
        return f"nothing to resume from ({err}); free some space and start again"
    return (f"{run / 'last.pt'} holds step {info['step']} (epoch {info['epoch']}) and metrics.csv every epoch up to "
            f"it; free some space and rerun with --resume")


def read_resume_checkpoint(run: Path) -> dict[str, Any]:
    """RUN/last.pt for --resume; when it is damaged, the error says whether RUN/best.pt can be used."""
    try:
        return read_checkpoint(run / "last.pt")
    except CheckpointDamaged as err:
        best = run / "best.pt"
        try:
            info = read_checkpoint(best)["info"]
            auc = "n/a" if info["val_auc"] is None else f"{info['val_auc']:.4f}"
            usable = (f"{best} (epoch {info['epoch']}, val AUC {auc}) is intact: evaluate it, but it holds no "
                      f"optimizer state to resume from")
        except CheckpointError as best_err:
            usable = f"no earlier save is intact ({best_err})" if best.exists() else f"there is no {best}"
        raise CheckpointDamaged(f"--resume: {err}; {usable}; start again with another --run") from None


def detector_from(data: dict[str, Any]) -> Detector:
    """The Detector of a checkpoint dict (random init, then its weights; nothing downloads)."""
    info = data["info"]
    detector = build_detector(info["backbone"], info["size"])
    detector.init["weights"] = info.get("weights", "none")
    try:
        detector.load_state_dict(data["detector"])
    except RuntimeError as err:
        raise CheckpointError(f"checkpoint weights do not fit {info['backbone']}: {message_line(err)}") from None
    return detector


def train_net_from(data: dict[str, Any]) -> TrainNet:
    """The TrainNet (detector, AFFS selection, FPN) of a checkpoint dict."""
    fpn = data["fpn"]
    net = TrainNet(detector_from(data), fpn["selection"], fpn["channels"])
    if net.fpn is not None:
        net.fpn.load_state_dict(fpn["state"])
    return net


def load_detector(path: str | Path, device: str | torch.device = "cpu") -> tuple[Detector, dict[str, Any]]:
    """(Detector in eval mode on `device`, info with its model card as "card") from a checkpoint;
    model(x in [0,1]) -> logits (B,).

    The detector is in channels_last memory format (about 2x faster EfficientNet inference on CPU; the
    weights and scores are the same up to float rounding)."""
    data = read_checkpoint(path)
    detector = detector_from(data).to(device, memory_format=torch.channels_last).eval()
    return detector, {**data["info"], "path": str(path), "card": card_of(data)}
