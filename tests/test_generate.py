"""The online FIA-USA pieces on arrays: draws, masks, transforms, blend, shared augmentation, one pair."""

from __future__ import annotations

from collections import Counter

import cv2
import numpy as np
import pytest
from skimage import data

from fiagen.generate.augment import AugmentRanges, PairAugment
from fiagen.generate.blend import blend, blend_within
from fiagen.generate.config import GenerateConfig, GenerateError, resolve_recipe
from fiagen.generate.crop import EVAL_MARGIN, TRAIN_MARGINS, eval_crop, margin_box, train_margins
from fiagen.generate.draws import pick, sample_streams
from fiagen.generate.masks import (
    BLEND_RATIOS,
    MASK_TYPES,
    Canvas,
    FaceParts,
    blend_ratio,
    erode_dilate,
    mask_canvas,
    polygons,
    raw_mask,
    soft_mask,
)
from fiagen.generate.mmr import FULL_PROBS, available_recon, draw_recon
from fiagen.generate.pair import Frame, make_pair
from fiagen.generate.transforms import FREQ_OPS, ColourJitter, FrequencyOp, jpeg
from fiagen.precompute.extract import face_crop

N_DRAWS = 20000
# Frequencies over N_DRAWS: the largest standard deviation (p = 0.5) is 0.0035; 0.015 is over 4 of them.
TOL = 0.015


def frequencies(values: list[str]) -> dict[str, float]:
    return {k: v / len(values) for k, v in Counter(values).items()}


@pytest.fixture(scope="module")
def frame(astronaut_face) -> Frame:
    """The astronaut's face crop as a stored frame, with constant AE (200) and SR (50) variants."""
    image, det, mesh = astronaut_face
    rec = face_crop(image, det, mesh, 0, 1, "astro")
    variants = {"ae": np.full_like(rec.image, 200), "sr": np.full_like(rec.image, 50)}
    return Frame(image=rec.image, face_box=tuple(float(v) for v in rec.face_box),
                 parts=FaceParts.from_landmarks(rec.landmarks81, rec.mesh478), available=frozenset(variants),
                 load=variants.__getitem__)


def canvas_over(parts: FaceParts, frame_shape: tuple[int, int], seed: int = 0, kind: str = "hull81") -> Canvas:
    box = (0, 0, frame_shape[1], frame_shape[0])
    return mask_canvas(np.random.default_rng(seed), parts, box, polygons(kind, parts))


# --- draws -------------------------------------------------------------------------------------------

def test_mask_types_are_equally_likely() -> None:
    recipe = resolve_recipe("full", GenerateConfig(), train=True, size=64)
    rng = np.random.default_rng(1)
    freq = frequencies([pick(rng, recipe.mask_types) for _ in range(N_DRAWS)])
    assert set(freq) == set(MASK_TYPES)
    for kind in MASK_TYPES:
        assert abs(freq[kind] - 0.2) < TOL, freq


def test_ablations_change_the_mask_and_recon_draws() -> None:
    rng = np.random.default_rng(2)
    no_mtms = resolve_recipe("no_mtms", GenerateConfig(), True, 64).mask_types
    assert {pick(rng, no_mtms) for _ in range(200)} == {"hull81"}
    sbi = resolve_recipe("sbi", GenerateConfig(), True, 64)
    freq = frequencies([pick(rng, sbi.mask_types) for _ in range(N_DRAWS)])
    assert abs(freq["hull81"] - 0.75) < TOL and abs(freq["hull68"] - 0.25) < TOL
    assert sbi.recon_probs == (("original", 1.0),) and sbi.affine and sbi.freq_ops == ("downscale", "sharpen")
    assert all(resolve_recipe(a, GenerateConfig(), True, 64).affine for a in ("full", "no_mtms", "no_sr", "no_ae"))
    assert not resolve_recipe("no_affine", GenerateConfig(), True, 64).affine
    assert not resolve_recipe("full", GenerateConfig(affine=False), True, 64).affine
    assert resolve_recipe("no_affine", GenerateConfig(), True, 64).recon_probs == resolve_recipe(
        "full", GenerateConfig(), True, 64).recon_probs
    for ablation, expected in (("no_sr", {"ae": 0.3, "original": 0.7}), ("no_ae", {"sr": 0.2, "original": 0.8})):
        probs = resolve_recipe(ablation, GenerateConfig(), True, 64).recon_probs
        freq = frequencies([draw_recon(rng, probs) for _ in range(N_DRAWS)])
        assert set(freq) == set(expected)
        for name, p in expected.items():
            assert abs(freq[name] - p) < TOL, (ablation, freq)


