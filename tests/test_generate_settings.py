"""The `generate:` section of a stage's YAML: GenerateConfig's knobs, checked like every key, shown by
--dry-run, used when a run draws its pairs, and part of what a resumed run must keep."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from fiagen.core.settings import ConfigError
from fiagen.generate.config import GenerateConfig, generate_config, generate_settings
from fiagen.train.config import TrainConfig, resolve_config
from fiagen.train.context import TrainingError
from fiagen.train.data import run_datasets
from fiagen.train.resume import check_resume as _check_resume

FiagenMain = Callable[[list[str]], tuple[int, str, str]]  # the conftest fixture fiagen_main



def t_sides(cfg: TrainConfig, epochs: int = 4) -> list[str]:
    """The T side of every training pair of the first epochs, drawn as `fiagen train` draws them."""
    train, _ = run_datasets(cfg)
    sides = []
    for epoch in range(epochs):
        train.set_epoch(epoch)
        sides += [train[i]["meta"]["t_side"] for i in range(len(train))]
    return sides


def test_the_section_changes_the_draws_of_train(fia_shards: Path, tmp_path: Path) -> None:
    common = {"shards": str(fia_shards), "size": 32, "batch_size": 2, "seed": 3}
    plain = tmp_path / "plain.yaml"
    plain.write_text(yaml.safe_dump(common))
    tuned = tmp_path / "tuned.yaml"
    tuned.write_text(yaml.safe_dump({**common, "generate": {"t_source_p": 0.3}}))
    default_cfg, tuned_cfg = resolve_config({}, str(plain)), resolve_config({}, str(tuned))
    assert tuned_cfg.generate["t_source_p"] == 0.3 and default_cfg.generate == generate_settings()
    default, again, changed = t_sides(default_cfg), t_sides(default_cfg), t_sides(tuned_cfg)
    assert default == again  # the same seed draws the same pairs
    assert changed != default and changed.count("source") < default.count("source")
    assert set(default) == {"source", "target"}


def test_dry_run_shows_the_section_and_a_bad_key_is_one_line(fia_shards: Path, tmp_path: Path,
                                                             fiagen_main: FiagenMain) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(f"shards: {fia_shards}\ngenerate: {{t_source_p: 0.3, augment: {{colour: {{hue: 2}}}}}}\n")
    for command in (["train"], ["preview", "--shards", str(fia_shards)],
                    ["generate", "--shards", str(fia_shards), "--export", str(tmp_path / "png")]):
        code, out, err = fiagen_main([*command, "--config", str(good), "--dry-run"])
        assert code == 0, err
        printed = yaml.safe_load(out)["generate"]
        assert printed == generate_settings({"t_source_p": 0.3, "augment": {"colour": {"hue": 2}}})
        assert printed["elastic_p"] == 1.0 and printed["augment"]["jpeg_p"] == 0.5  # every default shown
    cases = [("{t_sourcep: 0.3}", "generate: unknown key 't_sourcep'; valid keys: mask_types, recon_probs, "
                                  "t_source_p, transform"),
             ("{t_source_p: 1.5}", "generate.t_source_p: expected a probability in [0, 1], got 1.5"),
             ("{augment: {jpeg: 1}}", "generate.augment: unknown key 'jpeg'; valid keys: colour, jpeg_p"),
             ("{recon_probs: {vae: 1}}", "generate.recon_probs: expected a mapping of ae, sr, original"),
             ("{affine: false}", "generate: 'affine' is the stage's own key"),
             ("0.3", "generate: expected a mapping of key: value, got 0.3")]
    for section, message in cases:
        bad = tmp_path / "bad.yaml"
        bad.write_text(f"shards: {fia_shards}\ngenerate: {section}\n")
        code, out, err = fiagen_main(["train", "--config", str(bad), "--dry-run"])
        assert code == 2 and out == "" and len(err.splitlines()) == 1, err
        assert err.startswith("fiagen: error: ") and message in err, err


def test_settings_round_trip_into_the_generate_config() -> None:
    given = {"mask_types": "eyes,mouth", "recon_probs": {"ae": 1, "original": 1}, "t_source_p": 0.3,
             "train_margins": [0.1, 0.3], "augment": {"jpeg_quality": [60, 90], "colour": {"hue": 2}}}
    settings = generate_settings(given)
    assert generate_settings(settings) == settings  # idempotent: a printed config reads back the same
    cfg = generate_config(settings, affine=False)
    assert cfg.mask_types == ("eyes", "mouth") and cfg.recon_probs == (("ae", 1.0), ("original", 1.0))
    assert cfg.train_margins == (0.1, 0.3) and cfg.augment.jpeg_quality == (60, 90) and cfg.augment.colour.hue == 2.0
    assert cfg.affine is False and cfg.t_source_p == 0.3
    assert generate_config() == GenerateConfig()  # no section: the defaults of GenerateConfig
    with pytest.raises(ConfigError, match="generate.elastic_p"):
        TrainConfig(shards="s", generate={"elastic_p": -1})


def test_a_resumed_run_must_keep_the_section() -> None:
    saved = TrainConfig(shards="s", run="r").to_dict()
    _check_resume(TrainConfig(shards="s", run="r"), saved)
    with pytest.raises(TrainingError, match=r"generate.t_source_p 0.5 -> 0.3$"):
        _check_resume(TrainConfig(shards="s", run="r", generate={"t_source_p": 0.3}), saved)
    old = {k: v for k, v in saved.items() if k != "generate"}  # a run saved before the section existed
    _check_resume(TrainConfig(shards="s", run="r"), old)
