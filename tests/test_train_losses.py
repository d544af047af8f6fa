"""RCR losses on hand-made tensors: region masks, PCR and ICR against their formulas, boundary pixels, the total."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from fiagen.train.losses import detector_loss, rcr_losses, region_masks

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
