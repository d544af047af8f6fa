"""Reconstructors without Ray: the --ae/--sr specs, the interface contract, the builtin nets, the
diffusers AutoencoderKL and spandrel paths on weights the tests create, per-frame failure records."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from skimage import data as skdata

from fiagen.precompute.extract import VideoResult
from fiagen.precompute.inspect import side_by_side
from fiagen.precompute.reconstruct import load_reconstructor, parse_spec, resolve_spec
from fiagen.precompute.reconstruct.base import (
    Reconstructor,
    ReconstructorError,
    downscale,
    pad_to_multiple,
    super_resolve,
    to_tensor,
    to_uint8,
    weights_digest,
)
from fiagen.precompute.reconstruct.builtin import BuiltinReconstructor, build_net, load_builtin, save_builtin
from fiagen.precompute.reconstruct.sd_vae import SdVaeReconstructor
from fiagen.precompute.reconstruct.stage import reconstruct_video
from fiagen.precompute.shards import FrameRecord, sha256_file


def _images() -> list[np.ndarray]:
    """Real-photo crops of awkward sizes (odd, not multiples of 4 or 8)."""
    astro = skdata.astronaut()
    return [astro[20:121, 170:247].copy(), astro[0:96, 0:96].copy(), astro[100:163, 200:250].copy()]


def _seeded(make, seed: int = 0):
    """Build a module whose library init draws from torch's global RNG without touching the caller's RNG."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return make()


# ---- specs ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, kind, family, target", [
    ("none", "ae", "none", ""), ("builtin", "sr", "builtin", ""), ("sd-vae:org/vae", "ae", "sd-vae", "org/vae"),
    ("spandrel:/w/x4.pth", "sr", "spandrel", "/w/x4.pth"),
])
def test_parse_spec_accepts(value: str, kind: str, family: str, target: str) -> None:
    spec = parse_spec(value, kind)
    assert (spec.family, spec.target, spec.text) == (family, target, value)


@pytest.mark.parametrize("value, kind", [
    ("vqgan:foo", "ae"), ("sd-vae:", "ae"), ("builtin:x", "sr"), ("spandrel:x.pth", "ae"), ("sd-vae:a/b", "sr"),
    ("", "ae"),
])
def test_parse_spec_rejects_in_one_line(value: str, kind: str) -> None:
    with pytest.raises(ReconstructorError) as err:
        parse_spec(value, kind)
    assert len(str(err.value).splitlines()) == 1 and f"--{kind}" in str(err.value)


def test_missing_and_malformed_weights_are_one_line(tmp_path: Path) -> None:
    cases = {
        "spandrel:" + str(tmp_path / "nope.pth"): "no such file",
        "sd-vae:" + str(tmp_path / "nope"): "no such folder",
        "sd-vae:./relative/vae": "no such folder",
    }
    (tmp_path / "notes.txt").write_text("x")
    cases["spandrel:" + str(tmp_path / "notes.txt")] = "expected a .pth"
    (tmp_path / "empty_dir").mkdir()
    cases["sd-vae:" + str(tmp_path / "empty_dir")] = "not a diffusers AutoencoderKL folder"
    torch.save({"foo.weight": torch.zeros(3, 3)}, tmp_path / "other.pth")
    cases["spandrel:" + str(tmp_path / "other.pth")] = "recognises no architecture"
    torch.save({"model": torch.nn.Linear(2, 2)}, tmp_path / "pickled_module.pth")  # code, not data
    cases["spandrel:" + str(tmp_path / "pickled_module.pth")] = "cannot read"
    for value, words in cases.items():
        kind = "ae" if value.startswith("sd-vae") else "sr"
        with pytest.raises(ReconstructorError) as err:
            resolve_spec(parse_spec(value, kind))
        assert words in str(err.value) and len(str(err.value).splitlines()) == 1, (value, str(err.value))


# ---- interface helpers -----------------------------------------------------------------------------------

def test_super_resolve_pads_downscales_and_crops_back() -> None:
    x = to_tensor(_images()[0], torch.device("cpu"))  # 101 x 77
    seen = []

    def upscale(lr: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(lr.shape[-2:]))
        return F.interpolate(lr, scale_factor=4, mode="nearest")

    y = super_resolve(x, 4, upscale)
    assert seen == [(26, 20)]  # ceil(101 / 4), ceil(77 / 4)
    assert y.shape == x.shape
    lr = downscale(pad_to_multiple(x, 4), 4)
    assert torch.equal(y[0, :, 5, 9], lr[0, :, 1, 2])  # nearest x4: HR pixel (5, 9) comes from LR (1, 2)


def test_weights_digest_names_the_values() -> None:
    a = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.zeros(2)}
    same = {"b": torch.zeros(2), "w": torch.arange(6.0).reshape(2, 3)}
    changed = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.tensor([0.0, 1e-7])}
    assert weights_digest(a) == weights_digest(same) != weights_digest(changed)
    assert weights_digest(a) != weights_digest({"w": a["w"].reshape(3, 2), "b": a["b"]})


# ---- builtin nets ------------------------------------------------------------------------------------------

