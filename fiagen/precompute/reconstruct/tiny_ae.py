"""TAESD-family tiny autoencoders in their upstream checkpoint format: `--ae taef2` (shipped) and
`--ae taesd:PATH` where PATH holds `*_encoder.pth` + `*_decoder.pth` (the plain state dicts that the
madebyollin/taesd repository publishes and ComfyUI's `models/vae_approx/` and A1111 read).

The architecture, written from the upstream description: 3x3 convs with ReLU residual blocks (three
convs, 1x1 skip where channels change), 64 channels, three stride-2 convs down and three nearest 2x
up-samples; the decoder starts with a soft clamp tanh(x/3)*3; images in [0, 1]. FLUX.2's TAEF2 adds
to the three deepest blocks of each half a mid-block branch x + conv1x1(ReLU(GroupNorm(4, 256)(conv1x1(x)))).
The layout (LAYOUTS) is read from the state dicts' shapes, never from the file names; the two halves
must be of one layout, and load with strict=True.

AE(I) = decode(encode(I)) (latents not quantised), the crop edge-padded to a multiple of 8 and
cropped back; on CUDA fp16 (redone in fp32 when it overflows), channels_last, CUDA_BATCH crops at a time.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fiagen.core.errors import first_line
from fiagen.core.files import sha256_file
from fiagen.precompute.reconstruct.base import (
    DIGEST_CHARS,
    Reconstructor,
    ReconstructorError,
    batch_size_for,
    pad_to_multiple,
    pinned_files,
)

WIDTH = 64  # channels of every block
FACTOR = 8  # spatial down-sampling of the latent
ENCODER, DECODER = "_encoder.pth", "_decoder.pth"
SHIPPED = files("fiagen.precompute.reconstruct") / "weights" / "taef2"
# the shipped TAEF2 files (madebyollin/taesd @ 5cccb12dc72074a4be35680c3b108548a7c69978), checked on every use
PINNED = {"taef2_encoder.pth": "10a4e1021e89d7551eaf161352da8dbd0b1aa83872ae28b150c1df1ce2f147b6",
          "taef2_decoder.pth": "0a44a31e1ae59eb9dbf9359d24942fd3ef5928162c1800d97a28c61d51be0ab5"}


@dataclass(frozen=True)
class Layout:
    """One architecture of the family: what the state dict's shapes say, and what the id calls it."""

    name: str
    latent: int
    midblock: bool
    text: str


LAYOUTS = (Layout("taesd-4ch", 4, False, "TAESD or TAESDXL (4 latent channels)"),
           Layout("taesd-16ch", 16, False, "TAESD3 or TAEF1 (16 latent channels)"),
           Layout("taef2", 32, True, "TAEF2 (32 latent channels, mid-block GroupNorm)"))


def _conv(n_in: int, n_out: int, **kwargs: Any) -> nn.Conv2d:
    return nn.Conv2d(n_in, n_out, 3, padding=1, **kwargs)


