"""The builtin AE and SR fit on real face crops (the shards_small train split) and judged on held-out
crops (its val split): PSNR inside a sane band, and the spectral traces their up-sampling leaves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fiagen.manifests.manifest import read_manifest
from fiagen.precompute.reconstruct.builtin import load_builtin, save_builtin
from fiagen.precompute.reconstruct.fit import FitSettings, bicubic_sr, fit_builtin, mean_psnr
from fiagen.precompute.shards import ShardReader

STEPS, PATCH = 150, 48


def _crops(out: Path, split: str) -> list[np.ndarray]:
    manifest = read_manifest(out)
    crops = []
    for shard, rows in manifest[manifest["split"] == split].groupby("shard"):
        reader = ShardReader(out / shard)
        crops += [reader.image(int(r)) for r in rows["row"]]
        reader.close()
    return crops


@pytest.fixture(scope="module")
def fitted(shards_small: Path, one_torch_thread_block) -> dict:
    """Both builtin models fit for STEPS steps on 48 px patches of the 32 train crops (seconds on a core)."""
    train, val = _crops(shards_small, "train"), _crops(shards_small, "val")
    assert len(train) == 32 and len(val) == 16
    settings = FitSettings(steps=STEPS, patch=PATCH, seed=0)
    with one_torch_thread_block():
        models = {kind: fit_builtin(kind, train, val, settings) for kind in ("ae", "sr")}
    return {"train": train, "val": val, "settings": settings, **models}


def _power(image: np.ndarray) -> np.ndarray:
    """Power spectrum of the luma, cropped to a multiple of 4 from the top-left (where the nets' up-sampling
    grid starts), Hann-windowed so the crop's borders add no cross."""
    g = image.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    g = g[: g.shape[0] // 4 * 4, : g.shape[1] // 4 * 4]
    g = (g - g.mean()) * np.outer(np.hanning(g.shape[0]), np.hanning(g.shape[1]))
    return np.abs(np.fft.fft2(g)) ** 2


def lattice_peak_ratio(image: np.ndarray, period: int = 4) -> float:
    """Median, over the frequencies k/period (k != 0, both axes), of the power there over the median power
    of the ring 3..6 bins around it: ~1 for a natural image, >> 1 for a period-`period` up-sampling grid."""
    p = _power(image)
    h, w = p.shape
    ratios = []
    for ky in range(period):
        for kx in range(period):
            if ky == kx == 0:
                continue
            cy, cx = ky * h // period, kx * w // period
            ring = [p[(cy + dy) % h, (cx + dx) % w] for dy in range(-6, 7) for dx in range(-6, 7)
                    if max(abs(dy), abs(dx)) >= 3]
            ratios.append(p[cy, cx] / np.median(ring))
    return float(np.median(ratios))


def high_band_energy_ratio(output: np.ndarray, original: np.ndarray, cutoff: float = 0.25) -> float:
    """Energy of the output above `cutoff` cycles/pixel (either axis) over the original's there."""
    po, pi = _power(output), _power(original)
    fy = np.abs(np.fft.fftfreq(po.shape[0]))[:, None]
    fx = np.abs(np.fft.fftfreq(po.shape[1]))[None, :]
    band = np.maximum(fy, fx) > cutoff
    return float(po[band].sum() / pi[band].sum())


def test_fit_record_and_loss_goes_down(fitted: dict, one_torch_thread_block) -> None:
    for kind in ("ae", "sr"):
        rec, record = fitted[kind]
        assert record["id"] == rec.id and record["settings"]["steps"] == STEPS
        steps = [s for s, _ in record["loss_curve"]]
        assert steps[-1] == STEPS and steps == sorted(steps)
        losses = [loss for _, loss in record["loss_curve"]]
        assert np.mean(losses[-5:]) < np.mean(losses[:5])
        with one_torch_thread_block():  # as during the fit: CPU kernels may round differently with other thread counts
            assert record["psnr_val"] == pytest.approx(mean_psnr(fitted["val"], rec(fitted["val"])), abs=1e-9)


def test_ae_psnr_in_band(fitted: dict) -> None:
    """Band for the AE's held-out PSNR: 22 < PSNR < 40 dB, and at least 8 dB above a flat image.

    Upper bound (not identity): a copy scores infinite PSNR and mere uint8 rounding ~59 dB; the AE squeezes
    a crop through an 8-channel latent at 1/4 resolution (6x fewer values) and is fit for seconds, so it
    must lose detail: 40 dB is visually lossless (JPEG q~95), far above what such a bottleneck returns.
    Lower bound (not noise): uniform noise against a face scores ~8 dB and each crop's flat mean colour
    ~15 dB; 22 dB and +8 dB over that flat baseline mean the face's structure comes back (measured
    here: ~27.5 dB after 150 steps)."""
    rec, record = fitted["ae"]
    val = fitted["val"]
    out = rec(val)
    psnr = mean_psnr(val, out)
    flat = mean_psnr(val, [np.broadcast_to(v.mean(axis=(0, 1)).round().astype(np.uint8), v.shape) for v in val])
    assert 22 < psnr < 40, psnr
    assert psnr > flat + 8, (psnr, flat)
    assert all(o.shape == v.shape and not np.array_equal(o, v) for o, v in zip(out, val, strict=False))


def test_sr_psnr_in_band(fitted: dict) -> None:
    """Band for the SR's held-out PSNR: within [bicubic - 0.5, bicubic + 3] dB of the bicubic reference
    (the same x4 downscale, upscaled by bicubic interpolation), and between 25 and 45 dB.

    Not identity: SR(I) sees only I downscaled x4 (1/16 of the pixels); a small net fit for seconds
    gains at most a few dB over bicubic (measured here: +0.1 dB, bicubic ~38 dB on these smooth crops),
    and a copy of I would be infinite. Not noise: the net starts as bicubic (its residual branch begins
    at zero) and fitting must not push it more than 0.5 dB below; 25 dB would be a visibly wrong face."""
    rec, record = fitted["sr"]
    val = fitted["val"]
    psnr = mean_psnr(val, rec(val))
    bicubic = mean_psnr(val, [bicubic_sr(v, 4) for v in val])
    assert record["psnr_val_bicubic"] == pytest.approx(bicubic)
    assert bicubic - 0.5 < psnr < bicubic + 3, (psnr, bicubic)
    assert 25 < psnr < 45, psnr


def test_ae_decoder_leaves_a_period_4_grid(fitted: dict) -> None:
    """The AE decoder upsamples with two stride-2 transposed convolutions: its output carries energy on
    the period-4 lattice of frequencies (checkerboard traces), which the camera original does not
    (measured: median peak ratio ~150 for the AE output, ~1.7 for the originals)."""
    rec, _ = fitted["ae"]
    val = fitted["val"]
    out = rec(val)
    original = np.median([lattice_peak_ratio(v) for v in val])
    recon = np.median([lattice_peak_ratio(o) for o in out])
    assert original < 3, original
    assert recon > 10 and recon > 5 * original, (recon, original)


def test_sr_output_lacks_the_high_band(fitted: dict) -> None:
    """SR(I) is rebuilt from a x4 downscale (content up to 1/8 cycle/pixel); what it returns above 1/4
    cycle/pixel is a small fraction of the original's energy there (measured: median ~0.03, max ~0.05)."""
    rec, _ = fitted["sr"]
    val = fitted["val"]
    ratios = [high_band_energy_ratio(o, v) for o, v in zip(rec(val), val, strict=False)]
    assert np.median(ratios) < 0.1, ratios
    assert max(ratios) < 0.2, ratios


def test_fitting_is_seeded(fitted: dict, tmp_path: Path, one_torch_thread_block) -> None:
    """Same data, settings and seed -> the same weights (same id) and the same bytes after a save/load."""
    train, val, _settings = fitted["train"], fitted["val"], fitted["settings"]
    rec, record = fitted["sr"]
    short = FitSettings(steps=10, patch=PATCH, seed=0)
    with one_torch_thread_block():
        a, _ = fit_builtin("sr", train, [], short)
        b, _ = fit_builtin("sr", train, [], short)
        c, _ = fit_builtin("sr", train, [], FitSettings(steps=10, patch=PATCH, seed=1))
    assert a.id == b.id != c.id
    save_builtin(tmp_path, "sr", rec.net, record)
    loaded = load_builtin(tmp_path, "sr")
    assert loaded.id == rec.id
    assert all(x.tobytes() == y.tobytes() for x, y in zip(rec(val[:3]), loaded(val[:3]), strict=False))
