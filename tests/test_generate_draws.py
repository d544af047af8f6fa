"""The online FIA-USA draws on their own: mask types, MMR, blend ratios, sample streams, margins, settings errors."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from fiagen.generate.config import GenerateConfig, GenerateError, resolve_recipe
from fiagen.generate.crop import EVAL_MARGIN, TRAIN_MARGINS, margin_box, train_margins
from fiagen.generate.draws import pick, sample_streams
from fiagen.generate.masks import BLEND_RATIOS, MASK_TYPES, blend_ratio
from fiagen.generate.mmr import FULL_PROBS, available_recon, draw_recon

N_DRAWS = 20000
# Frequencies over N_DRAWS: the largest standard deviation (p = 0.5) is 0.0035; 0.015 is over 4 of them.
TOL = 0.015


def frequencies(values: list[str]) -> dict[str, float]:
    return {k: v / len(values) for k, v in Counter(values).items()}


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