class Clamp(nn.Module):
    """The decoder's soft clamp of the latent: tanh(x / 3) * 3."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x / 3) * 3


class Block(nn.Module):
    """conv-ReLU-conv-ReLU-conv plus the input, then ReLU; with `midblock`, x + pool(x) first."""

    def __init__(self, n_in: int, n_out: int, midblock: bool = False) -> None:
        super().__init__()
        self.conv = nn.Sequential(_conv(n_in, n_out), nn.ReLU(), _conv(n_out, n_out), nn.ReLU(), _conv(n_out, n_out))
        self.skip = nn.Conv2d(n_in, n_out, 1, bias=False) if n_in != n_out else nn.Identity()
        self.fuse = nn.ReLU()
        self.pool = None
        if midblock:
            wide = 4 * n_in
            self.pool = nn.Sequential(nn.Conv2d(n_in, wide, 1, bias=False), nn.GroupNorm(4, wide), nn.ReLU(),
                                      nn.Conv2d(wide, n_in, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool is not None:
            x = x + self.pool(x)
        return self.fuse(self.conv(x) + self.skip(x))


def encoder(layout: Layout) -> nn.Sequential:
    """Image in [0, 1] -> latent at 1/8: conv, block, then three times (stride-2 conv, three blocks)."""
    def stage(midblock: bool) -> list[nn.Module]:
        return [_conv(WIDTH, WIDTH, stride=2, bias=False), *(Block(WIDTH, WIDTH, midblock) for _ in range(3))]

    return nn.Sequential(_conv(3, WIDTH), Block(WIDTH, WIDTH), *stage(False), *stage(False), *stage(layout.midblock),
                         _conv(WIDTH, layout.latent))


def decoder(layout: Layout) -> nn.Sequential:
    """Latent -> image in [0, 1]: clamp, conv, then three times (three blocks, 2x nearest up, conv), block, conv."""
    def stage(midblock: bool) -> list[nn.Module]:
        return [*(Block(WIDTH, WIDTH, midblock) for _ in range(3)), nn.Upsample(scale_factor=2),
                _conv(WIDTH, WIDTH, bias=False)]

    return nn.Sequential(Clamp(), _conv(layout.latent, WIDTH), nn.ReLU(), *stage(layout.midblock), *stage(False),
                         *stage(False), Block(WIDTH, WIDTH), _conv(WIDTH, 3))


HALVES = {"encoder": (encoder, "14.weight", 0, "11.pool.0.weight"),  # (builder, latent conv, its latent axis, a
          "decoder": (decoder, "1.weight", 1, "3.pool.0.weight")}    # mid-block key)


def read_state(path: Path, what: str) -> dict[str, torch.Tensor]:
    """A plain state dict from a .pth file (weights_only); one error line otherwise."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file is one line
        raise ReconstructorError(f"{what}: cannot read {path} as a PyTorch state dict ({first_line(err)})") from err
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ReconstructorError(f"{what}: {path} is not a plain state dict of tensors")
    return state


def load_half(state: dict[str, torch.Tensor], half: str, what: str) -> tuple[nn.Sequential, Layout]:
    """The encoder or decoder of a state dict, its layout found from its shapes, loaded with strict=True."""
    build, latent_key, axis, mid_key = HALVES[half]
    shape = tuple(state[latent_key].shape) if latent_key in state else ()
    latent = shape[axis] if len(shape) == 4 else None
    match = [lay for lay in LAYOUTS if lay.latent == latent and lay.midblock == (mid_key in state)]
    if not match:
        known = "; ".join(lay.text for lay in LAYOUTS)
        raise ReconstructorError(f"{what}: not a TAESD-family {half} of a known layout ({len(state)} tensors, "
                                 f"{latent_key} {shape or 'missing'}; known: {known})")
    net = build(match[0])
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ReconstructorError(f"{what}: not a {match[0].text} {half}: {first_line(err)}") from err
    return net.float().eval(), match[0]


def load_pair(encoder_path: Path, decoder_path: Path, what: str) -> tuple[nn.Sequential, nn.Sequential, Layout]:
    """Both halves, checked to be of one layout."""
    enc, enc_layout = load_half(read_state(encoder_path, what), "encoder", f"{what} ({encoder_path.name})")
    dec, dec_layout = load_half(read_state(decoder_path, what), "decoder", f"{what} ({decoder_path.name})")
    if enc_layout != dec_layout:
        raise ReconstructorError(f"{what}: the encoder {encoder_path.name} is {enc_layout.text} but the decoder "
                                 f"{decoder_path.name} is {dec_layout.text}: a pair must be of one family")
    return enc, dec, enc_layout


def is_checkpoint_target(target: str) -> bool:
    """Whether a `taesd:` target names upstream checkpoints (a .pth file, ENC,DEC, or a folder without a
    diffusers config.json) rather than a diffusers folder or a hub id."""
    path = Path(target).expanduser()
    if path.is_dir():
        return not any((folder / "config.json").is_file() for folder in (path, path / "vae"))
    return path.is_file() or target.endswith(".pth") or (target.count(",") == 1 and not path.exists())


