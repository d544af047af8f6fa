"""Trainer parts on hand-made tensors: RCR losses, AFFS ranking, model, checkpoints, pretrained weights, config."""

from __future__ import annotations

import copy
import math
import os

import pytest
import torch
import torch.nn.functional as F
import yaml
from click.testing import CliRunner
from torch.utils.data import Dataset

from fiagen.cli.main import cli
from fiagen.generate.loader import EpochSampler
from fiagen.train.affs import affs_widths, channel_errors, select_channels
from fiagen.train.checkpoint import CheckpointError, load_detector, read_checkpoint, save_checkpoint, train_net_from
from fiagen.train.config import ConfigError, TrainConfig, resolve_config
from fiagen.train.context import Context
from fiagen.train.data import make_train_loader
from fiagen.train.losses import detector_loss, rcr_losses, region_masks
from fiagen.train.model import ModelError, TrainNet, build_detector
from fiagen.train.resume import lr_factor as _lr_factor

TAU = 0.7


def square_mask(b: int = 1, n: int = 8, lo: int = 2, hi: int = 6, ring: bool = False) -> torch.Tensor:
    """(b,1,n,n) mask: 1 on rows/cols [lo, hi), and 0.5 on a one-pixel ring around it when `ring`."""
    m = torch.zeros(b, 1, n, n)
    if ring:
        m[..., lo - 1:hi + 1, lo - 1:hi + 1] = 0.5
    m[..., lo:hi, lo:hi] = 1.0
    return m


def fill(mask: torch.Tensor, inside: torch.Tensor, outside: torch.Tensor) -> torch.Tensor:
    """A feature map (1,C,n,n) with vector `inside` where mask == 1 and `outside` elsewhere."""
    m = (mask[0, 0] == 1).float()
    return (inside.view(-1, 1, 1) * m + outside.view(-1, 1, 1) * (1 - m)).unsqueeze(0)


def pairwise_delta(h: torch.Tensor, a: torch.Tensor, g: torch.Tensor, b: torch.Tensor) -> float:
    """Mean cosine similarity over all pixel pairs of region a of map h and region b of map g (explicit)."""
    fa = h[0].flatten(1).T[a.flatten().bool()]
    fb = g[0].flatten(1).T[b.flatten().bool()]
    return (F.normalize(fa, dim=1) @ F.normalize(fb, dim=1).T).mean().item()


def test_region_masks_drop_the_boundary_and_follow_the_peak():
    mask = square_mask(ring=True)
    inside, outside = region_masks(mask, (8, 8))
    assert inside[0, 0].sum() == 16 and bool((inside[0, 0] == (mask[0, 0] == 1)).all())
    assert outside[0, 0].sum() == 64 - 36  # the 0.5 ring (20 pixels) is neither
    scaled_in, scaled_out = region_masks(mask * 0.25, (8, 8))  # a blend ratio of 0.25: same regions
    assert torch.equal(scaled_in, inside) and torch.equal(scaled_out, outside)
    empty_in, _ = region_masks(torch.zeros(1, 1, 8, 8), (8, 8))
    assert empty_in.sum() == 0
    down_in, down_out = region_masks(square_mask(n=16, lo=4, hi=12), (4, 4))  # area-resized to the map
    assert down_in[0, 0, 1:3, 1:3].sum() == 4 and down_in.sum() == 4 and down_out.sum() == 12


def test_pcr_and_icr_equal_the_formulas_on_random_maps():
    torch.manual_seed(0)
    masks = torch.cat([square_mask(ring=True), square_mask(lo=1, hi=4)])
    h_real, h_fake = torch.randn(2, 5, 8, 8), torch.randn(2, 5, 8, 8)
    got = rcr_losses(h_real, h_fake, masks, TAU)
    regions = [region_masks(masks[i:i + 1], (8, 8)) for i in range(2)]
    d = pairwise_delta
    real_io = [d(h_real[i:i + 1], regions[i][0], h_real[i:i + 1], regions[i][1]) for i in range(2)]
    fake_io = [d(h_fake[i:i + 1], regions[i][0], h_fake[i:i + 1], regions[i][1]) for i in range(2)]
    outs = [d(h_real[i:i + 1], regions[i][1], h_fake[i:i + 1], regions[i][1]) for i in range(2)]
    ins = [d(h_real[i:i + 1], regions[i][0], h_fake[i:i + 1], regions[i][0]) for i in range(2)]
    e = lambda v: sum(math.exp(x / TAU) for x in v)  # noqa: E731
    assert got["pcr"].item() == pytest.approx(-math.log(e(real_io) / (e(real_io) + e(fake_io))), rel=1e-5)
    assert got["icr"].item() == pytest.approx(-math.log(e(outs) / (e(outs) + e(ins))), rel=1e-5)


