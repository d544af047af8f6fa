"""TAESD-family checkpoints in the upstream format (issue 28): the shipped TAEF2 (`--ae taef2`, pinned) on a
real face, `--ae taesd:FOLDER|FILE|ENC,DEC` with the layout read from the shapes, one-line errors for a mixed
pair, an unknown layout or a changed shipped file, and a precompute whose AE crops carry TAEF2's id."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from fiagen.precompute.reconstruct import load_reconstructor, parse_spec, resolve_spec, tiny_ae
from fiagen.precompute.reconstruct.base import pad_to_multiple, to_tensor, to_uint8
from fiagen.precompute.reconstruct.spec import ReconstructorError
from fiagen.precompute.reconstruct.tiny_ae import LAYOUTS, PINNED, SHIPPED, decoder, encoder

SHIPPED_DIR = Path(str(SHIPPED))
TAEF2_DIGEST = hashlib.sha256("".join(PINNED.values()).encode()).hexdigest()  # encoder's sha256, then decoder's


def _random_pair(folder: Path, layout_name: str, prefix: str, seed: int = 0) -> tuple[Path, Path]:
    """A randomly initialised encoder/decoder of a layout, saved as upstream state dicts PREFIX_{en,de}coder.pth."""
    layout = next(lay for lay in LAYOUTS if lay.name == layout_name)
    folder.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        halves = {"encoder": encoder(layout).half().state_dict(), "decoder": decoder(layout).half().state_dict()}
    paths = tuple(folder / f"{prefix}_{half}.pth" for half in halves)
    for path, state in zip(paths, halves.values(), strict=True):
        torch.save(state, path)
    return paths


def _face_crop(test_data: Path) -> np.ndarray:
    """The AFLW close-up's face box (173 px), RGB uint8."""
    import cv2

    from fiagen.precompute.faces import FaceLandmarker

    image = cv2.cvtColor(cv2.imread(str(test_data / "real_images" / "aflw-test.jpg")), cv2.COLOR_BGR2RGB)
    with FaceLandmarker() as marker:
        face = max(marker.detect(image), key=lambda d: d.area)
    x0, y0, x1, y1 = (int(round(v)) for v in face.box)
    return image[y0:y1, x0:x1].copy()


def test_taef2_is_shipped_pinned_and_brings_a_real_face_back(test_data: Path, one_torch_thread) -> None:
    from skimage.metrics import peak_signal_noise_ratio as psnr

    spec = resolve_spec(parse_spec("taef2", "ae"))
    assert [Path(spec.path), Path(spec.partner)] == [SHIPPED_DIR / f"taef2_{h}.pth" for h in ("encoder", "decoder")]
    assert spec.digest == TAEF2_DIGEST and spec.fingerprint() == {"spec": "taef2", "weights_sha256": TAEF2_DIGEST}
    assert (SHIPPED_DIR / "LICENSE").read_text().startswith("MIT License")
    rec = load_reconstructor(spec, Path("."))
    assert rec.id == f"taef2:taef2@{TAEF2_DIGEST[:12]}" and rec.layout.latent == 32
    crop = _face_crop(test_data)
    assert min(crop.shape[:2]) >= 128
    out = rec([crop])[0]
    assert out.shape == crop.shape and np.array_equal(out, rec([crop])[0])
    assert psnr(crop, out, data_range=255) >= 30.0  # measured: 34.4 dB
    # AE(I) = decode(encode(I)) on the edge-padded crop, and the latent is FLUX.2's: 32 channels at 1/8
    x = pad_to_multiple(to_tensor(crop, torch.device("cpu")), 8)
    with torch.inference_mode():
        latent = rec.net[0](x)
        y = rec.net[1](latent)
    assert latent.shape == (1, 32, x.shape[2] // 8, x.shape[3] // 8)
    assert np.array_equal(out, to_uint8(y)[:crop.shape[0], :crop.shape[1]])


def test_taesd_reads_the_shipped_folder_a_file_and_a_pair_in_the_upstream_format(tmp_path: Path) -> None:
    """taesd:FOLDER, taesd:FILE (the partner found by name) and taesd:ENC,DEC give the shipped TAEF2 with the
    same id and bytes as --ae taef2; no diffusers involved (no config.json anywhere)."""
    image = np.random.default_rng(0).integers(0, 256, (37, 29, 3), dtype=np.uint8)
    expected = load_reconstructor(resolve_spec(parse_spec("taef2", "ae")), tmp_path)
    enc, dec = SHIPPED_DIR / "taef2_encoder.pth", SHIPPED_DIR / "taef2_decoder.pth"
    for target in (SHIPPED_DIR, dec, f"{enc},{dec}"):
        spec = resolve_spec(parse_spec(f"taesd:{target}", "ae"))
        assert (spec.path, spec.partner, spec.digest) == (str(enc), str(dec), TAEF2_DIGEST)
        rec = load_reconstructor(spec, tmp_path)
        assert rec.id == expected.id and np.array_equal(rec([image])[0], expected([image])[0])


def test_layout_comes_from_the_shapes_not_the_names(tmp_path: Path) -> None:
    """Random weights of each layout, saved under another family's file names, are read as what they are."""
    for k, (layout, latent) in enumerate((("taesd-4ch", 4), ("taesd-16ch", 16), ("taef2", 32))):
        misnamed = {"taesd-4ch": "taef2", "taesd-16ch": "taesd", "taef2": "taesdxl"}[layout]
        enc, _ = _random_pair(tmp_path / layout, layout, misnamed, seed=k)
        spec = resolve_spec(parse_spec(f"taesd:{tmp_path / layout}", "ae"))
        rec = load_reconstructor(spec, tmp_path)
        assert spec.path == str(enc) and rec.layout.latent == latent
        assert rec.id == f"{layout}:{misnamed}@{spec.digest[:12]}"
        out = rec([np.full((20, 44, 3), 128, np.uint8)])[0]
        assert out.shape == (20, 44, 3)
    digests = {resolve_spec(parse_spec(f"taesd:{tmp_path / lay.name}", "ae")).digest for lay in LAYOUTS}
    assert len(digests) == 3


def test_bad_checkpoints_are_one_error_line(tmp_path: Path, fiagen_main) -> None:
    """A pair from two families, an unknown layout, a file that is no state dict, a folder of several pairs or
    of none: one `fiagen: error:` line each, before any video is read."""
    taesd_enc, _ = _random_pair(tmp_path / "taesd", "taesd-4ch", "taesd")
    _random_pair(tmp_path / "many", "taesd-4ch", "a")
    _random_pair(tmp_path / "many", "taesd-4ch", "b")
    wide = tmp_path / "wide"
    wide.mkdir()
    state = {k: v for k, v in encoder(LAYOUTS[0]).state_dict().items()}
    state["14.weight"], state["14.bias"] = torch.zeros(8, 64, 3, 3), torch.zeros(8)  # 8 latent channels: no family
    torch.save(state, wide / "x_encoder.pth")
    shutil.copy(SHIPPED_DIR / "taef2_decoder.pth", wide / "x_decoder.pth")
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "t_encoder.pth").write_text("not a checkpoint")
    shutil.copy(SHIPPED_DIR / "taef2_decoder.pth", tmp_path / "text" / "t_decoder.pth")
    (tmp_path / "empty").mkdir()
    source = tmp_path / "videos" / "train"
    source.mkdir(parents=True)
    (source / "a.mp4").write_bytes(b"")  # never read
    cases = {f"{taesd_enc},{SHIPPED_DIR / 'taef2_decoder.pth'}": "is TAESD or TAESDXL (4 latent channels) but the "
                                                                 "decoder taef2_decoder.pth is TAEF2",
             str(wide): "not a TAESD-family encoder of a known layout",
             str(tmp_path / "text"): "cannot read",
             str(tmp_path / "many"): "holds 2 TAESD encoders (a_encoder.pth, b_encoder.pth)",
             str(tmp_path / "empty"): "neither a diffusers AutoencoderTiny (config.json) nor TAESD checkpoints",
             str(tmp_path / "taesd" / "gone_encoder.pth"): "no such file"}
    for target, words in cases.items():
        code, _, err = fiagen_main(["precompute", "--src", f"folder:{source.parent}", "--out", str(tmp_path / "out"),
                                    "--ae", f"taesd:{target}", "--sr", "none", "--quiet"])
        assert code == 2 and err.count("\n") == 1 and err.startswith("fiagen: error: --ae taesd:"), err
        assert words in err, err
        assert not (tmp_path / "out").exists()


