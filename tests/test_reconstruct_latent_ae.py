"""Latent-diffusion AEs (sd-vae, taesd, issue 21) on small models the tests build in the real format: the
roundtrip against diffusers, the family check, the hub cache and offline behaviour."""

from __future__ import annotations

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

from fiagen.precompute.reconstruct import load_reconstructor, parse_spec, resolve_spec
from fiagen.precompute.reconstruct.base import to_tensor, to_uint8
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
