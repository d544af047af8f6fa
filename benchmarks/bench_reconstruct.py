"""Reconstruction throughput: frames/s of each reconstructor on real FF++ face crops, and builtin fit steps/s.

Crops come from the real FF++ c23 video 519.mp4 (640x480; its face-context crops are ~220x180 px, the
size precompute stores for FF++), extracted as precompute does. Reconstructors, with random weights
(speed does not depend on the values): builtin AE and SR; sd-vae with the Stable Diffusion 1.x VAE
architecture (AutoencoderKL, 4 levels 128-512 channels); spandrel with the Real-ESRGAN x4plus
architecture (RRDBNet, 23 blocks, 64 filters). Each runs one crop at a time as the precompute actors
do, on --device (cpu by default, cuda when asked and present) with --threads torch threads (a CPU
actor uses 1). Last line: a JSON object with frames_per_s per reconstructor, fit steps/s and the device.

    python benchmarks/bench_reconstruct.py [--data ../shared/data] [--frames 16] [--heavy-frames 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from fiagen.pipeline.extract import extract_video
from fiagen.pipeline.reconstruct.base import Reconstructor
from fiagen.pipeline.reconstruct.builtin import BuiltinReconstructor, build_net
from fiagen.pipeline.reconstruct.fit import FitSettings, fit_builtin

SD_VAE = dict(block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
              up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=2, latent_channels=4, sample_size=512)


def device_note(device: str, threads: int) -> str:
    if device == "cuda":
        return f"cuda: {torch.cuda.get_device_name(0)}"
    model = platform.processor() or "cpu"
    if Path("/proc/cpuinfo").exists():
        names = [ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                 if ln.startswith("model name")]
        model = names[0] if names else model
    return f"cpu: {model}, {threads} torch thread(s), {os.cpu_count()} cores on the machine"


def pretrained_architectures(tmp: Path, device: str) -> dict[str, Reconstructor]:
    """SD-VAE and Real-ESRGAN-sized reconstructors from randomly initialised weights saved to `tmp`."""
    from diffusers import AutoencoderKL
    from spandrel.architectures.ESRGAN import ESRGAN

    from fiagen.pipeline.reconstruct.sd_vae import SdVaeReconstructor
    from fiagen.pipeline.reconstruct.spandrel_sr import SpandrelReconstructor

    with torch.random.fork_rng():
        torch.manual_seed(0)
        AutoencoderKL(**SD_VAE).save_pretrained(tmp / "sd_vae")
        torch.save(ESRGAN(num_filters=64, num_blocks=23, scale=4).state_dict(), tmp / "realesrgan_x4plus_arch.pth")
    return {"sd-vae (SD 1.x arch)": SdVaeReconstructor(str(tmp / "sd_vae"), "0" * 64, "sd_vae", device),
            "spandrel (Real-ESRGAN x4plus arch)": SpandrelReconstructor(str(tmp / "realesrgan_x4plus_arch.pth"),
                                                                        "0" * 64, "x4plus", device)}


def frames_per_s(rec: Reconstructor, crops: list[np.ndarray]) -> float:
    rec(crops[:1])  # warm-up (allocations, kernel choice)
    if rec.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    rec(crops)
    if rec.device.type == "cuda":
        torch.cuda.synchronize()
    return len(crops) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("FIAGEN_TEST_DATA", "../shared/data"))
    parser.add_argument("--frames", type=int, default=16, help="crops timed per builtin reconstructor")
    parser.add_argument("--heavy-frames", type=int, default=2, help="crops timed for the SD-VAE and Real-ESRGAN sizes")
    parser.add_argument("--fit-steps", type=int, default=20, help="builtin fit steps timed (patch 64, batch 16)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device here")
    torch.set_num_threads(args.threads)
    video = Path(args.data) / "ffpp_train_real" / "519.mp4"
    crops = [r.image for r in extract_video("519", video, "train", args.frames).records]
    shape = np.mean([c.shape[:2] for c in crops], axis=0).round().astype(int).tolist()
    print(f"{len(crops)} face crops of {video.name}, mean {shape[0]}x{shape[1]} px; "
          f"{device_note(args.device, args.threads)}")
    results: dict[str, float] = {}
    for kind in ("ae", "sr"):
        rec = BuiltinReconstructor(kind, build_net(kind, torch.Generator().manual_seed(0)), args.device)
        results[f"builtin-{kind}"] = frames_per_s(rec, crops)
    with tempfile.TemporaryDirectory() as tmp:
        for name, rec in pretrained_architectures(Path(tmp), args.device).items():
            results[name] = frames_per_s(rec, crops[:args.heavy_frames])
    for name, fps in results.items():
        print(f"{name:36s} {fps:8.2f} frames/s")
    fit: dict[str, float] = {}
    settings = FitSettings(steps=args.fit_steps, patch=64)
    for kind in ("ae", "sr"):
        _, record = fit_builtin(kind, crops, [], settings, args.device)
        fit[f"builtin-{kind}"] = args.fit_steps / record["fit_seconds"]
        print(f"fit builtin-{kind}: {fit[f'builtin-{kind}']:.1f} steps/s (patch 64, batch 16)")
    print(json.dumps({"device": device_note(args.device, args.threads), "crop_hw": shape,
                      "frames_per_s": {k: round(v, 3) for k, v in results.items()},
                      "fit_steps_per_s": {k: round(v, 2) for k, v in fit.items()}}))


if __name__ == "__main__":
    main()
