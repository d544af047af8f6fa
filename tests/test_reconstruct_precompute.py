"""Reconstructors inside precompute: builtin models fit on the source's train crops and reused on a rerun,
AE/SR of every frame in the shards, pretrained weights through the actors, failures recorded per frame,
one-line errors before any video is read, and `fiagen inspect --draw` panels."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import torch

from fiagen.manifests.manifest import read_manifest, read_run_report
from fiagen.precompute.entry import ConfigMismatch, PrecomputeConfig, precompute
from fiagen.precompute.inspect import draw_frames
from fiagen.precompute.reconstruct.builtin import load_builtin, model_paths
from fiagen.precompute.reconstruct.spec import ReconstructorError
from fiagen.precompute.shards import ShardReader, sha256_file

FRAMES = 4
SETTINGS = dict(frames=FRAMES, shard_size=8, limit=1, fit_steps=40, fit_patch=48, fit_videos=2, quiet=True)


@pytest.fixture(scope="module")
def recon_out(ffpp_root: Path, ray_local, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Precompute with the builtin AE and SR (their defaults) over the first video of each split."""
    out = tmp_path_factory.mktemp("recon_out")
    precompute(PrecomputeConfig(src="ff++_c23", root=str(ffpp_root), out=str(out), **SETTINGS))
    return out


def _rows(out: Path):
    manifest = read_manifest(out)
    for shard, rows in manifest.groupby("shard"):
        reader = ShardReader(out / shard)
        for _, m in rows.iterrows():
            yield m, reader


def test_shards_hold_ae_and_sr_of_each_frame(recon_out: Path, one_torch_thread) -> None:
    ids = {kind: load_builtin(recon_out / "models", kind).id for kind in ("ae", "sr")}
    manifest = read_manifest(recon_out)
    assert len(manifest) == 3 * FRAMES and set(manifest["split"]) == {"train", "val", "test"}
    assert manifest["ae_ok"].all() and manifest["sr_ok"].all()
    assert set(manifest["ae_id"]) == {ids["ae"]} and set(manifest["sr_id"]) == {ids["sr"]}
    models = {kind: load_builtin(recon_out / "models", kind) for kind in ("ae", "sr")}
    for m, reader in _rows(recon_out):
        assert reader.attrs["ae_id"] == ids["ae"] and reader.attrs["sr_id"] == ids["sr"]
        image = reader.image(int(m["row"]))
        assert image.shape == (m["crop_h"], m["crop_w"], 3)
        for kind in ("ae", "sr"):
            variant = reader.image(int(m["row"]), kind)
            assert variant.shape == image.shape and variant.dtype == np.uint8
            assert np.abs(variant.astype(int) - image.astype(int)).mean() > 0.5  # a reconstruction, not a copy
            # the actor's output (one thread) is what the saved model gives here, byte for byte
            assert np.array_equal(variant, models[kind]([image])[0])


def test_models_and_run_report_record_the_fit(recon_out: Path) -> None:
    report = read_run_report(recon_out)
    assert report["fingerprint"]["ae"] == "builtin" and report["fingerprint"]["fit"]["steps"] == 40
    for kind in ("ae", "sr"):
        weights, record_path = model_paths(recon_out / "models", kind)
        record = json.loads(record_path.read_text())
        assert record["id"] == load_builtin(recon_out / "models", kind).id
        assert report["reconstructors"][kind]["ids"] == [record["id"]]
        assert report["reconstructors"][kind]["fit"] == record
        assert record["settings"]["steps"] == 40 and record["settings"]["patch"] == 48
        assert record["loss_curve"][-1][0] == 40 and len(record["loss_curve"]) == 40
        # fit on the (limited) train split's video, PSNR on crops of the val split's video
        assert record["fit_videos"] == ["001"] and record["held_out_videos"] == ["004"]
        assert record["train_crops"] == 8 and record["val_crops"] == 8
        assert 10 < record["psnr_val"] < 45
    assert report["counts"]["frames_ae_failed"] == report["counts"]["frames_sr_failed"] == 0
    assert report["timings"]["reconstruct_ae_s"] > 0 and report["timings"]["models_s"] > 0


