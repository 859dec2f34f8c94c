"""ScaledAdam, learning-rate schedules and the SoVITS v2 text-low-lr parameter groups."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from mockvox.models.sovits_v2 import SynthesizerTrn
from mockvox.train.optim import ScaledAdam, constant, text_low_lr_groups, warmup_cosine


def _regression(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 8, generator=gen)
    y = x @ torch.randn(8, 1, generator=gen) + 0.5
    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1))
    torch.manual_seed(seed)
    for p in model.parameters():
        nn.init.normal_(p, std=0.5)
    return model, x, y


def test_fits_a_regression() -> None:
    model, x, y = _regression()
    opt = ScaledAdam(model.parameters(), lr=0.03, clipping_update_period=10)
    first = None
    for _ in range(300):
        loss = nn.functional.mse_loss(model(x), y)
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(nn.functional.mse_loss(model(x), y).detach()) < 0.05 * first


def test_first_update_is_relative_to_parameter_rms() -> None:
    """Step 0: delta = -lr (1 - beta1) rms(p) sign(g); scalars: -lr scalar_lr_scale (1 - beta1) sign(g)."""
    torch.manual_seed(0)
    big = nn.Parameter(torch.randn(6, 5) * 3.0)
    scalar = nn.Parameter(torch.tensor([0.7]))
    before = big.detach().clone(), scalar.detach().clone()
    big.grad, scalar.grad = torch.randn(6, 5), torch.tensor([-2.5])
    lr, (beta1, _) = 0.01, (0.9, 0.95)
    ScaledAdam([big, scalar], lr=lr).step()
    rms = before[0].pow(2).mean().sqrt()
    torch.testing.assert_close(
        big.detach() - before[0], -lr * (1 - beta1) * rms * big.grad.sign(), rtol=1e-4, atol=1e-6
    )
    torch.testing.assert_close(scalar.detach() - before[1], torch.tensor([lr * 0.1 * (1 - beta1)]), rtol=0, atol=1e-7)


def _train(model, opt, x, y, steps: int, spike_at: int | None = None, spike: float = 1000.0):
    for i in range(steps):
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        if i == spike_at:
            for p in model.parameters():
                p.grad.mul_(spike)
        opt.step()


def test_state_dict_round_trip_continues_identically() -> None:
    model, x, y = _regression(1)
    opt = ScaledAdam(model.parameters(), lr=0.02, clipping_update_period=3)
    _train(model, opt, x, y, 11)
    clone = copy.deepcopy(model)
    restored = ScaledAdam(clone.parameters(), lr=0.02, clipping_update_period=3)
    restored.load_state_dict(copy.deepcopy(opt.state_dict()))
    _train(model, opt, x, y, 5, spike_at=2)
    _train(clone, restored, x, y, 5, spike_at=2)
    for a, b in zip(model.parameters(), clone.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("spike", [1000.0, 1.0])
def test_clipping_kicks_in_on_a_gradient_spike(spike: float) -> None:
    model, x, y = _regression(2)
    clipped = ScaledAdam(model.parameters(), lr=0.01, clipping_scale=2.0, clipping_update_period=5)
    free_model = copy.deepcopy(model)
    free = ScaledAdam(free_model.parameters(), lr=0.01, clipping_scale=None)
    _train(model, clipped, x, y, 8)
    _train(free_model, free, x, y, 8)
    for a, b in zip(model.parameters(), free_model.parameters(), strict=True):  # no clipping before a full period
        torch.testing.assert_close(a, b)
    before = [p.detach().clone() for p in model.parameters()]
    _train(model, clipped, x, y, 1, spike_at=0, spike=spike)
    _train(free_model, free, x, y, 1, spike_at=0, spike=spike)
    moved_clipped = sum(float((p.detach() - b).norm()) for p, b in zip(model.parameters(), before, strict=True))
    moved_free = sum(float((p.detach() - b).norm()) for p, b in zip(free_model.parameters(), before, strict=True))
    # the second moment shows which gradient was used: clipped to ~2x the median norm, or the full spike
    v_clipped = sum(float(clipped.state[p]["exp_avg_sq"].sum()) for p in model.parameters())
    v_free = sum(float(free.state[p]["exp_avg_sq"].sum()) for p in free_model.parameters())
    if spike > 1:
        assert v_clipped < 1e-3 * v_free
        assert moved_clipped < 0.9 * moved_free
    else:
        assert v_clipped == pytest.approx(v_free, rel=1e-5)
        assert moved_clipped == pytest.approx(moved_free, rel=1e-5)


def test_warmup_cosine_follows_its_parameters() -> None:
    lr_init, peak, lr_end, warmup, total = 1e-5, 0.01, 1e-4, 10, 50
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=peak)
    sched = warmup_cosine(opt, lr_init, peak, lr_end, warmup, total)
    lrs = []
    for _ in range(60):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(lr_init)
    assert lrs[5] == pytest.approx((lr_init + peak) / 2)
    assert lrs[warmup] == pytest.approx(peak)
    assert lrs[(warmup + total) // 2] == pytest.approx((peak + lr_end) / 2)
    assert lrs[warmup + 10] == pytest.approx(lr_end + 0.5 * (1 + math.cos(math.pi * 0.25)) * (peak - lr_end))
    assert all(lr == pytest.approx(lr_end) for lr in lrs[total:])
    assert all(a < b for a, b in zip(lrs[:warmup], lrs[1 : warmup + 1], strict=True))
    assert all(a > b for a, b in zip(lrs[warmup:total], lrs[warmup + 1 : total + 1], strict=True))


def test_warmup_cosine_rejects_impossible_settings() -> None:
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(ValueError, match="warmup_steps"):
        warmup_cosine(opt, 0.0, 0.1, 0.0, warmup_steps=10, total_steps=10)


def test_constant_keeps_each_group_lr() -> None:
    p, q = nn.Parameter(torch.zeros(1)), nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([{"params": [p], "lr": 0.002}, {"params": [q], "lr": 0.5}])
    sched = constant(opt)
    for _ in range(5):
        opt.step()
        sched.step()
    assert [g["lr"] for g in opt.param_groups] == [0.002, 0.5]


def test_text_low_lr_groups() -> None:
    g = SynthesizerTrn.tiny()
    groups = text_low_lr_groups(g, 1e-4, 0.4)
    assert [grp["lr"] for grp in groups] == pytest.approx([1e-4, 4e-5])
    low = {id(p) for m in (g.enc_p.text_embedding, g.enc_p.encoder_text, g.enc_p.mrte) for p in m.parameters()}
    assert {id(p) for p in groups[1]["params"]} == low
    base = {id(p) for p in groups[0]["params"]}
    assert not base & low
    assert base | low == {id(p) for p in g.parameters() if p.requires_grad}
    assert id(g.enc_p.encoder_ssl.attn_layers[0].conv_q.weight) in base
