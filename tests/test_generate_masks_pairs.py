"""The online FIA-USA pieces on the astronaut's face frame: masks (micro, rectangle, hull, erosion, soft)
and whole pairs."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from test_generate_draws import frequencies

from fiagen.generate.config import GenerateConfig, resolve_recipe
from fiagen.generate.crop import EVAL_MARGIN, eval_crop, margin_box
from fiagen.generate.draws import sample_streams
from fiagen.generate.masks import (
    MASK_TYPES,
    Canvas,
    FaceParts,
    erode_dilate,
    mask_canvas,
    polygons,
    raw_mask,
    soft_mask,
)
from fiagen.generate.pair import Frame, make_pair
from fiagen.precompute.extract import face_crop


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
