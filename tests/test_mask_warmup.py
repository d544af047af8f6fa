"""The mask warm-up (`generate.micro_masks_from`, issue 28): the micro masks join after the first part of a
training run, the pairs stay a function of (seed, index, epoch), train passes the run's length, and bad
settings are one line."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from fiagen.generate.config import GenerateConfig, GenerateError, generate_config, generate_settings
from fiagen.generate.dataset import FIAUSADataset
from fiagen.generate.masks import MACRO_TYPES
from fiagen.generate.preview import preview_grid

SIZE = 64
MICRO = ("eyes", "mouth", "eyes_mouth")


def _types(ds: FIAUSADataset, epoch: int) -> list[str]:
    ds.set_epoch(epoch)
    return [ds[i]["meta"]["mask_type"] for i in range(len(ds))]


def _same(a: dict, b: dict) -> bool:
    return a["meta"] == b["meta"] and all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in ("real", "fake", "mask"))


def test_micro_masks_join_at_the_switch_epoch_and_draws_stay_deterministic(fia_shards: Path) -> None:
    """0.5 of 4 epochs: epochs 0-1 draw hull81/rect4 only (where the same recipe without warm-up draws micro
    masks), epochs 2-3 draw exactly that recipe's pairs, micro masks included; a second dataset draws the
    same bytes for the same (seed, index, epoch)."""
    warm = FIAUSADataset(fia_shards, split="train", size=SIZE, seed=5, epochs=4,
                         config=GenerateConfig(micro_masks_from=0.5))
    again = FIAUSADataset(fia_shards, split="train", size=SIZE, seed=5, epochs=4,
                          config=GenerateConfig(micro_masks_from=0.5))
    plain = FIAUSADataset(fia_shards, split="train", size=SIZE, seed=5)
    assert warm.recipe.micro_from == 2 and [m for m, _ in warm.recipe.early_masks] == ["hull81", "rect4"]
    before = _types(warm, 0) + _types(warm, 1)
    assert set(before) <= set(MACRO_TYPES) and set(before) == {"hull81", "rect4"}
    assert set(_types(plain, 0) + _types(plain, 1)) & set(MICRO)  # without the warm-up they are drawn
    after = _types(warm, 2) + _types(warm, 3)
    assert set(after) & set(MICRO) and after == _types(plain, 2) + _types(plain, 3)
    for epoch in (1, 3):
        for ds in (warm, again, plain):
            ds.set_epoch(epoch)
        for i in range(len(warm)):
            assert _same(warm[i], again[i])
            if epoch == 3:
                assert _same(warm[i], plain[i])


def test_switch_epoch_rounds_up_and_validation_never_warms_up(fia_shards: Path) -> None:
    for fraction, epochs, switch in ((0.3, 3, 1), (0.3, 10, 3), (0.25, 4, 1), (0.999, 5, 5), (0.0, 5, 0)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # 0.999 of 5: never drawn, warned (below)
            ds = FIAUSADataset(fia_shards, split="train", size=SIZE, epochs=epochs,
                               config=GenerateConfig(micro_masks_from=fraction))
        assert ds.recipe.micro_from == switch, (fraction, epochs)
    val = FIAUSADataset(fia_shards, split="val", size=SIZE, train=False, config=GenerateConfig(micro_masks_from=0.5))
    assert val.recipe.micro_from == 0 and val.recipe.early_masks == () and len(val.recipe.mask_types) == 5
    # recipes without micro masks have nothing to warm up
    sbi = FIAUSADataset(fia_shards, split="train", size=SIZE, ablation="sbi",
                        config=GenerateConfig(micro_masks_from=0.5))
    assert sbi.recipe.micro_from == 0


def test_bad_warmup_settings_are_one_line(fia_shards: Path) -> None:
    cases = [(dict(config=GenerateConfig(micro_masks_from=0.3)), "give the run's epochs"),
             (dict(epochs=4, config=GenerateConfig(micro_masks_from=0.3, mask_types=("eyes", "mouth"))),
              "hold no macro mask")]
    for kwargs, words in cases:
        with pytest.raises(GenerateError) as err:
            FIAUSADataset(fia_shards, split="train", size=SIZE, **kwargs)
        assert words in str(err.value) and len(str(err.value).splitlines()) == 1
    with pytest.raises(GenerateError, match=r"generate.micro_masks_from: expected a fraction of the run's epochs in "
                                            r"\[0, 1\], got 1.5"):
        generate_settings({"micro_masks_from": 1.5})
    with pytest.warns(UserWarning, match="micro masks are never drawn"):
        FIAUSADataset(fia_shards, split="train", size=SIZE, epochs=1, config=GenerateConfig(micro_masks_from=0.3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        FIAUSADataset(fia_shards, split="train", size=SIZE, epochs=2, config=GenerateConfig(micro_masks_from=0.3))


def test_train_passes_its_epochs_and_preview_takes_them(fia_shards: Path, tmp_path: Path) -> None:
    from fiagen.train.config import TrainConfig
    from fiagen.train.data import run_datasets

    cfg = TrainConfig(shards=str(fia_shards), epochs=10, batch_size=4, size=SIZE, generate={"micro_masks_from": 0.3})
    assert cfg.generate["micro_masks_from"] == 0.3
    train, val = run_datasets(cfg)
    assert train.recipe.micro_from == 3 and val.recipe.micro_from == 0
    config = generate_config({"micro_masks_from": 0.5})
    with pytest.raises(GenerateError, match="--epochs"):
        preview_grid(fia_shards, tmp_path / "grid.png", n=2, size=SIZE, tile=32, config=config)
    assert preview_grid(fia_shards, tmp_path / "grid.png", n=2, size=SIZE, tile=32, config=config, epochs=4).is_file()
