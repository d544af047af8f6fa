"""Setting up a training run: the LR schedule, config precedence and errors, `train --dry-run`, the train loader."""

from __future__ import annotations

import os

import pytest
import yaml
from click.testing import CliRunner
from torch.utils.data import Dataset

from fiagen.cli.main import cli
from fiagen.generate.loader import EpochSampler
from fiagen.train.config import ConfigError, TrainConfig, resolve_config
from fiagen.train.context import Context
from fiagen.train.data import make_train_loader
from fiagen.train.resume import lr_factor as _lr_factor


def test_lr_is_constant_then_decays_linearly_over_the_last_quarter():
    factors = [_lr_factor(s, 100, 0.75) for s in range(100)]
    assert factors[:75] == [1.0] * 75
    assert factors[75] == pytest.approx(1.0) and factors[90] == pytest.approx(10 / 25)
    assert factors[99] == pytest.approx(1 / 25)


def test_config_precedence_yaml_and_errors(tmp_path):
    (tmp_path / "c.yaml").write_text("lr: 0.01\nbatch-size: 4\nlambdas: [1, 0, 0.5]\n")
    cfg = resolve_config({"shards": str(tmp_path / "out"), "lr": 0.5}, str(tmp_path / "c.yaml"))
    assert (cfg.lr, cfg.batch_size, cfg.lambdas, cfg.epochs) == (0.5, 4, (1.0, 0.0, 0.5), 50)
    assert cfg.run.endswith("runs/out-efficientnet_b4") and cfg.uses_rcr
    assert not TrainConfig(shards="x", lambdas=(1, 0, 0)).uses_rcr
    (tmp_path / "bad.yaml").write_text("lr: fast\n")
    with pytest.raises(ConfigError, match="lr"):
        resolve_config({"shards": "x"}, str(tmp_path / "bad.yaml"))
    with pytest.raises(ConfigError, match="lambdas"):
        resolve_config({"shards": "x", "lambdas": "1,2"})
    with pytest.raises(ConfigError, match="resume"):
        resolve_config({"shards": "x", "run": str(tmp_path / "nothing"), "resume": True})


def test_cli_dry_run_prints_the_resolved_config(tmp_path):
    (tmp_path / "c.yaml").write_text("epochs: 7\nbackbone: resnet50\n")
    (tmp_path / "sh").mkdir()
    (tmp_path / "sh" / "manifest.parquet").write_bytes(b"")  # a precompute output, as --dry-run checks
    res = CliRunner().invoke(cli, ["train", "--shards", str(tmp_path / "sh"), "--config", str(tmp_path / "c.yaml"),
                                   "--dry-run", "--tau", "0.5", "--no-affs"])
    assert res.exit_code == 0, res.output
    shown = yaml.safe_load(res.output)
    assert (shown["epochs"], shown["backbone"], shown["tau"], shown["affs"], shown["lr"]) == (7, "resnet50", 0.5, False,
                                                                                             0.001)
    assert shown["run"] == "runs/sh-resnet50" and shown["lambdas"] == [1.0, 2.5, 0.25]


class EpochTagged(Dataset):
    """Items that say which process drew them, and at which epoch."""

    def __init__(self, n: int):
        self.n, self.epoch = n, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> dict[str, int]:
        return {"index": index, "epoch": self.epoch, "pid": os.getpid()}


def test_train_loader_keeps_its_workers_across_epochs_and_draws_each_epochs_items():
    ds = EpochTagged(12)
    loader, sampler = make_train_loader(ds, TrainConfig(shards="unused", batch_size=4, loader_workers=1), Context())
    orders, pids = {}, set()
    for epoch in (0, 1, 2):
        sampler.set_epoch(epoch)
        batches = list(loader)
        assert {int(e) for b in batches for e in b["epoch"]} == {epoch}  # the worker drew this epoch's items
        pids |= {int(p) for b in batches for p in b["pid"]}
        orders[epoch] = [int(i) for b in batches for i in b["index"]]
        reference = EpochSampler(ds, 1, 0, 0)
        reference.set_epoch(epoch)
        assert orders[epoch] == [i for _, i in reference]
    assert len(pids) == 1 and os.getpid() not in pids  # one worker process for all three epochs
    assert orders[0] != orders[1] and sorted(orders[1]) == list(range(12))
    sampler.set_epoch(1)
    sampler.skip = 4  # a resumed run starts one batch into the epoch
    assert [int(i) for b in loader for i in b["index"]] == orders[1][4:]
