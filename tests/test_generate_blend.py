"""The online FIA-USA pixel pieces on arrays: colour jitter, frequency ops, the blend, shared augmentation."""

from __future__ import annotations

import cv2
import numpy as np
from skimage import data

from fiagen.generate.augment import AugmentRanges, PairAugment
from fiagen.generate.blend import blend, blend_within
from fiagen.generate.transforms import FREQ_OPS, ColourJitter, FrequencyOp, jpeg


def test_colour_jitter_identity_and_grey_axis() -> None:
    img = data.astronaut()[::4, ::4].copy()
    assert ColourJitter()(img) is img
    m = ColourJitter(hue=30.0).matrix(np.array([128.0, 128.0, 128.0]))
    grey = m[:, :3] @ np.array([100.0, 100.0, 100.0]) + m[:, 3]
    assert np.allclose(grey, 100.0, atol=1e-3)  # a hue rotation keeps greys grey
    shifted = ColourJitter(shift=(10.0, 0.0, -10.0))(img).astype(int) - img
    inside = (img[..., 0] < 240) & (img[..., 2] > 15)
    assert (shifted[..., 0][inside] == 10).all() and (shifted[..., 2][inside] == -10).all()


def test_every_frequency_op_changes_a_textured_image() -> None:
    img = data.astronaut()[::2, ::2].copy()
    rng = np.random.default_rng(9)
    seen = set()
    for _ in range(40):
        op = FrequencyOp.draw(rng)
        seen.add(op.op)
        out = op(img)
        assert out.shape == img.shape and out.dtype == np.uint8
        assert np.abs(out.astype(int) - img).mean() > 0.5, op
    assert seen == set(FREQ_OPS)


def test_blend_formula_holds_to_the_pixel() -> None:
    rng = np.random.default_rng(10)
    target = rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)
    source = rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)
    mask = rng.random((64, 80), dtype=np.float32)
    mask[:16] = 0.0
    mask[16:32] = 1.0
    fake = blend(target, source, mask)
    exact = np.rint(mask[..., None].astype(np.float64) * target + (1 - mask[..., None].astype(np.float64)) * source)
    diff = np.abs(fake.astype(int) - exact)
    assert (fake[:16] == source[:16]).all() and (fake[16:32] == target[16:32]).all()
    assert diff.max() <= 1 and (diff == 0).mean() > 0.99
    support = (10, 20, 50, 40)
    local = np.zeros_like(mask)
    local[20:40, 10:50] = mask[20:40, 10:50]
    assert np.array_equal(blend_within(target[20:40, 10:50], source, local, support), blend(target, source, local))
    assert np.array_equal(blend_within(None, source, np.zeros_like(mask), None), source)


def test_shared_augmentation_window_is_exact() -> None:
    """The fake's colour+JPEG redone only around the mask equals doing it on the whole fake."""
    real = data.astronaut()[40:300, 120:380].copy()
    rng = np.random.default_rng(11)
    for trial in range(12):
        x0, y0 = rng.integers(0, 200, size=2)
        x1, y1 = x0 + rng.integers(1, 60), y0 + rng.integers(1, 60)
        fake = real.copy()
        fake[y0:y1, x0:x1] = rng.integers(0, 256, (y1 - y0, x1 - x0, 3))
        aug = PairAugment(colour=ColourJitter(shift=(5.0, -3.0, 2.0), contrast=0.2, hue=4.0),
                          jpeg_quality=int(rng.integers(40, 100)) if trial % 3 else None)
        r, f = aug.photometric(real, fake, (int(x0), int(y0), int(x1), int(y1)))
        matrix = aug.colour.matrix(np.array(cv2.mean(real)[:3]))
        full_r, full_f = cv2.transform(real, matrix), cv2.transform(fake, matrix)
        if aug.jpeg_quality is not None:
            full_r, full_f = jpeg(full_r, aug.jpeg_quality), jpeg(full_f, aug.jpeg_quality)
        assert np.array_equal(r, full_r) and np.array_equal(f, full_f), trial


def test_augment_draws_follow_their_probabilities() -> None:
    rng = np.random.default_rng(12)
    ranges = AugmentRanges()
    draws = [PairAugment.draw(rng, ranges) for _ in range(4000)]
    tol = 0.03  # 4000 draws: sd <= 0.008
    assert abs(np.mean([d.flip for d in draws]) - ranges.flip_p) < tol
    assert abs(np.mean([d.jpeg_quality is not None for d in draws]) - ranges.jpeg_p) < tol
    assert abs(np.mean([d.cutout is not None for d in draws]) - ranges.cutout_p) < tol
    assert abs(np.mean([d.noise_sigma is not None for d in draws]) - ranges.noise_p) < tol
    cut = [d.cutout_box(100) for d in draws if d.cutout is not None]
    assert all(0 <= x0 < x1 <= 100 and 0 <= y0 < y1 <= 100 for x0, y0, x1, y1 in cut)