def _pair_in(target: str, what: str) -> tuple[Path, Path]:
    """(encoder file, decoder file) of a folder with one pair, one file of a pair, or ENC,DEC."""
    path = Path(target).expanduser().absolute()
    if path.is_dir():
        encoders = sorted(path.glob(f"*{ENCODER}"))
        if not encoders:
            raise ReconstructorError(f"{what}: {path} holds neither a diffusers AutoencoderTiny (config.json) nor "
                                     f"TAESD checkpoints (*{ENCODER} + *{DECODER})")
        if len(encoders) > 1:
            raise ReconstructorError(f"{what}: {path} holds {len(encoders)} TAESD encoders "
                                     f"({', '.join(p.name for p in encoders)}); name one file of the pair instead")
        pair = encoders[0], encoders[0].with_name(encoders[0].name[:-len(ENCODER)] + DECODER)
    elif path.is_file() and path.name.endswith((ENCODER, DECODER)):
        stem = path.name[:-len(ENCODER if path.name.endswith(ENCODER) else DECODER)]
        pair = path.with_name(stem + ENCODER), path.with_name(stem + DECODER)
    elif path.is_file():
        raise ReconstructorError(f"{what}: a checkpoint file must be named *{ENCODER} or *{DECODER} (its partner is "
                                 f"found by the name), or pass ENCODER,DECODER")
    else:
        pair = tuple(Path(p).expanduser().absolute() for p in target.split(","))
    missing = [str(p) for p in pair if not p.is_file()]
    if missing:
        raise ReconstructorError(f"{what}: no such file {', '.join(missing)}")
    return pair


def pair_digest(encoder_path: Path, decoder_path: Path) -> str:
    """sha256 of the two files' sha256 hex digests, encoder first."""
    return hashlib.sha256(f"{sha256_file(encoder_path)}{sha256_file(decoder_path)}".encode()).hexdigest()


def shipped_pair() -> tuple[Path, Path]:
    """The TAEF2 files shipped with fiagen, checked against their pinned sha256."""
    encoder_path, decoder_path = pinned_files(SHIPPED, tuple(PINNED.items()), "--ae taef2",
                                              "fiagen's package data (weights/taef2)", "reinstall fiagen")
    return encoder_path, decoder_path


def locate_checkpoints(family: str, target: str) -> tuple[str, str, str, str]:
    """(encoder path, decoder path, sha256 of the pair, name) of `--ae taef2` or `--ae taesd:PATH` in the
    upstream format, both halves loaded once here so that a bad pair is one line before any video is read."""
    what = f"--ae {family}:{target}" if target else f"--ae {family}"
    enc_path, dec_path = shipped_pair() if family == "taef2" else _pair_in(target, what)
    load_pair(enc_path, dec_path, what)
    name = enc_path.name[:-len(ENCODER)] if enc_path.name.endswith(ENCODER) else enc_path.stem
    return str(enc_path), str(dec_path), pair_digest(enc_path, dec_path), name


class TinyAeReconstructor(Reconstructor):
    """AE(I) through a TAESD-family encoder/decoder pair (see the module docstring); id
    `LAYOUT:NAME@SHA12`, e.g. `taef2:taef2@…` (sha of the pair, pair_digest)."""

    kind = "ae"

    def __init__(self, encoder_path: str, decoder_path: str, digest: str, name: str,
                 device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        enc, dec, self.layout = load_pair(Path(encoder_path), Path(decoder_path), f"--ae {name}")
        self.net = nn.Sequential(enc, dec).to(self.device)
        self.half = None
        if self.device.type == "cuda":
            self.net = self.net.to(memory_format=torch.channels_last)
            self.half = copy.deepcopy(self.net).half()
        self.batch_size = batch_size_for(self.device)
        self.factor = FACTOR
        self.id = f"{self.layout.name}:{name}@{digest[:DIGEST_CHARS]}"

    def _roundtrip(self, net: nn.Module, x: torch.Tensor) -> torch.Tensor:
        x = x.to(next(net.parameters()).dtype)
        if self.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        return net(x)

    def reconstruct_tensor(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        padded = pad_to_multiple(x, self.factor)
        y = self._roundtrip(self.half, padded) if self.half is not None else None
        if y is None or not torch.isfinite(y).all():
            y = self._roundtrip(self.net, padded)
        return y.float()[..., :h, :w]