def test_builtin_same_weights_same_bytes_and_batch_independent(tmp_path: Path) -> None:
    images = _images()
    for kind in ("ae", "sr"):
        net = build_net(kind, torch.Generator().manual_seed(3))
        rec = BuiltinReconstructor(kind, net)
        out = rec(images)
        assert [o.shape for o in out] == [i.shape for i in images]
        assert all(o.dtype == np.uint8 for o in out)
        save_builtin(tmp_path, kind, net, {"id": rec.id})
        loaded = load_builtin(tmp_path, kind)
        assert loaded.id == rec.id and loaded.id.startswith(f"builtin-{kind}:")
        again = loaded(images[::-1])[::-1]  # fresh object, other batch order
        assert all(a.tobytes() == b.tobytes() for a, b in zip(out, again, strict=False))
        other_net = build_net(kind, torch.Generator().manual_seed(3))
        with torch.no_grad():
            list(other_net.parameters())[-2].add_(0.05)  # the last conv's weights
        other = BuiltinReconstructor(kind, other_net)
        assert other.id != rec.id and other(images[:1])[0].tobytes() != out[0].tobytes()


def test_builtin_sr_starts_as_bicubic() -> None:
    """The SR's residual branch starts at zero, so an unfit builtin SR is exactly the bicubic reference."""
    image = _images()[1]
    rec = BuiltinReconstructor("sr", build_net("sr", torch.Generator().manual_seed(0)))
    x = to_tensor(image, torch.device("cpu"))
    bicubic = F.interpolate(downscale(x, 4), scale_factor=4, mode="bicubic", align_corners=False)
    assert np.abs(rec([image])[0].astype(int) - to_uint8(bicubic).astype(int)).max() <= 1


def test_load_builtin_refuses_weights_its_record_does_not_name(tmp_path: Path) -> None:
    net = build_net("ae", torch.Generator().manual_seed(0))
    save_builtin(tmp_path, "ae", net, {"id": "builtin-ae:000000000000"})
    with pytest.raises(ReconstructorError, match="not the model its record names"):
        load_builtin(tmp_path, "ae")
    with pytest.raises(ReconstructorError, match="no fitted builtin sr"):
        load_builtin(tmp_path, "sr")


# ---- diffusers AutoencoderKL -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_vae(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 4-level AutoencoderKL (down-sampling factor 8, as SD's) saved as a pipeline folder with vae/."""
    from diffusers import AutoencoderKL

    root = tmp_path_factory.mktemp("tiny_pipeline")
    vae = _seeded(lambda: AutoencoderKL(block_out_channels=(8, 8, 16, 16), down_block_types=("DownEncoderBlock2D",) * 4,
                                        up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=4, latent_channels=4,
                                        layers_per_block=1, sample_size=32))
    vae.save_pretrained(root / "vae")
    return root


def test_sd_vae_roundtrip_matches_diffusers(tiny_vae: Path) -> None:
    spec = resolve_spec(parse_spec(f"sd-vae:{tiny_vae}", "ae"))
    assert spec.path == str(tiny_vae / "vae")  # a pipeline folder's vae/ is found
    rec = load_reconstructor(spec, tiny_vae)
    assert isinstance(rec, SdVaeReconstructor) and rec.factor == 8
    assert rec.id == f"sd-vae:{tiny_vae.name}@{spec.digest[:12]}"
    images = _images()
    out = rec(images)
    assert [o.shape for o in out] == [i.shape for i in images]
    assert all(a.tobytes() == b.tobytes() for a, b in zip(out, rec(images), strict=False))
    # the same computation spelled out with diffusers: [-1, 1], edge-pad to 104 x 80, encode, mode, decode, crop
    x = to_tensor(images[0], torch.device("cpu"))
    padded = F.pad(x, (0, 3, 0, 3), mode="replicate") * 2 - 1
    with torch.inference_mode():
        y = rec.vae.decode(rec.vae.encode(padded).latent_dist.mode()).sample
    expected = to_uint8((y + 1) / 2)[:101, :77]
    assert np.array_equal(out[0], expected)


def test_sd_vae_tiles_large_crops(tiny_vae: Path) -> None:
    spec = resolve_spec(parse_spec(f"sd-vae:{tiny_vae}/vae", "ae"))
    rec = SdVaeReconstructor(spec.path, spec.digest, spec.name, tile_above=64, tile=64)
    small, large = _images()[2], skdata.astronaut()[:72, :100].copy()
    out_small = rec([small])[0]
    assert not rec.vae.use_tiling
    out_large = rec([large])[0]
    assert rec.vae.use_tiling and rec.vae.tile_latent_min_size == 8
    assert out_large.shape == large.shape and out_small.shape == small.shape
    assert np.array_equal(rec([large])[0], out_large)
    untiled = SdVaeReconstructor(spec.path, spec.digest, spec.name)([large])[0]
    assert not np.array_equal(out_large, untiled)  # the large crop really went through tiles