def test_pcr_is_lower_when_the_fake_inside_differs_from_its_outside():
    mask = square_mask()
    a, b = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0])
    real = fill(mask, a, a)  # real: inside and outside alike (δ = 1)
    unlike = rcr_losses(real, fill(mask, b, a), mask, TAU)["pcr"].item()  # fake: orthogonal (δ = 0)
    alike = rcr_losses(real, fill(mask, a, a), mask, TAU)["pcr"].item()
    opposite = rcr_losses(real, fill(mask, -a, a), mask, TAU)["pcr"].item()  # δ = -1
    assert unlike == pytest.approx(math.log(1 + math.exp(-1 / TAU)), rel=1e-6)
    assert alike == pytest.approx(math.log(2), rel=1e-6)
    assert opposite == pytest.approx(math.log(1 + math.exp(-2 / TAU)), rel=1e-6)
    assert opposite < unlike < alike


def test_icr_is_lower_when_outsides_agree_and_insides_differ():
    mask = square_mask()
    a, b, c = torch.eye(3)
    good = rcr_losses(fill(mask, a, c), fill(mask, b, c), mask, TAU)["icr"].item()  # out alike, in unlike
    bad = rcr_losses(fill(mask, a, c), fill(mask, a, b), mask, TAU)["icr"].item()  # out unlike, in alike
    assert good == pytest.approx(math.log(1 + math.exp(-1 / TAU)), rel=1e-6)
    assert bad == pytest.approx(math.log(1 + math.exp(1 / TAU)), rel=1e-6)


def test_boundary_pixels_neither_change_the_loss_nor_get_gradients():
    torch.manual_seed(1)
    mask = square_mask(ring=True)
    ring = (mask[0, 0] == 0.5)
    h_real = torch.randn(1, 4, 8, 8, requires_grad=True)
    h_fake = torch.randn(1, 4, 8, 8, requires_grad=True)
    base = rcr_losses(h_real, h_fake, mask, TAU)
    (base["pcr"] + base["icr"]).backward()
    assert h_real.grad[0][:, ring].abs().max() == 0 and h_fake.grad[0][:, ring].abs().max() == 0
    assert h_real.grad[0][:, ~ring].abs().sum() > 0 and h_fake.grad[0][:, ~ring].abs().sum() > 0
    with torch.no_grad():
        moved = h_fake.detach().clone()
        moved[0][:, ring] = torch.randn(4, int(ring.sum()))
        same = rcr_losses(h_real.detach(), moved, mask, TAU)
        moved[0][:, 4, 4] += 5.0  # an inside pixel does matter
        other = rcr_losses(h_real.detach(), moved, mask, TAU)
    assert same["pcr"].item() == pytest.approx(base["pcr"].item(), abs=1e-7)
    assert same["icr"].item() == pytest.approx(base["icr"].item(), abs=1e-7)
    assert other["pcr"].item() != pytest.approx(base["pcr"].item(), abs=1e-4)


def test_samples_without_a_region_are_left_out_and_total_loss_weights_terms():
    torch.manual_seed(2)
    mask = torch.cat([square_mask(), torch.zeros(1, 1, 8, 8)])  # second pair: no inside at all
    h = torch.randn(4, 6, 8, 8)
    both = rcr_losses(h[:2], h[2:], mask, TAU)
    first = rcr_losses(h[:1], h[2:3], mask[:1], TAU)
    assert both["pcr"].item() == pytest.approx(first["pcr"].item(), rel=1e-6)
    logits = torch.tensor([-2.0, 0.5, 1.0, 3.0])
    terms = detector_loss(logits, h, mask, (1.0, 2.5, 0.25), TAU)
    bce = F.binary_cross_entropy_with_logits(logits, torch.tensor([0.0, 0.0, 1.0, 1.0])).item()
    assert terms["bce"].item() == pytest.approx(bce, rel=1e-6)
    assert terms["loss"].item() == pytest.approx(bce + 2.5 * both["pcr"].item() + 0.25 * both["icr"].item(), rel=1e-6)
    plain = detector_loss(logits, None, mask, (1.0, 0.0, 0.0), TAU)
    assert plain["loss"].item() == pytest.approx(bce, rel=1e-6) and plain["pcr"].item() == 0.0
    nothing = rcr_losses(h[:1], h[2:3], torch.zeros(1, 1, 8, 8), TAU)
    assert nothing["pcr"].item() == 0.0


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