def test_changed_shipped_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PINNED:
        shutil.copy(SHIPPED_DIR / name, tmp_path / name)
    monkeypatch.setattr(tiny_ae, "SHIPPED", tmp_path)
    assert resolve_spec(parse_spec("taef2", "ae")).digest == TAEF2_DIGEST  # the copy is still the pinned file
    data = bytearray((tmp_path / "taef2_decoder.pth").read_bytes())
    data[-100] ^= 1
    (tmp_path / "taef2_decoder.pth").write_bytes(bytes(data))
    with pytest.raises(ReconstructorError) as err:
        resolve_spec(parse_spec("taef2", "ae"))
    message = str(err.value)
    assert len(message.splitlines()) == 1 and "not the pinned file of fiagen's package data" in message
    assert "expected 0a44a31e1ae5); reinstall fiagen" in message
    (tmp_path / "taef2_encoder.pth").unlink()
    with pytest.raises(ReconstructorError, match="package data \\(weights/taef2\\) has no taef2_encoder.pth"):
        resolve_spec(parse_spec("taef2", "ae"))


def test_precompute_with_taef2_writes_its_crops_and_id(ffpp_root: Path, ray_local, tmp_path: Path,
                                                       one_torch_thread) -> None:
    from skimage.metrics import peak_signal_noise_ratio as psnr

    from fiagen.manifests.manifest import read_manifest, read_run_report
    from fiagen.precompute.entry import PrecomputeConfig, precompute
    from fiagen.precompute.shards import ShardReader

    out = tmp_path / "out"
    precompute(PrecomputeConfig(src="ff++_c23", root=str(ffpp_root), out=str(out), splits=("train",), frames=2,
                                limit=1, ae="taef2", sr="none", quiet=True))
    manifest = read_manifest(out)
    report = read_run_report(out)
    taef2_id = f"taef2:taef2@{TAEF2_DIGEST[:12]}"
    assert len(manifest) == 2 and manifest["ae_ok"].all() and set(manifest["ae_id"]) == {taef2_id}
    assert report["fingerprint"]["ae"] == "taef2" and report["fingerprint"]["ae_weights_sha256"] == TAEF2_DIGEST
    assert report["reconstructors"]["ae"]["ids"] == [taef2_id] and not (out / "models").exists()
    rec = load_reconstructor(resolve_spec(parse_spec("taef2", "ae")), out)
    reader = ShardReader(out / manifest["shard"].iloc[0])
    assert reader.attrs["ae_id"] == taef2_id and reader.kinds == ("image", "ae")
    for row in range(2):
        image, ae = reader.image(row), reader.image(row, "ae")
        assert np.array_equal(ae, rec([image])[0])  # the actor's output (one thread), byte for byte
        assert 28 < psnr(image, ae, data_range=255) < 45  # a reconstruction, not a copy