def test_mmr_draws_ae_sr_original_at_03_02_05() -> None:
    rng = np.random.default_rng(3)
    freq = frequencies([draw_recon(rng, FULL_PROBS) for _ in range(N_DRAWS)])
    assert abs(freq["ae"] - 0.3) < TOL and abs(freq["sr"] - 0.2) < TOL and abs(freq["original"] - 0.5) < TOL


def test_mmr_never_uses_a_missing_variant() -> None:
    rng = np.random.default_rng(4)
    drawn = [draw_recon(rng, FULL_PROBS) for _ in range(N_DRAWS)]
    assert {available_recon(d, frozenset()) for d in drawn} == {"original"}
    only_sr = frequencies([available_recon(d, frozenset({"sr"})) for d in drawn])
    assert set(only_sr) == {"sr", "original"} and abs(only_sr["original"] - 0.8) < TOL


def test_blend_ratio_draws_sbi_list() -> None:
    rng = np.random.default_rng(5)
    freq = Counter(blend_ratio(rng) for _ in range(N_DRAWS))
    assert set(freq) == set(BLEND_RATIOS)
    for ratio in (0.25, 0.5, 0.75):
        assert abs(freq[ratio] / N_DRAWS - 1 / 6) < TOL
    assert abs(freq[1.0] / N_DRAWS - 0.5) < TOL


def test_sample_streams_are_reproducible_and_distinct() -> None:
    a, b = sample_streams(7, 3, 1), sample_streams(7, 3, 1)
    assert all(np.array_equal(a[k].random(5), b[k].random(5)) for k in a)
    other = sample_streams(7, 3, 2)
    assert not np.array_equal(sample_streams(7, 3, 1)["choice"].random(5), other["choice"].random(5))
    with pytest.raises(ValueError):
        sample_streams(-1, 0, 0)


def test_train_margins_span_the_range_and_eval_is_fixed() -> None:
    rng = np.random.default_rng(6)
    m = np.array([train_margins(rng) for _ in range(2000)])
    assert m.min() >= TRAIN_MARGINS[0] and m.max() <= TRAIN_MARGINS[1]
    assert abs(m.mean() - EVAL_MARGIN) < 0.005  # the training mean is the evaluation margin
    assert margin_box((100, 100, 200, 180), (EVAL_MARGIN,) * 4, 1000, 1000) == (87, 90, 213, 190)


def test_bad_settings_are_clear_errors() -> None:
    with pytest.raises(GenerateError, match="unknown ablation"):
        resolve_recipe("nope", GenerateConfig(), True, 64)
    with pytest.raises(GenerateError, match="mask types"):
        resolve_recipe("full", GenerateConfig(mask_types=("ears",)), True, 64)
    with pytest.raises(GenerateError, match="recon_probs"):
        resolve_recipe("full", GenerateConfig(recon_probs=(("gan", 1.0),)), True, 64)


# --- masks -------------------------------------------------------------------------------------------

def test_micro_masks_lie_inside_their_landmark_hulls(frame: Frame) -> None:
    parts = frame.parts
    for kind, regions in (("eyes", [parts.left_eye, parts.right_eye]), ("mouth", [parts.mouth]),
                          ("eyes_mouth", [parts.left_eye, parts.right_eye, parts.mouth])):
        canvas = canvas_over(parts, frame.image.shape[:2], kind=kind)
        mask = raw_mask(polygons(kind, parts), canvas)
        hulls = [cv2.convexHull(canvas.points(r).reshape(-1, 1, 2)) for r in regions]
        ys, xs = np.nonzero(mask)
        assert len(xs) > 20
        # every pixel centre lies in one of the hulls (half a pixel of rasterisation allowed)
        dist = np.array([[cv2.pointPolygonTest(h, (float(x), float(y)), True) for h in hulls]
                         for x, y in zip(xs, ys, strict=False)])
        assert (dist.max(axis=1) >= -0.75).all(), kind
        # and the hulls are filled: the mask covers their area up to the rasterised outline
        area = sum(cv2.contourArea(h) for h in hulls)
        assert 0.8 * area < len(xs) < area + sum(cv2.arcLength(h, True) for h in hulls), kind


