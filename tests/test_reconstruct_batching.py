"""Reconstructors batch crops by padded size: each crop as if alone, and a bad crop fails alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data as skdata

from fiagen.precompute.reconstruct.base import ReconstructionFailed, Reconstructor, pad_to, to_tensor, to_uint8
from fiagen.precompute.reconstruct.builtin import BuiltinReconstructor, build_net


class _NanWhenBright(Reconstructor):
    """Identity, except NaN for each crop (of a batch) brighter than 0.5."""

    kind, id, device = "ae", "test-ae", torch.device("cpu")

    def reconstruct_tensor(self, x: torch.Tensor) -> torch.Tensor:
        bright = x.mean(dim=(1, 2, 3), keepdim=True) > 0.5
        return torch.where(bright, torch.full_like(x, float("nan")), x)


def _crops() -> list[np.ndarray]:
    astro = skdata.astronaut()
    return [astro[20:121, 170:247].copy(), astro[0:96, 0:96].copy(), astro[100:163, 200:250].copy(),
            astro[200:290, 300:380].copy(), astro[300:395, 100:190].copy()]


def test_batched_crops_are_padded_per_crop_and_independent(one_torch_thread) -> None:
    rec = BuiltinReconstructor("sr", build_net("sr", torch.Generator().manual_seed(1)))
    rec.batch_size = 4  # as on a GPU, here on the CPU
    crops = _crops()
    together = rec(crops)
    alone = [rec([c])[0] for c in crops]
    for crop, a, b in zip(crops, together, alone, strict=True):
        assert a.shape == crop.shape
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1  # batch-mates do not matter
        h, w = crop.shape[:2]
        padded = pad_to(to_tensor(crop, torch.device("cpu")), -(-h // 32) * 32, -(-w // 32) * 32)
        with torch.inference_mode():
            expected = to_uint8(rec.reconstruct_tensor(padded))[:h, :w]
        assert np.abs(a.astype(int) - expected.astype(int)).max() <= 1  # padded to the 32 px bucket, cropped back


def test_a_bad_crop_fails_alone_in_its_batch() -> None:
    rec = _NanWhenBright()
    rec.batch_size = 8
    crops = [np.full((40, 40, 3), v, np.uint8) for v in (10, 250, 20)] + [np.zeros((40, 40), np.uint8)]
    out = rec.reconstruct_each(crops)
    assert np.array_equal(out[0], crops[0]) and np.array_equal(out[2], crops[2])
    assert isinstance(out[1], ReconstructionFailed) and "non-finite" in str(out[1])
    assert isinstance(out[3], ReconstructionFailed) and "expected an (H, W, 3) uint8 image" in str(out[3])
    with pytest.raises(ReconstructionFailed):
        rec(crops)
