"""The detector (timm backbone + classification head) and its training-time extension (AFFS + FPN).

Inference uses `Detector` alone: ImageNet-style normalisation inside, the whole timm classifier with one
output (the logit of "fake"). Training wraps it in `TrainNet`, which also reads the backbone's last four
feature levels (strides 4..32 on CNNs, "stages 2..5" in the paper), keeps the AFFS-selected channels
of each, and runs an FPN whose highest-resolution map feeds the RCR losses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import timm
import torch
import torch.nn.functional as F
from torch import nn

from fiagen.train.pretrained import ModelError, imagenet_classifier, load_by_name, resolve_init

PYRAMID_LEVELS = 4


def default_fpn_channels(backbone: str) -> int:
    """FPN width [paper appendix D]: 196 for ResNets, 128 for EfficientNets and everything else."""
    return 196 if "resnet" in backbone.lower() or "resnext" in backbone.lower() else 128


class Detector(nn.Module):
    """A timm classifier with one output; `forward(x in [0,1], (B,3,S,S)) -> logits (B,)`."""

    def __init__(self, net: nn.Module, backbone: str, size: int, init: dict[str, Any] | None = None):
        super().__init__()
        self.net = net
        self.backbone = backbone
        self.size = size
        # what the backbone started from: arch, source, weights (a timm tag, a wheel, a file, "none"), tensors_loaded
        self.init: dict[str, Any] = init or {"arch": backbone, "source": "none", "weights": "none", "tensors_loaded": 0}
        cfg = getattr(net, "pretrained_cfg", None) or {}
        mean = cfg.get("mean", timm.data.IMAGENET_DEFAULT_MEAN)
        std = cfg.get("std", timm.data.IMAGENET_DEFAULT_STD)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))
        info = net.feature_info[-PYRAMID_LEVELS:]
        self.stage_indices = [len(net.feature_info) - len(info) + i for i in range(len(info))]
        self.stage_channels = [int(f["num_chs"]) for f in info]

    @property
    def weights(self) -> str:
        """The init's weights (what checkpoints and evaluation stamps name)."""
        return self.init["weights"]

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalise(x)).squeeze(1)

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(last backbone features for the head, the four pyramid-level maps, finest first)."""
        return self.net.forward_intermediates(self.normalise(x), indices=self.stage_indices)

    def head(self, final: torch.Tensor) -> torch.Tensor:
        return self.net.forward_head(final).squeeze(1)


class FPN(nn.Module):
    """Top-down feature pyramid (Lin et al. 2017, nearest upsampling) returning its finest output map.

    Only the finest level feeds RCR, so only its 3x3 output conv exists: the coarser outputs would cost
    compute and leave parameters without gradients under DDP. That conv is depthwise-separable, as in
    EfficientDet's BiFPN over EfficientNets: a dense 3x3 at stride 4 costs more than a whole
    EfficientNet-B0 forward pass, the separable one about a tenth of it.
    """

    def __init__(self, in_channels: Sequence[int], channels: int):
        super().__init__()
        self.channels = channels
        self.lateral = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in in_channels)
        self.smooth = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False),
                                    nn.Conv2d(channels, channels, 1))

    def forward(self, maps: Sequence[torch.Tensor]) -> torch.Tensor:
        top = self.lateral[-1](maps[-1])
        for lateral, fmap in zip(reversed(self.lateral[:-1]), reversed(maps[:-1]), strict=False):
            top = lateral(fmap) + F.interpolate(top, size=fmap.shape[-2:], mode="nearest")
        return self.smooth(top)


class TrainNet(nn.Module):
    """Detector + AFFS channel selection + FPN; `forward(x) -> (logits (B,), finest FPN map or None)`."""

    def __init__(self, detector: Detector, selection: Sequence[Sequence[int]] | None = None,
                 fpn_channels: int | None = None):
        super().__init__()
        self.detector = detector
        self.fpn: FPN | None = None
        self.selected = selection is not None
        widths = list(detector.stage_channels)
        if selection is not None:
            if len(selection) != len(widths):
                raise ModelError(f"AFFS selection has {len(selection)} stages, the backbone {len(widths)}")
            for i, (idx, width) in enumerate(zip(selection, widths, strict=False)):
                if not idx or min(idx) < 0 or max(idx) >= width:
                    raise ModelError(f"AFFS selection of stage {i} does not fit its {width} channels")
                self.register_buffer(f"keep{i}", torch.as_tensor(list(idx), dtype=torch.long))
            widths = [len(idx) for idx in selection]
        if fpn_channels:
            self.fpn = FPN(widths, fpn_channels)

    def selection(self) -> list[list[int]] | None:
        """The kept channel indices per pyramid level (None: every channel)."""
        if not self.selected:
            return None
        return [getattr(self, f"keep{i}").tolist() for i in range(len(self.detector.stage_channels))]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.fpn is None:
            return self.detector(x), None
        final, maps = self.detector.features(x)
        if self.selected:
            maps = [m.index_select(1, getattr(self, f"keep{i}")) for i, m in enumerate(maps)]
        return self.detector.head(final), self.fpn(maps)


def build_detector(backbone: str, size: int, pretrained: str | None = None, drop_rate: float = 0.0,
                   drop_path_rate: float = 0.0) -> Detector:
    """A Detector from a timm name; `pretrained`: None/"none" (random init), "auto", "timm" or a file path
    (see `fiagen.train.pretrained`). `detector.init` says what was used and how many tensors were loaded."""
    init = resolve_init(backbone, pretrained)
    kwargs: dict[str, Any] = {"drop_rate": drop_rate, **({"drop_path_rate": drop_path_rate} if drop_path_rate else {})}
    try:
        if init.source in ("timm", "wheel"):
            net, loaded = imagenet_classifier(init, **kwargs)
            net.reset_classifier(1)
        else:
            net, loaded = timm.create_model(init.arch, num_classes=1, **kwargs), 0
    except RuntimeError as err:
        if "Unknown model" in str(err):
            raise ModelError(f"timm does not know the model {backbone!r}") from None
        raise
    if not hasattr(net, "forward_intermediates"):
        raise ModelError(f"timm model {backbone!r} has no forward_intermediates (no feature pyramid)")
    head = net.get_classifier()
    if isinstance(head, nn.Linear):  # a new 1-logit head starts at 0: no huge first logits at high lr
        nn.init.zeros_(head.weight)
        nn.init.zeros_(head.bias)
    if init.source == "file":
        loaded = load_by_name(net, init.weights)
    return Detector(net, init.arch, size, {**init.to_dict(), "tensors_loaded": loaded})