def test_rectangle_mask_is_the_box_of_the_extreme_points(frame: Frame) -> None:
    parts = frame.parts
    canvas = canvas_over(parts, frame.image.shape[:2], kind="rect4")
    mask = raw_mask(polygons("rect4", parts), canvas)
    x, y, w, h = cv2.boundingRect(mask.astype(np.uint8))
    assert mask.sum() == w * h  # every pixel of its bounding box is set: an axis-aligned box
    pts = canvas.points(parts.landmarks81)
    assert abs(x - pts[:, 0].min()) <= 1 and abs(x + w - 1 - pts[:, 0].max()) <= 1
    assert abs(y - pts[:, 1].min()) <= 1 and abs(y + h - 1 - pts[:, 1].max()) <= 1


def test_hull_mask_is_convex_hull_of_81_points(frame: Frame) -> None:
    parts = frame.parts
    canvas = canvas_over(parts, frame.image.shape[:2])
    mask = raw_mask(polygons("hull81", parts), canvas)
    hull = cv2.convexHull(canvas.points(parts.landmarks81).reshape(-1, 1, 2))
    assert abs(mask.sum() - cv2.contourArea(hull)) < cv2.arcLength(hull, True)
    assert mask.sum() > raw_mask(polygons("hull68", parts), canvas).sum()  # the forehead points add area


def test_erosion_shrinks_and_dilation_grows_the_mask(frame: Frame) -> None:
    parts = frame.parts
    canvas = canvas_over(parts, frame.image.shape[:2])
    mask = raw_mask(polygons("hull81", parts), canvas)
    area = (mask > 0).sum()
    eroded = erode_dilate(mask, 25, 5, 10)
    dilated = erode_dilate(mask, 5, 25, 10)
    assert (eroded > 0).sum() < 0.9 * area
    assert (dilated > 0).sum() > 1.1 * area
    for soft in (eroded, dilated):
        assert soft.max() == pytest.approx(1.0) and soft.min() >= 0
        assert ((soft > 0.05) & (soft < 0.95)).any()  # a soft edge
    # eroded support lies inside the raw mask, the raw mask inside the dilated support
    assert not ((eroded > 0) & (mask == 0)).any()
    assert not ((mask > 0) & (dilated == 0)).any()


def test_soft_masks_are_soft_bounded_and_zero_outside_their_support(frame: Frame) -> None:
    rng = np.random.default_rng(8)
    h, w = frame.image.shape[:2]
    box = margin_box(frame.face_box, (EVAL_MARGIN,) * 4, w, h)
    for kind in MASK_TYPES:
        canvas, soft = soft_mask(rng, kind, frame.parts, box)
        assert soft.dtype == np.float32 and soft.min() >= 0 and soft.max() == pytest.approx(1.0)
        full = canvas.sample(soft, box)
        support = canvas.support(soft, box)
        assert full.shape == (box[3] - box[1], box[2] - box[0]) and support is not None
        x0, y0, x1, y1 = support
        outside = full.copy()
        outside[y0:y1, x0:x1] = 0
        assert not outside.any(), kind
        assert full[y0:y1, x0:x1].max() > 0.9


# --- transforms, blend, shared augmentation ----------------------------------------------------------

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


# --- one pair ----------------------------------------------------------------------------------------

def eval_recipe(**config):
    return resolve_recipe("full", GenerateConfig(**config), train=False, size=64)


def test_fake_equals_real_where_the_mask_is_zero_and_differs_inside(frame: Frame) -> None:
    recipe = eval_recipe()
    for index in range(40):
        pair = make_pair(frame, recipe, sample_streams(0, index, 0))
        zero, inside = pair.mask == 0, pair.mask >= 0.5 * pair.mask.max()
        assert zero.any() and inside.any(), pair.meta
        assert np.array_equal(pair.fake[zero], pair.real[zero]), pair.meta
        diff = np.abs(pair.fake[inside].astype(int) - pair.real[inside])
        # inside the mask (at least half its peak, which is the blend ratio) nearly every pixel differs
        assert diff.mean() > 1.0 and (diff.max(axis=-1) > 0).mean() > 0.9, pair.meta


def test_pair_uses_the_drawn_reconstruction_inside_the_mask(frame: Frame) -> None:
    recipe = eval_recipe(transform=False, affine=False)  # no T, no shift: only the reconstruction differs
    seen = set()
    for index in range(40):
        pair = make_pair(frame, recipe, sample_streams(0, index, 0))
        recon = pair.meta["recon"]
        seen.add(recon)
        full = pair.mask > 0.999
        if recon == "original":
            assert np.abs(pair.fake.astype(int) - pair.real).max() <= 1
        elif full.any():
            value = 200 if recon == "ae" else 50
            assert np.abs(pair.fake[full].astype(int) - value).max() <= 2, pair.meta
    assert seen == {"ae", "sr", "original"}