def test_rerun_reuses_models_and_rebuilds_the_same_bytes(recon_out: Path, ffpp_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(recon_out, out)
    models = sorted((out / "models").iterdir())
    before = {p: (p.stat().st_mtime_ns, sha256_file(p)) for p in models}
    victim = out / "shards" / "val" / "00000.h5"
    digest = sha256_file(victim)
    victim.unlink()
    result = precompute(PrecomputeConfig(src="ff++_c23", root=str(ffpp_root), out=str(out), **SETTINGS))
    assert (result.shards_written, result.shards_reused) == (1, 2)
    assert {p: (p.stat().st_mtime_ns, sha256_file(p)) for p in models} == before  # not refit
    assert sha256_file(victim) == digest  # same frames, same models -> same ae/sr bytes


def test_other_reconstructor_on_existing_out_is_refused(recon_out: Path, ffpp_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(recon_out, out)
    for change, word in (({"sr": "none"}, "sr"), ({"fit_steps": 41}, "fit")):
        with pytest.raises(ConfigMismatch, match=word):
            precompute(PrecomputeConfig(src="ff++_c23", root=str(ffpp_root), out=str(out), **{**SETTINGS, **change}))
    assert len(read_manifest(out)) == 3 * FRAMES


def test_no_reconstructors_means_no_groups(shards_small: Path) -> None:
    manifest = read_manifest(shards_small)
    assert not manifest["ae_ok"].any() and not manifest["sr_ok"].any()
    assert set(manifest["ae_id"]) == set(manifest["sr_id"]) == {"none"}
    for path in sorted(shards_small.glob("shards/*/*.h5")):
        with h5py.File(path, "r") as f:
            assert "image" in f and "ae" not in f and "sr" not in f
    assert not (shards_small / "models").exists()


def test_inspect_draws_original_ae_sr(recon_out: Path, tmp_path: Path) -> None:
    written = draw_frames(recon_out, 2, tmp_path)
    assert len(written) == 2
    manifest = read_manifest(recon_out)
    for path in written:
        split, vid, frame = path.stem.split("_")
        m = manifest[(manifest["video_id"] == vid) & (manifest["frame_index"] == int(frame))].iloc[0]
        reader = ShardReader(recon_out / m["shard"])
        image = reader.image(int(m["row"]))
        h, w = image.shape[:2]
        png = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        bar = png.shape[0] - h
        assert png.shape[1] == 3 * w and bar > 0
        assert np.array_equal(png[bar:, w:2 * w], reader.image(int(m["row"]), "ae"))
        assert np.array_equal(png[bar:, 2 * w:], reader.image(int(m["row"]), "sr"))


# ---- pretrained weights through the actors, and frames they fail on ---------------------------------------

def test_pretrained_reconstructors_and_failed_frames(ffpp_root: Path, ray_local, tmp_path: Path) -> None:
    """A tiny AutoencoderKL as --ae and an ESRGAN whose weights are NaN as --sr: every frame gets its VAE
    reconstruction; every SR fails, is recorded per frame, and the frames keep their originals."""
    from diffusers import AutoencoderKL
    from spandrel.architectures.ESRGAN import ESRGAN

    with torch.random.fork_rng():
        torch.manual_seed(0)
        vae = AutoencoderKL(block_out_channels=(8, 8, 16, 16), down_block_types=("DownEncoderBlock2D",) * 4,
                            up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=4, latent_channels=4,
                            layers_per_block=1, sample_size=32)
        esrgan = ESRGAN(num_filters=8, num_blocks=1, scale=4)
    vae.save_pretrained(tmp_path / "tiny_vae")
    torch.save({k: torch.full_like(v, float("nan")) for k, v in esrgan.state_dict().items()}, tmp_path / "nan.pth")
    out = tmp_path / "out"
    precompute(PrecomputeConfig(src="ff++_c23", root=str(ffpp_root), out=str(out), splits=("train",), frames=2,
                                limit=1, ae=f"sd-vae:{tmp_path / 'tiny_vae'}", sr=f"spandrel:{tmp_path / 'nan.pth'}",
                                quiet=True))
    report = read_run_report(out)
    manifest = read_manifest(out)
    assert len(manifest) == 2
    assert manifest["ae_ok"].all() and not manifest["sr_ok"].any()
    (ae_id,), (sr_id,) = set(manifest["ae_id"]), set(manifest["sr_id"])
    assert ae_id.startswith("sd-vae:tiny_vae@") and sr_id.startswith("spandrel:ESRGAN-x4:nan.pth@")
    assert report["fingerprint"]["sr_weights_sha256"] == sha256_file(tmp_path / "nan.pth")
    assert report["counts"]["frames_sr_failed"] == 2 and report["counts"]["frames_ae_failed"] == 0
    assert report["counts"]["videos_failed"] == 0 and report["counts"]["frames_stored"] == 2
    failures = report["failures"]
    assert sorted(f["frame_index"] for f in failures) == sorted(manifest["frame_index"])
    assert all(f["stage"] == "sr" and "non-finite" in f["reason"] and f["video_id"] == "001" for f in failures)
    reader = ShardReader(out / manifest["shard"].iloc[0])
    assert reader.kinds == ("image", "ae", "sr")
    for row in range(2):
        assert reader.image(row).shape == reader.image(row, "ae").shape
    assert not (out / "models").exists()  # nothing was fit


# ---- errors before any video is read ----------------------------------------------------------------------

def test_bad_specs_fail_before_any_video_is_read(ffpp_root: Path, test_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    cases = [
        (dict(src="ff++_c23", root=str(ffpp_root), sr=f"spandrel:{tmp_path / 'missing.pth'}"), "no such file"),
        (dict(src="ff++_c23", root=str(ffpp_root), ae="vqgan:x"), "expected none, builtin, sd-vae"),
        (dict(src="ff++_c23", root=str(ffpp_root), fit_patch=50), "multiple of 4"),
    ]
    only_test = tmp_path / "only_test" / "test"
    only_test.mkdir(parents=True)
    (only_test / "a.mp4").symlink_to(test_data / "real_videos" / "liveportrait_d3.mp4")
    cases.append((dict(src=f"folder:{only_test.parent}"), "has none"))
    for kwargs, words in cases:
        with pytest.raises(ReconstructorError) as err:
            precompute(PrecomputeConfig(out=str(out), quiet=True, **kwargs))
        assert words in str(err.value) and len(str(err.value).splitlines()) == 1
        assert not out.exists()


@pytest.mark.parametrize("dry_run", [False, True])
def test_hub_id_offline_is_one_line(test_data: Path, tmp_path: Path, dry_run: bool) -> None:
    """An uncached hub id with the hub out of reach is refused before any work, by --dry-run too."""
    environ = {k: v for k, v in os.environ.items() if k != "HF_ENDPOINT"}
    environ.update(HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1")  # an empty cache, offline
    proc = subprocess.run([sys.executable, "-m", "fiagen", "precompute", "--src", f"folder:{test_data / 'real_videos'}",
                           "--out", str(tmp_path / "out"), "--ae", "sd-vae:someone/some-vae",
                           *(["--dry-run"] if dry_run else [])],
                          capture_output=True, text=True, timeout=120, env=environ)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "sd-vae:someone/some-vae" in lines[0] and "HF_HUB_OFFLINE" in lines[0], proc.stderr
    assert not (tmp_path / "out").exists()


def test_a_cached_hub_id_passes_the_dry_run_offline(test_data: Path, tmp_path: Path) -> None:
    """A hub VAE already in the Hugging Face cache needs no network: --dry-run passes, offline."""
    snapshot = tmp_path / "hf" / "hub" / "models--someone--some-vae" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    for name in ("config.json", "diffusion_pytorch_model.safetensors"):
        (snapshot / name).write_text("{}")
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("a" * 40)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    environ.update(HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-m", "fiagen", "precompute", "--src", f"folder:{test_data / 'real_videos'}",
                           "--out", str(tmp_path / "out"), "--ae", "sd-vae:someone/some-vae", "--dry-run"],
                          capture_output=True, text=True, timeout=120, env=environ)
    assert proc.returncode == 0, proc.stderr
    assert "ae: sd-vae:someone/some-vae" in proc.stdout and not (tmp_path / "out").exists()


def test_unreachable_hub_fails_at_once(ffpp_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No network: one TCP probe fails and the run stops with one line, instead of the hub client's retries."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(ReconstructorError) as err:
        precompute(PrecomputeConfig(src="ff++_c23", root=str(ffpp_root), out=str(tmp_path / "out"),
                                    ae="sd-vae:someone/some-vae", quiet=True))
    message = str(err.value)
    assert len(message.splitlines()) == 1 and "cannot be reached" in message and "127.0.0.1:9" in message
    assert not (tmp_path / "out").exists()