def test_sd_vae_wrong_class_and_missing_weights(tiny_vae: Path, tmp_path: Path) -> None:
    config = json.loads((tiny_vae / "vae" / "config.json").read_text())
    (tmp_path / "unet").mkdir()
    (tmp_path / "unet" / "config.json").write_text(json.dumps({**config, "_class_name": "UNet2DModel"}))
    with pytest.raises(ReconstructorError, match="holds a UNet2DModel"):
        resolve_spec(parse_spec(f"sd-vae:{tmp_path / 'unet'}", "ae"))
    (tmp_path / "noweights").mkdir()
    (tmp_path / "noweights" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ReconstructorError, match="safetensors"):
        resolve_spec(parse_spec(f"sd-vae:{tmp_path / 'noweights'}", "ae"))


# ---- spandrel -------------------------------------------------------------------------------------------------

def _esrgan(scale: int):
    from spandrel.architectures.ESRGAN import ESRGAN

    return _seeded(lambda: ESRGAN(num_filters=8, num_blocks=1, scale=scale), seed=scale)


@pytest.mark.parametrize("scale, suffix", [(4, ".pth"), (2, ".safetensors")])
def test_spandrel_esrgan_scale_from_the_model(scale: int, suffix: str, tmp_path: Path) -> None:
    import spandrel

    net = _esrgan(scale)
    path = tmp_path / f"esrgan_x{scale}{suffix}"
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    assert "model.1.sub.0.RDB1.conv1.0.weight" in state  # the keys spandrel detects ESRGAN by
    torch.save(state, path) if suffix == ".pth" else save_file(state, str(path))
    spec = resolve_spec(parse_spec(f"spandrel:{path}", "sr"))
    assert spec.digest == sha256_file(path)
    rec = load_reconstructor(spec, tmp_path)
    assert rec.scale == scale
    assert rec.id == f"spandrel:ESRGAN-x{scale}:{path.name}@{spec.digest[:12]}"
    images = _images()
    out = rec(images)
    assert [o.shape for o in out] == [i.shape for i in images]
    # SR(I) = model(I edge-padded to a multiple of the scale, downscaled by it), cropped to I
    descriptor = spandrel.ModelLoader().load_from_state_dict(state).eval()
    x = to_tensor(images[0], torch.device("cpu"))
    with torch.inference_mode():
        expected = descriptor(downscale(pad_to_multiple(x, scale), scale))[..., :101, :77]
    assert np.array_equal(out[0], to_uint8(expected))
    assert all(a.tobytes() == b.tobytes() for a, b in zip(out, rec(images), strict=False))


# ---- per-frame failures -----------------------------------------------------------------------------------------

class _FailsOnBright(Reconstructor):
    """A test reconstructor: identity, except NaN for crops brighter than the threshold."""

    kind, id, device = "ae", "test-ae", torch.device("cpu")

    def reconstruct_tensor(self, x: torch.Tensor) -> torch.Tensor:
        return x * float("nan") if x.mean() > 0.5 else x


def _record(index: int, value: int) -> FrameRecord:
    return FrameRecord("v", index, 1, 0.9, (0, 0, 8, 6), (6, 8), np.zeros(4, np.float32), np.zeros((81, 2), np.float32),
                       np.zeros((478, 3), np.float32), np.full((6, 8, 3), value, np.uint8))


def test_reconstruct_video_records_the_failed_frame_and_goes_on() -> None:
    result = VideoResult("v", "/videos/v.mp4", "train", records=[_record(0, 10), _record(5, 250), _record(9, 20)])
    result, summary = reconstruct_video(result, {"ae": _FailsOnBright()})
    assert [r.ae is not None for r in result.records] == [True, False, True]
    assert np.array_equal(result.records[0].ae, result.records[0].image)
    assert result.records[1].image[0, 0, 0] == 250  # the frame keeps its original
    assert summary["ae_failed"] == 1 and summary["frames"] == 3
    (failure,) = result.frame_failures
    assert failure["frame_index"] == 5 and failure["stage"] == "ae" and failure["path"] == "/videos/v.mp4"
    assert "non-finite" in failure["reason"] and "frame 5" in failure["reason"]


# ---- inspect panels ----------------------------------------------------------------------------------------------

def test_side_by_side_panels_and_psnrs() -> None:
    from skimage.metrics import peak_signal_noise_ratio

    original = _images()[1]
    rng = np.random.default_rng(0)
    ae = np.clip(original.astype(int) + rng.integers(-8, 9, original.shape), 0, 255).astype(np.uint8)
    drawn = original.copy()
    drawn[10:20, 10:20] = (0, 255, 0)
    image, psnrs = side_by_side(drawn, original, {"ae": ae, "sr": None})
    h, w = original.shape[:2]
    bar = image.shape[0] - h
    assert image.shape == (h + bar, 3 * w, 3) and bar >= 18
    assert np.array_equal(image[bar:, :w], drawn) and np.array_equal(image[bar:, w:2 * w], ae)
    assert (image[bar:, 2 * w:] == 128).all()  # the failed SR is a grey panel
    assert psnrs == {"ae": pytest.approx(peak_signal_noise_ratio(original, ae, data_range=255)), "sr": None}
    assert 25 < psnrs["ae"] < 40
    assert image[:bar, w:2 * w].max() > 200 and image[:bar, :w].max() > 200  # titles are written in the bars