def test_eval_pair_real_is_the_eval_crop(frame: Frame) -> None:
    """Without T the real side is the untouched frame: exactly what evaluation crops and resizes."""
    pair = make_pair(frame, eval_recipe(transform=False), sample_streams(0, 0, 0))
    assert np.array_equal(pair.real, eval_crop(frame.image, frame.face_box, 64))


def test_pair_draws_at_their_probabilities_end_to_end(frame: Frame) -> None:
    """1000 pairs through the whole recipe: mask types, MMR and the T side at their rates (+-0.05,
    over 4 standard deviations for 1000 draws)."""
    recipe = resolve_recipe("full", GenerateConfig(), train=True, size=32)
    metas = [make_pair(frame, recipe, sample_streams(1, i, 0)).meta for i in range(1000)]
    masks, recons = frequencies([m["mask_type"] for m in metas]), frequencies([m["recon"] for m in metas])
    sides = frequencies([m["t_side"] for m in metas])
    assert all(abs(masks[k] - 0.2) < 0.05 for k in MASK_TYPES), masks
    assert abs(recons["ae"] - 0.3) < 0.05 and abs(recons["sr"] - 0.2) < 0.05 and abs(recons["original"] - 0.5) < 0.05
    assert abs(sides["source"] - 0.5) < 0.05


def test_pair_is_a_pure_function_of_its_streams(frame: Frame) -> None:
    recipe = resolve_recipe("full", GenerateConfig(), train=True, size=48)
    a = make_pair(frame, recipe, sample_streams(5, 9, 2))
    b = make_pair(frame, recipe, sample_streams(5, 9, 2))
    assert np.array_equal(a.real, b.real) and np.array_equal(a.fake, b.fake) and np.array_equal(a.mask, b.mask)
    c = make_pair(frame, recipe, sample_streams(5, 9, 3))
    assert not (np.array_equal(a.fake, c.fake) and np.array_equal(a.mask, c.mask))


def test_sbi_ablation_moves_the_target_with_its_mask(frame: Frame) -> None:
    """sbi: original only, hull masks, and SBI's affine of the blended-in side: without T a pair differs
    from its real only through that shift (and not at all with the affine switched off)."""
    still = resolve_recipe("sbi", GenerateConfig(transform=False, affine=False), train=False, size=64)
    moving = resolve_recipe("sbi", GenerateConfig(transform=False), train=False, size=64)
    moved = 0
    for index in range(10):
        a = make_pair(frame, still, sample_streams(0, index, 0))
        assert a.meta["recon"] == "original" and a.meta["mask_type"] in ("hull81", "hull68")
        assert np.abs(a.fake.astype(int) - a.real).max() <= 1
        b = make_pair(frame, moving, sample_streams(0, index, 0))
        zero = b.mask == 0
        assert np.array_equal(b.fake[zero], b.real[zero])
        moved += np.abs(b.fake.astype(int) - b.real).max() > 10
    assert moved >= 8


def test_full_contains_sbi_its_target_side_and_micro_masks_move(frame: Frame) -> None:
    """docs/method.md §2.3b: a full draw with MMR = original and no T differs from its real through SBI's affine
    shift alone (nothing with --no-affine); micro masks are elastically deformed only with it."""
    moving = resolve_recipe("full", GenerateConfig(transform=False, recon_probs=(("original", 1.0),)), False, 64)
    still = resolve_recipe("no_affine", GenerateConfig(transform=False, recon_probs=(("original", 1.0),)), False, 64)
    moved = 0
    for index in range(12):
        a = make_pair(frame, still, sample_streams(0, index, 0))
        assert np.abs(a.fake.astype(int) - a.real).max() <= 1, a.meta
        b = make_pair(frame, moving, sample_streams(0, index, 0))
        assert b.meta["mask_type"] == a.meta["mask_type"]
        zero = b.mask == 0
        assert np.array_equal(b.fake[zero], b.real[zero])
        moved += np.abs(b.fake.astype(int) - b.real).max() > 10
    assert moved >= 9
    parts, box = frame.parts, (0, 0, frame.image.shape[1], frame.image.shape[0])
    plain = soft_mask(np.random.default_rng(3), "eyes", parts, box, 1.0, elastic_micro=False)[1]
    deformed = soft_mask(np.random.default_rng(3), "eyes", parts, box, 1.0, elastic_micro=True)[1]
    assert plain.shape == deformed.shape and np.abs(plain - deformed).max() > 0.2
    assert abs(plain.sum() - deformed.sum()) < 0.3 * plain.sum()  # the same region, moved, not lost
