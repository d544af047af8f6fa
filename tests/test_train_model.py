"""AFFS channel ranking, the training net, checkpoints and pretrained weights (hand-made tensors, a tiny backbone)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from fiagen.train.affs import affs_widths, channel_errors, select_channels
from fiagen.train.checkpoint import CheckpointError, load_detector, read_checkpoint, save_checkpoint, train_net_from
from fiagen.train.model import ModelError, TrainNet, build_detector


class KnownChannels(torch.nn.Module):
    """A 'backbone' whose stage channels are built to respond (or not) to where the fake differs.

    Each level has 6 channels: 1 and 4 copy the image (their real/fake difference is the mask), 0 copies
    the mirrored image (difference in the mirrored place), 2 is constant, 3 and 5 are a fixed pattern
    that ignores the input. AFFS keeping 2 must keep {1, 4}; keeping 3 adds the next best.
    """

    stage_channels = [6, 6, 6, 6]

    def __init__(self) -> None:
        super().__init__()
        self.pattern = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(3))

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        g = x[:, :1]
        chans = [g.flip(-1), g, torch.ones_like(g), self.pattern.expand_as(g), g, self.pattern.expand_as(g)]
        full = torch.cat(chans, dim=1)
        return full, [F.avg_pool2d(full, s) for s in (1, 2, 4, 8)]


def test_affs_keeps_the_channels_whose_response_matches_the_mask():
    gen = torch.Generator().manual_seed(4)
    batches = []
    for _ in range(3):
        real = torch.rand(4, 3, 32, 32, generator=gen)
        mask = torch.zeros(4, 1, 32, 32)
        mask[..., 8:24, 0:16] = 1.0  # the left half, so its mirror lies elsewhere
        batches.append({"real": real, "fake": real + 0.5 * mask, "mask": mask})
    sel = select_channels(KnownChannels(), batches, keep=[2, 2, 3, 2])
    assert [sorted(i) for i in sel.indices[:2]] == [[1, 4], [1, 4]] and sorted(sel.indices[3]) == [1, 4]
    assert sorted(sel.indices[2][:2]) == [1, 4] and sel.pairs == 12
    for scores in sel.scores:
        assert scores[1] == pytest.approx(0.0, abs=1e-9) and scores[4] == pytest.approx(0.0, abs=1e-9)
        assert min(scores[0], scores[2], scores[3]) > 0.05
    # a constant difference map normalises to 0: its error is the mask's mean square
    err = channel_errors(torch.ones(1, 1, 4, 4), torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 4, 4) * 0.5)
    assert err.item() == pytest.approx(0.25)


def test_affs_widths_follow_table7_and_a_ratio_otherwise():
    assert affs_widths([32, 56, 160, 448]) == [24, 32, 56, 160]  # EfficientNet-B4
    assert affs_widths([24, 40, 112, 320]) == [16, 24, 40, 112]  # B1
    assert affs_widths([256, 512, 1024, 2048]) == [196, 384, 768, 1536]  # ResNet-50/101
    assert affs_widths([64, 128, 256, 512], 0.75) == [48, 96, 192, 384]
    assert affs_widths([1, 2], 0.1) == [1, 1]


@pytest.fixture(scope="module")
def tiny_net() -> TrainNet:
    torch.manual_seed(0)
    det = build_detector("resnet10t", 64)
    torch.nn.init.normal_(det.net.get_classifier().weight, std=0.1)  # the new head starts at 0: give it weights
    return TrainNet(det, [[0, 5, 7], [1, 2], [3, 4, 9, 10], [0, 511]], fpn_channels=16).eval()


def test_train_net_selects_channels_and_shares_the_detector_head(tiny_net: TrainNet):
    assert tiny_net.detector.stage_channels == [64, 128, 256, 512]
    assert [lat.in_channels for lat in tiny_net.fpn.lateral] == [3, 2, 4, 2]
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        logits, fmap = tiny_net(x)
        alone = tiny_net.detector(x)
    assert fmap.shape == (2, 16, 16, 16)  # stride 4
    assert torch.allclose(logits, alone, atol=1e-5)  # inference is backbone + head only
    assert not any("fpn" in k for k in tiny_net.detector.state_dict())
    assert tiny_net.selection()[3] == [0, 511]
    with pytest.raises(ModelError):
        TrainNet(tiny_net.detector, [[0], [1], [2], [512]], 8)


def test_checkpoint_round_trip_with_weights_only(tiny_net: TrainNet, tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", tiny_net, epoch=3, step=30, val_auc=0.75, train_data="unit",
                           affs={"indices": tiny_net.selection()}, config={"lr": 0.001})
    raw = torch.load(path, weights_only=True)
    assert raw["info"]["epoch"] == 3 and raw["fpn"]["selection"][1] == [1, 2]
    det, info = load_detector(path)
    assert not det.training
    convs = [p for p in det.parameters() if p.dim() == 4]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)  # NHWC: faster on CPU too
    assert {k: info[k] for k in ("size", "backbone", "train_data", "epoch", "val_auc")} == \
        {"size": 64, "backbone": "resnet10t", "train_data": "unit", "epoch": 3, "val_auc": 0.75}
    assert info["path"] == str(path)
    x = torch.rand(3, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(det(x), tiny_net.detector(x), atol=1e-6)
        again = train_net_from(read_checkpoint(path)).eval()
        assert torch.allclose(again(x)[1], tiny_net(x)[1], atol=1e-6)
    plain = save_checkpoint(tmp_path / "plain.pt", tiny_net.detector)  # a bare Detector, as other stages' tests do
    det2, info2 = load_detector(plain)
    assert info2["epoch"] == 0 and info2["val_auc"] is None and info2["train_data"] == "none"
    with torch.no_grad():
        assert torch.allclose(det2(x), tiny_net.detector(x), atol=1e-6)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        load_detector(tmp_path / "junk.pt")
    torch.save({"a": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a fiagen"):
        load_detector(tmp_path / "other.pt")


def test_a_channels_last_net_is_saved_in_the_plain_layout_and_scores_the_same(tiny_net: TrainNet, tmp_path):
    from safetensors.torch import save_file

    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        before = tiny_net.detector(x)
    nhwc = copy.deepcopy(tiny_net).to(memory_format=torch.channels_last)  # the fixture stays NCHW
    assert any(not p.is_contiguous() for p in nhwc.parameters())  # training's layout
    raw = torch.load(save_checkpoint(tmp_path / "b.pt", nhwc), weights_only=True)
    tensors = [*raw["detector"].values(), *raw["fpn"]["state"].values()]
    assert all(t.is_contiguous() for t in tensors)
    save_file(raw["detector"], str(tmp_path / "d.safetensors"))  # refuses non-contiguous tensors
    det, _ = load_detector(tmp_path / "b.pt")
    with torch.no_grad():
        assert torch.allclose(det(x), before, atol=1e-5)


def test_pretrained_weights_from_a_state_dict_or_safetensors(tmp_path):
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(5)
    source = timm.create_model("resnet10t", num_classes=1000)  # an ImageNet-style head: skipped
    state = source.state_dict()
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "w.pth")
    save_file(state, str(tmp_path / "w.safetensors"))
    for name in ("w.pth", "w.safetensors"):
        det = build_detector("resnet10t", 64, pretrained=str(tmp_path / name))
        assert torch.equal(det.net.conv1[0].weight, state["conv1.0.weight"])
        assert torch.equal(det.net.layer4[0].conv2.weight, state["layer4.0.conv2.weight"])
        assert det.net.fc.weight.shape == (1, 512) and not det.net.fc.weight.any()  # a new head, at 0
    save_file({"x": torch.zeros(2)}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(ModelError, match="no tensor"):
        build_detector("resnet10t", 64, pretrained=str(tmp_path / "bad.safetensors"))
    with pytest.raises(ModelError, match="not found"):
        build_detector("resnet10t", 64, pretrained=str(tmp_path / "missing.pth"))
    with pytest.raises(ModelError, match="does not know"):
        build_detector("no_such_net_x", 64)
